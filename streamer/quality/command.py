"""`elong report`: where the shards, records and pool are; progress; the terminal summary."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from entropylong_streamer.config import Config
from entropylong_streamer.services.shards import spread_text

from .contexts import CONDITIONS, PoolChunk
from .gauges import report_dir
from .report import RECORDS_FILE, build_report, read_records, read_shard_set, records_from_topic, write_report


def run_report(cfg: Config, console: Console, batch_dir: Path | None = None, out: Path | None = None,
               max_docs: int = 64, pool_chunks: int = 2048, show_progress: bool = True,
               pipeline=None) -> tuple[dict, list[Path]]:
    """The report of a batch build's output (batch_dir) or of the running stack's shard set and
    dependencies topic; written to `out` (default: the batch dir's report/, or report_dir)."""
    from entropylong_streamer.pipeline import Pipeline

    undecodable: list[str] = []
    if batch_dir is not None:
        shard_dir = batch_dir / "shards" / cfg.pack_version()
        records_path = batch_dir / RECORDS_FILE
        if not records_path.exists():
            raise FileNotFoundError(f"{records_path} not found: build with this version of `elong build`")
        records = list(read_records(records_path))
        pipe = pipeline or Pipeline(cfg, milvus_uri=str(batch_dir / "pool.db"))
        out = out or batch_dir / "report"
    else:
        shard_dir = cfg.paths.shard_set(cfg.pack_version())
        with console.status("reading the dependencies topic ..."):
            records = list(records_from_topic(cfg, undecodable))
        for reason in undecodable[:5]:
            console.print(f"[yellow]skipped an undecodable record[/yellow] {reason}")
        pipe = pipeline or Pipeline(cfg)
        out = out or report_dir(cfg)
    shards = read_shard_set(shard_dir)
    with console.status("loading the model and sampling the pool ..."):
        verify = pipe.verify()
        pool = [PoolChunk(h.doc_id, tuple(verify.context_tokens(h.text)))
                for h in pipe.pool.sample(pool_chunks, cfg.pack.seed)]
    with Progress(console=console, disable=not show_progress) as progress:
        task = progress.add_task("scoring documents under 3 contexts", total=None)
        report = build_report(cfg, records, shards, pipe.engine, pool, pipe.separator, max_docs=max_docs,
                              start=lambda n: progress.update(task, total=n),
                              advance=lambda n: progress.advance(task, n), undecodable=len(undecodable))
    paths = write_report(report, out)
    print_summary(report, console)
    console.print(f"report: {paths[0]}" + "".join(f"\n        {p}" for p in paths[1:]))
    return report, paths


def _f(x: float | None, signed: bool = False, digits: int = 3) -> str:
    return "-" if x is None else (f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}")


def lengths_line(s: dict) -> str:
    """Sample length and dependency distance: how long the data is and how long-range."""
    def spread(dist: dict) -> str:
        q = dist["quantiles"] if dist["count"] else {}
        return spread_text({"median": q.get("50"), "p90": q.get("90"), "max": dist["max"] if q else None})

    far = s["dependency_distance"]["from_context_end"]
    return (f"tokens per sample: {spread(s['tokens_per_sample'])}; dependency distance (tokens from the context's "
            f"end to its anchor, {far['count']} verified pairs in samples): {spread(far)}")


def print_summary(report: dict, console: Console) -> None:
    d, s, c = report["dependencies"], report["samples"], report["curves"]
    console.print(
        f"[bold]data quality[/bold] of pack version {report['config']['stage_versions']['pack']}: "
        f"{d['documents']} documents, {d['anchors_per_1k_tokens']:.1f} anchors per 1K tokens, "
        f"{d['candidates_per_anchor']:.2f} candidates per anchor, acceptance {d['acceptance_rate']:.1%} "
        f"(mean dI accepted {_f(d['d_i']['accepted']['mean'])}, rejected {_f(d['d_i']['rejected']['mean'])}); "
        f"{_f(s['contexts_per_sample']['mean'], digits=2)} contexts and {_f(s['tokens_per_sample']['mean'], digits=0)} "
        f"tokens per "
        f"sample; {s['shards']} shards, mean fill {_f(s['shard_fill']['mean'])}")
    console.print(lengths_line(s))
    t = d["template"]
    console.print(f"templates (lines many pool documents hold): {t['anchors']} anchors; {t['pairs_kept_apart']} "
                  f"dependencies the criterion accepts there kept apart ({t['kept_apart_share']:.1%} of what it "
                  f"accepts); {t['accepted_share']:.1%} of the accepted dependencies are on template lines")
    if not c["points"]:
        console.print(f"no curves: {c['documents_with_contexts']} documents have a verified context")
        return
    if c.get("documents_beyond_scoring_context"):
        console.print(f"{c['documents_beyond_scoring_context']} of {c['documents']} samples are longer than the "
                      f"scoring model's context ({c['scoring_context_tokens']:,} tokens, model.max_tokens): their "
                      "curves stop at the context tokens it holds beside the document, and 'full' means those")
    for where, title in (("all", "every document token"), ("anchors", "at the anchors")):
        table = Table(title=f"cross-entropy (nats/token), {title}; {c['documents']} documents with contexts")
        for col in ("context", *CONDITIONS, "Δ unverified", "Δ random"):
            table.add_column(col, justify="right")
        for pt in c["points"]:
            ce, gaps = pt[where]["ce"], pt[where]["gap_to_verified"]
            label = str(pt["context_tokens"]) + ("" if pt["context_tokens"] != "full"
                                                 else f" ({pt['mean_context_tokens']:.0f})")
            table.add_row(label, *(_f(ce[k]) for k in CONDITIONS),
                          *(f"{_f(gaps[b]['gap'], True)}±{_f(gaps[b]['se'], digits=2)}" for b in CONDITIONS[1:]))
        console.print(table)
    console.print("Δ: the baseline's CE minus verified (> 0: the verified contexts inform more), ± its standard "
                  "error over documents")
