"""elong: the command line. Every command builds one validated Config and passes it down."""

from __future__ import annotations

import functools
import json
import logging
import os
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from typer.core import TyperCommand, TyperGroup

from entropylong_streamer.config import Config
from entropylong_streamer.logs import counted
from entropylong_streamer.quality import DEFAULT_MAX_LM_TOKENS

from .cli_config import (
    build_config,
    check_build_inputs,
    config_from,
    refuse_unknown_model,
    require_broker,
    stack_config,
)
from .ingest import index_paths
from .replay_cmd import replay_build, replay_stack
from .views import console, dead_letter_table, print_build_summary, status_table, topics_table, watch


class _FlagHelp:
    """-h/--help shown as the flag it is, not as `<bool>` (typer labels every option with its type)."""

    def get_help_option(self, ctx):  # type: ignore[no-untyped-def]
        option = super().get_help_option(ctx)  # type: ignore[misc]
        if option is not None:
            option.metavar = ""
        return option


class _Group(_FlagHelp, TyperGroup):
    pass


class _Command(_FlagHelp, TyperCommand):
    pass


app = typer.Typer(add_completion=False, no_args_is_help=True, cls=_Group,
                  help="EntropyLong long-context data, built incrementally over Kafka.",
                  context_settings={"help_option_names": ["-h", "--help"]})
app.command = functools.partial(app.command, cls=_Command)  # type: ignore[method-assign]


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        console.print(f"elong (entropylong-streamer) {version('entropylong-streamer')}")
        raise typer.Exit()


@app.callback()
def main_options(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, metavar="",
                                                        help="print the version and exit")] = False) -> None:
    """EntropyLong long-context data, built incrementally over Kafka."""


ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", metavar="FILE", help="TOML (or JSON) config file",
                                                envvar="ELONG_CONFIG")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", "-s", metavar="KEY=VALUE",
                                                  help="override a setting: SECTION.KEY=VALUE; repeat for several")]


@app.command()
def up(config: ConfigOpt = None, set_: SetOpt = None,
       detach: bool = typer.Option(False, "--detach", metavar="",
                                   help="start everything and return (stop it with `elong down`)"),
       workers: int = typer.Option(1, help="workers per stateless stage"),
       external: bool = typer.Option(False, "--external", metavar="",
                                     help="use the configured Kafka and Milvus: create topics, start workers")) -> None:
    """Start broker, milvus-lite, topics and one worker per stage; live status until Ctrl-C."""
    from .stack_control import embedded, start_servers, start_workers, stop_all
    from .status import ensure_pipeline_topics

    cfg = config_from(config, set_)
    refuse_unknown_model(cfg)
    cfg = cfg if external else embedded(cfg)
    try:
        with console.status("starting ..."):
            if external:
                ensure_pipeline_topics(cfg)
            else:
                start_servers(cfg)
            procs = start_workers(cfg, workers)
    except Exception as exc:
        console.print(f"[red]start-up failed:[/red] {exc}")
        stop_all(cfg)
        raise typer.Exit(1) from exc
    console.print(f"[green]up[/green]: broker {cfg.kafka.bootstrap_servers}, milvus {cfg.milvus.uri}, "
                  f"{len(procs)} workers; data in {cfg.data_dir}")
    if detach:
        return
    try:
        watch(cfg, until=None, workers=procs)
    except KeyboardInterrupt:
        pass
    finally:
        console.print("stopping: " + ", ".join(stop_all(cfg)))


@app.command()
def down(config: ConfigOpt = None, set_: SetOpt = None) -> None:
    """Stop everything `up` started (by the PIDs it recorded)."""
    from .stack_control import stop_all

    stopped = stop_all(config_from(config, set_))
    console.print("stopped: " + (", ".join(stopped) or "nothing was running"))


@app.command("config")
def show_config(config: ConfigOpt = None, set_: SetOpt = None) -> None:
    """Print the configuration as it resolves (the running stack's or a file, then environment and flags;
    secrets masked) and the version each stage's output will carry (docs/configuration.md describes every
    setting). Which configuration it started from goes to standard error."""
    cfg = stack_config(config, set_, Console(stderr=True))
    typer.echo(json.dumps({"config": cfg.masked(), "versions": cfg.stage_versions()}, indent=2))


@app.command()
def topics(config: ConfigOpt = None, set_: SetOpt = None) -> None:
    """Create every topic, or raise its partition count to the configured one (kafka.partitions).
    Partitions are never removed. Restart the workers afterwards so that they take the new ones."""
    from .stack_control import release_groups_of
    from .status import end_offsets, ensure_pipeline_topics, topic_partitions

    cfg = config_from(config, set_)
    try:
        before: dict[str, int] = {}
        end_offsets(cfg, list(topic_partitions(cfg)), before)
        ensure_pipeline_topics(cfg)
        after: dict[str, int] = {}
        end_offsets(cfg, list(topic_partitions(cfg)), after)
        release_groups_of(cfg, {t for t, n in after.items() if before.get(t) and n > before[t]})
    except Exception as exc:
        console.print(f"[red]cannot reach the broker {cfg.kafka.bootstrap_servers}:[/red] {exc}")
        raise typer.Exit(1) from exc
    console.print(topics_table(before, after))


PathsArg = Annotated[list[Path], typer.Argument(metavar="PATH", help="files or directories")]


@app.command()
def ingest(paths: Annotated[list[Path] | None, typer.Argument(metavar="PATH", help="files or directories")] = None,
           config: ConfigOpt = None,
           set_: SetOpt = None,
           follow: Annotated[Path | None, typer.Option(metavar="DIR", help="then take new files in DIR as they land, "
                                                            "until interrupted")] = None) -> None:
    """JSONL / Parquet / WARC / WET / text files through the door to the docs topic."""
    from .ingest import follow as follow_dir
    from .ingest import ingest_paths

    cfg = config_from(config, set_)
    require_broker(cfg)
    if follow is not None:
        if not follow.is_dir():
            console.print(f"[red]{follow} is not a directory[/red]")
            raise typer.Exit(2)
        from . import metrics
        from .agents import kafka_clients as kc

        metrics.serve(cfg.metrics.host, cfg.metrics.port)
        stop = kc.stop_event()
        run = follow_dir(cfg, follow, console, stop)
        console.print(f"stopped: {run.sent} documents sent, {run.dropped} dropped at the door, "
                      f"{counted(run.bad, 'bad row')}")
        return
    if not paths:
        console.print("[red]give files or directories to ingest, or --follow DIR[/red]")
        raise typer.Exit(2)
    sent, dropped, bad = ingest_paths(cfg, paths, console)
    console.print(f"ingested {sent} documents ({dropped} dropped at the door, "
                  f"{counted(bad, 'bad row')} dead-lettered)")


@app.command()
def index(paths: PathsArg, config: ConfigOpt = None, set_: SetOpt = None) -> None:
    """Bootstrap the retrieval pool from files, straight into Milvus."""
    index_paths(config_from(config, set_), paths, console)


@app.command()
def worker(stage: Annotated[str, typer.Argument(help="entropy, index, retrieval, verify, pack or trainer")],
           config: ConfigOpt = None, set_: SetOpt = None) -> None:
    """Run one stage's worker: entropy, index, retrieval, verify, pack or trainer."""
    from . import logs, registry
    from .agents import worker as workers

    cfg = config_from(config, set_)
    refuse_unknown_model(cfg)
    logs.setup()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        registry.stage(stage)
    except KeyError as exc:
        console.print(f"[red]{exc.args[0]}[/red]")
        raise typer.Exit(2) from exc
    try:
        workers.run(cfg, stage)
    except Exception as exc:
        # Not a bad record (the loops dead-letter those): the stage cannot run (a model or pool that
        # fails to load, a broker gone for longer than the client waits). Exit non-zero, so `up`, the
        # demo and a supervisor see it; nothing is lost: the batch's offsets were not committed.
        logging.getLogger("entropylong_streamer.worker").critical("%s worker stops: %s", stage, exc, exc_info=True)
        raise typer.Exit(1) from exc


@app.command()
def build(docs: Annotated[list[Path], typer.Option("--docs", metavar="PATH", help=(
              "the documents to build samples for: JSONL, Parquet, WARC/WET, text files or directories; "
              "repeat --docs for several, or give a directory"))],
          out: Annotated[Path, typer.Option("--out", metavar="DIR", help="output directory: shards/, "
                                            "dependencies.jsonl, dead-letter.jsonl, dropped.jsonl")],
          corpus: Annotated[list[Path] | None, typer.Option("--corpus", metavar="PATH", help=(
              "the retrieval pool's documents (besides --docs); repeat --corpus for several"))] = None,
          config: ConfigOpt = None, set_: SetOpt = None) -> None:
    """Batch mode: the same stages in one process, no Kafka; shards + OUT/dependencies.jsonl."""
    _build(build_config(config, set_, out), docs, corpus or [], out)


def _build(cfg: Config, docs: list[Path], corpus: list[Path], out: Path) -> None:
    from .batch import build as run_build

    check_build_inputs(cfg, [*docs, *corpus], out)
    report = run_build(cfg, docs, corpus, out)
    print_build_summary(report, out)
    if report.documents == 0:
        raise typer.Exit(1)


@app.command()
def report(config: ConfigOpt = None, set_: SetOpt = None,
           batch: Annotated[Path | None, typer.Option(help="an `elong build --out` directory (default: the "
                                                           "running stack's shard set and topics)")] = None,
           out: Annotated[Path | None, typer.Option(help="where report.json and the PNGs go")] = None,
           max_docs: int = typer.Option(64, help="documents the CE curves are measured on (a stable choice)"),
           pool_chunks: int = typer.Option(2048, help="pool chunks drawn for the random baseline"),
           max_lm_tokens: int = typer.Option(DEFAULT_MAX_LM_TOKENS, help=(
               "LM tokens the curves may cost (0: no limit); documents and the longest lengths are left "
               "out to fit, and the report says which"))) -> None:
    """Data quality: CE against context length for verified samples and two baselines, and figures.
    The figures that need no LM are written first; then the curves' plan and a time estimate."""
    from .quality.command import run_report
    from .topics import RecordError

    cfg = build_config(config, set_, batch) if batch is not None else stack_config(config, set_)
    refuse_unknown_model(cfg)
    if batch is None:  # the running stack's topics
        require_broker(cfg)
    try:
        run_report(cfg, console, batch_dir=batch, out=out, max_docs=max_docs, pool_chunks=pool_chunks,
                   max_lm_tokens=max_lm_tokens or None)
    except (FileNotFoundError, RecordError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc


@app.command()
def status(config: ConfigOpt = None, set_: SetOpt = None,
           interval: float = typer.Option(2.0, help="seconds between two snapshots, for the rates (0: no rates)")
           ) -> None:
    """For every stage: input topic, partitions, consumers (workers), committed, lag, records/s;
    shards; trainer loss."""
    from .status import collect

    cfg = stack_config(config, set_)
    require_broker(cfg)
    first = None
    if interval > 0:
        try:
            first = collect(cfg)
        except Exception:  # reported by the table below
            first = None
        time.sleep(interval)  # the measuring interval of the rates
    console.print(status_table(cfg, first)[0])


@app.command("dead-letters")
def dead_letters(config: ConfigOpt = None, set_: SetOpt = None,
                 batch: Annotated[Path | None, typer.Option(help="an `elong build --out` directory (default: the "
                                                                 "running stack's dead-letter topic)")] = None,
                 redrive: Annotated[bool, typer.Option("--redrive", metavar="", help=(
                     "send the chosen letters' records back to their input topics"))] = False,
                 stage: Annotated[str | None, typer.Option(help="only this stage's letters")] = None,
                 reason: Annotated[str | None, typer.Option(help="only letters whose reason holds this text")] = None
                 ) -> None:
    """Dead letters by stage and reason; --redrive puts the original records back on their input topics
    (after a fix; a record already packed is not packed twice)."""
    from . import dead_letters as dl

    cfg = build_config(config, set_, batch) if batch is not None else stack_config(config, set_)
    if batch is None:
        require_broker(cfg)
    try:
        letters = dl.from_batch(batch) if batch is not None else dl.from_topic(cfg)
    except FileNotFoundError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    console.print(dead_letter_table(letters))
    if not redrive:
        return
    if batch is not None:
        console.print("a build's dead letters are redriven by running the build again: its measurement caches "
                      "make the rerun cost only what was not measured")
        raise typer.Exit(1)
    chosen, stuck = dl.redrivable(cfg, letters, stage, reason)
    dl.redrive(cfg, chosen)
    console.print(f"redriven: {len(chosen):,} records back to their input topics"
                  + (f"; {stuck:,} matching letters have no record to send (ingest's bad rows: fix the file and "
                     "ingest it again)" if stuck else ""))


@app.command()
def replay(config: ConfigOpt = None, set_: SetOpt = None,
           from_time: str | None = typer.Option(None, help="ISO 8601 time with zone: read records written since"),
           from_offset: int | None = typer.Option(None, help="offset to start at in every partition"),
           restart: bool = typer.Option(True, metavar="",
                                        help="restart the embedded stack's workers of the changed stages"),
           batch: Annotated[Path | None, typer.Option(metavar="DIR", help=(
               "an `elong build --out` directory: build its inputs again with the change"))] = None) -> None:
    """Change thresholds (--set entropy.alpha=1.5, verify.epsilon=0.3, ...) and replay: the changed
    stages get a new config version and read their input again (from the beginning unless told);
    the old shard set stays as it is and a new one grows beside it. With --batch OUT: a build's
    replay, its own inputs built again under its configuration with --set on top."""
    if batch is not None:
        if from_time is not None or from_offset is not None:
            console.print("[red]--from-time and --from-offset replay a running stack's topics[/red]: a build "
                          "(--batch) is built again whole, its caches answering what was measured")
            raise typer.Exit(2)
        if (again := replay_build(config, set_, batch)) is not None:
            _build(*again, batch)
        return
    replay_stack(config, set_, from_time, from_offset, restart)


@app.command()
def demo(config: ConfigOpt = None, set_: SetOpt = None,
         sheets: int = typer.Option(6, min=1, help="quick-reference sheets to build samples for (each cites "
                                                  "6 standard-library modules)"),
         keep: bool = typer.Option(False, metavar="", help="leave the stack running afterwards"),
         quality: bool = typer.Option(False, "--report", metavar="", help="then run elong report")) -> None:
    """Start the embedded stack, index this Python's stdlib reference pages, ingest quick-reference
    sheets that cite them, watch long samples reach the shards and the trainer's loss fall."""
    from .demo_corpus import write_reference_demo
    from .ingest import ingest_paths
    from .stack_control import embedded, start_servers, start_workers, stop_all

    cfg = embedded(config_from(config or Path(__file__).resolve().parent.parent / "deploy" / "demo.toml", set_))
    refuse_unknown_model(cfg)
    docs, pool, n, pages = write_reference_demo(cfg.paths.corpus, sheets)
    console.print(f"demo corpus: {pages} API reference and docstring pages of this Python's standard library "
                  f"(the pool) -> {pool}; {n} quick-reference sheets citing them (the documents) -> {docs}")
    try:
        with console.status("starting broker and milvus-lite on 127.0.0.1 ..."):
            start_servers(cfg)
            workers = start_workers(cfg)
        index_paths(cfg, [pool], console)
        sent, dropped, bad = ingest_paths(cfg, [docs], console)
        console.print(f"ingested {sent} new documents ({dropped} dropped at the door: seen before or filtered); "
                      "model work starts now")
        watch(cfg, until=n, workers=workers)
        if quality:
            from .quality.command import run_report

            run_report(cfg, console)
    except KeyboardInterrupt:
        pass
    finally:
        if not keep:
            console.print("stopping: " + ", ".join(stop_all(cfg)))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
