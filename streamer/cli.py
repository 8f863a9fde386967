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
from rich import box
from rich.console import Console
from rich.live import Live
from rich.table import Table
from typer.core import TyperCommand, TyperGroup

from entropylong_streamer.config import Config, ConfigError, load_config
from entropylong_streamer.logs import counted
from entropylong_streamer.quality import DEFAULT_MAX_LM_TOKENS


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
console = Console()


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


def _config(config: Path | None, overrides: list[str] | None) -> Config:
    try:
        return load_config(config, overrides or [])
    except ConfigError as exc:
        console.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from exc


def _stack_config(config: Path | None, overrides: list[str] | None, note: Console | None = None) -> Config:
    """The configuration of the running stack: what `up` saved in data_dir/run/config.json (its
    resolved settings: ports, flags), unless --config names a file; --set applies on top. Says which."""
    from .stack_control import run_dir

    return _saved_config(config, overrides, run_dir(_config(config, overrides)) / "config.json",
                         "the running stack's", note)


def _build_config(config: Path | None, overrides: list[str] | None, out: Path) -> Config:
    """The configuration of a build folder: what `elong build` saved in OUT/config.json (its resolved
    settings, secrets masked), unless --config names a file; --set applies on top. Says which."""
    from .batch import BUILD_CONFIG

    return _saved_config(config, overrides, out / BUILD_CONFIG, "the build's")


def _saved_config(config: Path | None, overrides: list[str] | None, saved: Path, whose: str,
                  note: Console | None = None) -> Config:
    flags = ", --set on top" if overrides else ""
    if config is None and saved.exists():
        (note or console).print(f"[dim]configuration: {whose}, {saved}{flags} (--config names another)[/dim]")
        return _config(saved, overrides)
    where = str(config) if config is not None else f"the defaults (none at {saved})"
    (note or console).print(f"[dim]configuration: {where}{flags}[/dim]")
    return _config(config, overrides)


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

    cfg = _config(config, set_)
    _refuse_unknown_model(cfg)
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

    stopped = stop_all(_config(config, set_))
    console.print("stopped: " + (", ".join(stopped) or "nothing was running"))


@app.command("config")
def show_config(config: ConfigOpt = None, set_: SetOpt = None) -> None:
    """Print the configuration as it resolves (the running stack's or a file, then environment and flags;
    secrets masked) and the version each stage's output will carry (docs/configuration.md describes every
    setting). Which configuration it started from goes to standard error."""
    cfg = _stack_config(config, set_, Console(stderr=True))
    typer.echo(json.dumps({"config": cfg.masked(), "versions": cfg.stage_versions()}, indent=2))


@app.command()
def topics(config: ConfigOpt = None, set_: SetOpt = None) -> None:
    """Create every topic, or raise its partition count to the configured one (kafka.partitions).
    Partitions are never removed. Restart the workers afterwards so that they take the new ones."""
    from .stack_control import release_groups_of
    from .status import end_offsets, ensure_pipeline_topics, topic_partitions

    cfg = _config(config, set_)
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
    table = Table(title="topics")
    for col in ("topic", "partitions before", "partitions now"):
        table.add_column(col)
    for name in sorted(after):
        table.add_row(name, str(before.get(name) or "-"), str(after[name]))
    console.print(table)


def _require_broker(cfg: Config) -> None:
    """A command that needs Kafka and finds no broker says so in one line, at once: not a client's
    retries for half a minute and a traceback."""
    from .services.stack import port_open

    for server in cfg.kafka.bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        if port.isdigit() and port_open(host.strip("[]") or "127.0.0.1", int(port)):
            return
    console.print(f"[red]no Kafka broker answers at {cfg.kafka.bootstrap_servers}[/red] (kafka.bootstrap_servers): "
                  "start the embedded stack with `elong up --detach`, or point kafka.bootstrap_servers at yours")
    raise typer.Exit(1)


PathsArg = Annotated[list[Path], typer.Argument(metavar="PATH", help="files or directories")]


@app.command()
def ingest(paths: Annotated[list[Path] | None, typer.Argument(metavar="PATH", help="files or directories")] = None,
           config: ConfigOpt = None,
           set_: SetOpt = None,
           follow: Annotated[Path | None, typer.Option(metavar="DIR", help="then take new files in DIR as they land, "
                                                            "until interrupted")] = None) -> None:
    """JSONL / Parquet / WARC / WET / text files through the door to the docs topic."""
    from .ingest_cmd import follow as follow_dir
    from .ingest_cmd import ingest_paths

    cfg = _config(config, set_)
    _require_broker(cfg)
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
    _index_paths(_config(config, set_), paths)


def _index_paths(cfg: Config, paths: list[Path]) -> None:
    """The corpus into the pool, through the index stage's adapter as batch mode runs it."""
    from rich.progress import Progress

    from . import registry
    from .agents.adapter import StageRunner
    from .batch import drive, load_pool
    from .pipeline import Pipeline
    from .topics import DEAD_LETTER, DOCS

    pool = load_pool(paths, cfg)
    bad = pool.records(DEAD_LETTER)
    for letter in bad[:20]:
        console.print(f"[yellow]skipped[/yellow] {letter.topic}: {letter.reason}")
    if len(bad) > 20:
        console.print(f"[yellow]... {counted(len(bad) - 20, 'more bad row')}[/yellow]")
    runner = StageRunner.build(cfg, registry.stage("index"), Pipeline(cfg))
    with Progress(console=console) as progress:
        drive(runner, pool, cfg.agents.batch_size("index"), progress, "indexing")
    console.print(f"indexed {runner.stage.stats['chunks']} chunks from {len(pool.messages(DOCS))} documents")


@app.command()
def worker(stage: Annotated[str, typer.Argument(help="entropy, index, retrieval, verify, pack or trainer")],
           config: ConfigOpt = None, set_: SetOpt = None) -> None:
    """Run one stage's worker: entropy, index, retrieval, verify, pack or trainer."""
    from . import logs, registry
    from .agents import packer_loop, stage_loop, trainer_loop

    cfg = _config(config, set_)
    _refuse_unknown_model(cfg)
    logs.setup()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        runner = registry.stage(stage).runner
    except KeyError as exc:
        console.print(f"[red]{exc.args[0]}[/red]")
        raise typer.Exit(2) from exc
    loop = {"stage": lambda: stage_loop.run(cfg, stage), "pack": lambda: packer_loop.run(cfg),
            "trainer": lambda: trainer_loop.run(cfg)}[runner]
    try:
        loop()
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
    _build(_build_config(config, set_, out), docs, corpus or [], out)


def _build(cfg: Config, docs: list[Path], corpus: list[Path], out: Path) -> None:
    from .batch import build as run_build

    _check_build_inputs(cfg, [*docs, *corpus], out)
    report = run_build(cfg, docs, corpus, out)
    _print_build_summary(report, out)
    if report.documents == 0:
        raise typer.Exit(1)


def _check_build_inputs(cfg: Config, paths: list[Path], out: Path) -> None:
    """What can be known before any model loads: missing inputs, an --out that is a file, a model
    path that names nothing."""
    problems = [f"{p}: no such file or directory" for p in paths if not p.exists()]
    if out.exists() and not out.is_dir():
        problems.append(f"--out {out} is a file, not a directory")
    problems += _model_problems(cfg)
    for problem in problems:
        console.print(f"[red]error:[/red] {problem}")
    if problems:
        raise typer.Exit(2)


def _model_problems(cfg: Config) -> list[str]:
    from .services.models import unknown_model_spec

    return [f"model.path: {problem}"] if (problem := unknown_model_spec(cfg.model.path)) is not None else []


def _refuse_unknown_model(cfg: Config) -> None:
    """A model.path that names no model, in one line before anything loads (exit 2)."""
    for problem in _model_problems(cfg):
        console.print(f"[red]error:[/red] {problem}")
        raise typer.Exit(2)


def _print_build_summary(report, out: Path) -> None:
    from collections import Counter

    from entropylong_streamer.services.shards import spread_text

    dropped = Counter(d.get("rule", "?") for d in report.dropped)
    if report.documents:
        console.print(f"{counted(report.documents, 'document')} -> {counted(len(report.shards), 'new shard')} "
                      f"({counted(sum(s.samples for s in report.shards), 'sample')}) in {out / 'shards'}")
    if report.shard_set:
        sset = report.shard_set
        again = f"; {report.already_packed} of these documents were in it already" if report.already_packed else ""
        console.print(f"  shard set {sset['dir']}: {counted(sset['shards'], 'shard')}, "
                      f"{counted(sset['samples'], 'sample')}{again}")
    if report.samples.get("samples"):
        s = report.samples
        console.print(f"  samples: {spread_text(s['tokens'], 'tokens')}; "
                      f"{spread_text(s['contexts'], 'verified contexts')}; "
                      f"dependency distance (context end to anchor) {spread_text(s['distance'], 'tokens')}")
        if len(s["by_depth"]) > 1:  # pack.depth > 1 put contexts of contexts in
            console.print(f"  documents a sample joins: {spread_text(s['documents'], 'documents')}; " + "; ".join(
                f"depth {k}: {spread_text(v['contexts'], 'contexts')}, "
                f"edges {spread_text(v['distance'], 'tokens')} apart" for k, v in s["by_depth"].items()))
    if report.cost.get("emitted_tokens"):
        from entropylong_streamer.quality.command import cost_line

        console.print(f"  {cost_line(report.cost)}")
    if report.documents:
        console.print(f"  dependencies (this build's documents): {out / 'dependencies.jsonl'}")
    console.print(f"  dropped at the door: {len(report.dropped)}"
                  + (f" ({', '.join(f'{r} {n}' for r, n in dropped.most_common())}) in {out / 'dropped.jsonl'}"
                     if report.dropped else ""))
    if report.dead_letters:
        reasons = Counter(f"{d['stage']}: {d['reason'].split(':')[0]}" for d in report.dead_letters)
        console.print(f"  dead letters: {len(report.dead_letters)} in {out / 'dead-letter.jsonl'}: "
                      + ", ".join(f"{r} ({n})" for r, n in reasons.most_common(5)))
    if report.documents == 0:
        why = ("--docs names no file (an empty directory?)" if not report.files else
               f"every row of the {counted(report.files, 'file')} was turned away: the reasons above"
               if report.dropped or report.dead_letters else
               f"no document in the {counted(report.files, 'file')} read (empty?)")
        console.print(f"[red]no usable document was read[/red]: {why}; nothing was built")
    table = Table(title="stage counts")
    for col in ("stage", "counts"):
        table.add_column(col)
    for name, stats in report.stats.items():
        table.add_row(name, ", ".join(f"{k} {v:,}" for k, v in sorted(stats.items())))
    console.print(table)


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

    cfg = _build_config(config, set_, batch) if batch is not None else _stack_config(config, set_)
    _refuse_unknown_model(cfg)
    if batch is None:  # the running stack's topics
        _require_broker(cfg)
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

    cfg = _stack_config(config, set_)
    _require_broker(cfg)
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

    cfg = _build_config(config, set_, batch) if batch is not None else _stack_config(config, set_)
    if batch is None:
        _require_broker(cfg)
    try:
        letters = dl.from_batch(batch) if batch is not None else dl.from_topic(cfg)
    except FileNotFoundError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    table = Table(title=f"{len(letters):,} dead letters", box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("stage", "reason", "letters", "example"):
        table.add_column(col, justify="right" if col == "letters" else "left")
    for (st, kind), n in sorted(dl.by_reason(letters).items()):
        first = next(x for x in letters if (x.stage, x.kind) == (st, kind))
        table.add_row(st, kind, f"{n:,}", first.reason[:120] + (f" (attempts {first.attempts})"
                                                                  if first.attempts > 1 else ""))
    console.print(table)
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
        return _replay_build(config, set_, batch)
    from . import registry
    from .replay import Origin, ReplayError, plan, reset_offsets
    from .stack_control import embedded, run_dir, running_workers, start_workers, stop_workers

    # The running stack's config (what `up` resolved) is the one being changed, unless a file is given.
    running = run_dir(_config(config, None)) / "config.json"
    old = _config(running if running.exists() else config, None)
    new = _config(config or (running if running.exists() else None), set_)
    which = config or (f"the running stack's, {running}" if running.exists() else "defaults")
    console.print(f"[dim]configuration: {which}[/dim]")
    _require_broker(new)
    try:
        origin = Origin.parse(from_time, from_offset)
        rows = plan(old, new)
        changed = {r.stage for r in rows if r.start != "unchanged"}
        if not changed:
            console.print("no stage's version changes: nothing to replay")
            return
        table = Table(title=f"replay {origin.describe()}: pack version {old.pack_version()} -> {new.pack_version()}")
        for col in ("stage", "input topic", "consumer group", "starts"):
            table.add_column(col)
        for r in rows:
            starts = {"origin": origin.describe(), "latest": "at the end (new upstream version)",
                      "unchanged": "unchanged", "restart": "restarted with the new config"}[r.start]
            table.add_row(r.stage, r.topic, r.new_group, starts)
        console.print(table)
        workers = running_workers(new) if restart else {}
        stopped = stop_workers([p for stage in changed for p in workers.get(stage, [])], old)
        reset_offsets(new, rows, origin)
    except ReplayError as exc:
        console.print(f"[red]replay failed:[/red] {exc}")
        raise typer.Exit(1) from exc
    if workers:
        count = max((len(v) for k, v in workers.items() if registry.stage(k).scalable), default=1)
        started = start_workers(embedded(new) if running.exists() else new, count, only=changed)
        console.print(f"stopped {', '.join(stopped) or 'no workers'}; started {', '.join(w.name for w in started)}")
    else:
        console.print("offsets set; start the changed stages' workers with the new configuration")


def _replay_build(config: Path | None, overrides: list[str] | None, out: Path) -> None:
    """A build's replay: the stages whose version the change moves, then the build of the same inputs;
    the measurement caches make it cost only what was never measured."""
    from .batch import read_build_inputs

    try:
        docs, corpus = read_build_inputs(out)
    except FileNotFoundError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    old = _build_config(None, None, out)
    new = _build_config(config, overrides, out)
    before, after = old.stage_versions(), new.stage_versions()
    changed = [stage for stage, version in after.items() if before.get(stage) != version]
    if not changed:
        console.print("no stage's version changes: nothing to replay")
        return
    console.print(f"replay of the build {out}: {', '.join(changed)} change (pack version {before['pack']} -> "
                  f"{after['pack']}: a new shard set beside the old); its inputs: "
                  + ", ".join(str(p) for p in [*docs, *corpus]))
    _build(new, docs, corpus, out)


@app.command()
def demo(config: ConfigOpt = None, set_: SetOpt = None,
         sheets: int = typer.Option(6, min=1, help="quick-reference sheets to build samples for (each cites "
                                                  "6 standard-library modules)"),
         keep: bool = typer.Option(False, metavar="", help="leave the stack running afterwards"),
         quality: bool = typer.Option(False, "--report", metavar="", help="then run elong report")) -> None:
    """Start the embedded stack, index this Python's stdlib reference pages, ingest quick-reference
    sheets that cite them, watch long samples reach the shards and the trainer's loss fall."""
    from .demo_corpus import write_reference_demo
    from .ingest_cmd import ingest_paths
    from .stack_control import embedded, start_servers, start_workers, stop_all

    cfg = embedded(_config(config or Path(__file__).resolve().parent.parent / "deploy" / "demo.toml", set_))
    _refuse_unknown_model(cfg)
    docs, pool, n, pages = write_reference_demo(cfg.paths.corpus, sheets)
    console.print(f"demo corpus: {pages} API reference and docstring pages of this Python's standard library "
                  f"(the pool) -> {pool}; {n} quick-reference sheets citing them (the documents) -> {docs}")
    try:
        with console.status("starting broker and milvus-lite on 127.0.0.1 ..."):
            start_servers(cfg)
            workers = start_workers(cfg)
        _index_paths(cfg, [pool])
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


def status_table(cfg: Config, previous: list | None = None, letters: bool = True) -> tuple[Table, list | None]:
    """The status table and the snapshot it shows (None: broker unreachable); given an earlier
    snapshot, the records/s column too; `letters`: the dead letters by stage and reason (a read of the
    whole dead-letter topic: not at every refresh of a live view)."""
    from entropylong_streamer.services.shards import spread_text

    from .status import collect, shard_summary, with_rates

    # Fits 80 columns: topics without their prefix (in the title), no vertical rules, short headers.
    prefix = cfg.kafka.topic_prefix
    table = Table(title=f"entropylong-streamer  pack version {cfg.pack_version()}, topics {prefix}*",
                  box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("stage", "input topic", "parts", "workers", "committed", "lag", "rec/s"):  # produced: + lag
        table.add_column(col, no_wrap=True, justify="left" if col in ("stage", "input topic") else "right")
    try:
        rows = with_rates(collect(cfg), previous)
        for row in rows:
            consumers = "?" if row.consumers is None else str(row.consumers)
            table.add_row(row.stage, row.topic.removeprefix(prefix), str(row.partitions), consumers,
                          f"{row.committed:,}", f"{row.lag:,}", "" if row.rate is None else f"{row.rate:.1f}")
    except Exception as exc:  # broker not reachable: say so in the table instead of a traceback
        rows = None
        table.add_row("-", f"broker unreachable: {type(exc).__name__}", "", "", "", "", "")
    s = shard_summary(cfg)
    loss = "" if s["loss_first"] is None else f", trainer loss {s['loss_first']:.3f} -> {s['loss_last']:.3f}"
    per_sample = f" ({s['contexts'] / s['samples']:.1f} per sample)" if s["samples"] else ""
    table.caption = (f"{s['shards']} shards, {s['samples']} samples with {s['contexts']} verified contexts"
                     f"{per_sample}, {s['tokens']} tokens; sample tokens {spread_text(s['sample_tokens'])}; "
                     f"dependency distance {spread_text(s['dependency_distance'], 'tokens')}; "
                     f"trainer consumed {s['trained_shards']} shards{loss}")
    table.caption += "".join(f"\n{line}" for line in trouble_lines(cfg, rows is not None and letters))
    return table, rows


def trouble_lines(cfg: Config, read_letters: bool) -> list[str]:
    """What the lag alone does not say: workers waiting out an outage (their batches uncommitted), and the
    dead letters by stage and reason."""
    from .status import dead_letter_counts, outages

    lines = [f"[yellow]waiting[/yellow]: {o['stage']} on its {o['reason'].replace('_', ' ')} for "
             f"{time.time() - o['since']:.0f} s ({o['tries']} tries): {o['error']}" for o in outages(cfg)]
    if read_letters:
        try:
            dead = dead_letter_counts(cfg)
        except Exception as exc:  # the table above says what is wrong with the broker
            dead = None
            lines.append(f"dead letters: unreadable ({type(exc).__name__})")
        if dead:
            lines.append(f"dead letters {sum(dead.values()):,}: " + ", ".join(
                f"{stage} {reason} {n:,}" for (stage, reason), n in sorted(dead.items())))
    return lines


def watch(cfg: Config, until: int | None, workers: list | None = None) -> None:
    """Refresh the status table; with `until`, return once that many documents are in shards,
    dead-lettered or dropped at the door, and the trainer has consumed every shard. A worker that
    dies ends the watch with its log's last lines and exit status 1."""
    from entropylong_streamer.topics import DEAD_LETTER, DROPPED

    away = [t.full_name(cfg.kafka.topic_prefix) for t in (DEAD_LETTER, DROPPED)]
    table, rows = status_table(cfg, letters=False)
    try:
        _watch(cfg, until, workers, away, table, rows)
    finally:
        if not console.is_terminal:  # Live ends its last frame with a newline on a terminal only
            console.line()


def _watch(cfg: Config, until: int | None, workers: list | None, away: list[str], table: Table,
           rows: list | None) -> None:
    from .status import collect, end_offsets, shard_summary

    with Live(table, console=console, refresh_per_second=1) as live:
        while True:
            time.sleep(2)  # a display refresh interval, not synchronisation
            table, rows = status_table(cfg, rows, letters=False)
            live.update(table)
            dead = [w for w in workers or [] if not w.alive()]
            if dead:
                live.stop()
                console.print(f"[red]{dead[0].name} exited[/red]; the end of {dead[0].log_path}:")
                console.print(dead[0].log_tail(12), markup=False, highlight=False)
                raise typer.Exit(1)
            if until is None:
                continue
            s = shard_summary(cfg)
            lag = sum(r.lag for r in (rows if rows is not None else collect(cfg)))  # the table's snapshot
            dead = sum(end_offsets(cfg, away).values())
            if s["samples"] + dead >= until and lag == 0 and s["trained_shards"] >= s["shards"]:
                return


def main() -> None:
    app()


if __name__ == "__main__":
    main()
