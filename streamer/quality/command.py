"""`elong report`: where the shards, records and pool are; progress; the terminal summary."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.progress import Progress, TextColumn
from rich.table import Table

from entropylong_streamer.config import Config
from entropylong_streamer.services.shards import spread_text

from . import DEFAULT_MAX_LM_TOKENS
from .contexts import CONDITIONS, PoolChunk
from .gauges import report_dir
from .no_context import from_cache, from_topic
from .report import (
    RECORDS_FILE,
    build_figures,
    finish_curves,
    plan_curves,
    read_records,
    read_shard_set,
    records_from_topic,
    write_report,
)


def run_report(cfg: Config, console: Console, batch_dir: Path | None = None, out: Path | None = None,
               max_docs: int = 64, pool_chunks: int = 2048, show_progress: bool = True,
               pipeline=None, max_lm_tokens: int | None = DEFAULT_MAX_LM_TOKENS,
               reuse_scores: bool = True) -> tuple[dict, list[Path]]:
    """The report of a batch build's output (batch_dir) or of the running stack's shard set and
    dependencies topic; written to `out` (default: the batch dir's report/, or report_dir).

    The figures that need no LM are written first; then the plan of the curves (documents,
    lengths, LM tokens, what max_lm_tokens left out) is stated, the model loaded and the curves
    measured with a progress bar and a time estimate. Interrupted, the written report keeps the
    figures."""
    from entropylong_streamer.measurements import MemoryCache
    from entropylong_streamer.pipeline import Pipeline

    undecodable: list[str] = []
    if batch_dir is not None:
        shard_dir = batch_dir / "shards" / cfg.version("pack")
        records_path = batch_dir / RECORDS_FILE
        if not records_path.exists():
            raise FileNotFoundError(f"{records_path} not found: build with this version of `elong build`")
        records = list(read_records(records_path))
        pipe = pipeline or Pipeline(cfg, milvus_uri=str(batch_dir / "pool.db"))
        out = out or batch_dir / "report"
    else:
        shard_dir = cfg.paths.shard_set(cfg.version("pack"))
        with console.status("reading the dependencies topic ..."):
            records = list(records_from_topic(cfg, undecodable))
        for reason in undecodable[:5]:
            console.print(f"[yellow]skipped an undecodable record[/yellow] {reason}")
        pipe = pipeline or Pipeline(cfg)
        out = out or report_dir(cfg)
    shards = read_shard_set(shard_dir)
    with console.status("sampling the pool for the random baseline ..."):
        hits = pipe.pool.sample(pool_chunks, cfg.pack.seed)
        tokens = pipe.engine_tokenizer().tokenize_many([h.text for h in hits])
        # a random context is held to the verifier's cap (verify.max_context_tokens), from its head
        pool = [PoolChunk(h.doc_id, tuple(t.ids[: cfg.verify.max_context_tokens]))
                for h, t in zip(hits, tokens, strict=True)]
    report, docs = build_figures(cfg, records, shards, pool, pipe.separator, max_docs, len(undecodable))
    report["scope"] = {"shard_set": str(shard_dir), "shards": len(shards.manifest), "samples": len(shards.samples)}
    paths = write_report(report, out)  # an interrupted report still leaves these
    print_summary(report, console)
    if not reuse_scores:
        no_context = None
    elif batch_dir is not None:
        no_context = from_cache(MemoryCache.load(cfg.paths.cache("scores")), pipe.scores_model_key)
    else:
        with console.status("reading the entropy stage's scores (the curves' no-context point) ..."):
            no_context = from_topic(cfg, pipe.scores_model_key, docs)
    plan = plan_curves(report, docs, pipe.separator, cfg.model.max_tokens, max_lm_tokens, no_context)
    print_plan(report["curves"], console)
    if plan.curves and not plan.needed:
        with console.status("loading the model ..."):
            engine = pipe.engine
        try:
            with Progress(*Progress.get_default_columns(), TextColumn("{task.completed:,.0f} LM tokens"),
                          console=console, disable=not show_progress) as progress:
                task = progress.add_task("CE curves", total=report["curves"]["lm_tokens_planned"])
                clock = Calibration(console, report["curves"]["lm_tokens_planned"])

                def advance(documents: int, tokens: int) -> None:
                    progress.advance(task, tokens)
                    clock.observe(tokens)

                finish_curves(report, plan, engine, pipe.separator, advance=advance)
        except KeyboardInterrupt:
            console.print(f"[yellow]interrupted[/yellow]: {paths[0]} holds the figures, not the curves")
            raise
    else:
        finish_curves(report, plan, None, pipe.separator)
    paths = write_report(report, out)
    print_curves(report, console)
    console.print(f"report: {paths[0]}" + "".join(f"\n        {p}" for p in paths[1:]))
    return report, paths


class Calibration:
    """After the first group of documents: the rate, and how long the rest will take."""

    def __init__(self, console: Console, planned: int) -> None:
        self.console, self.planned, self.done, self.t0 = console, planned, 0, time.monotonic()

    def observe(self, tokens: int) -> None:
        first = self.done == 0
        self.done += tokens
        if first and self.done:
            rate = self.done / max(time.monotonic() - self.t0, 1e-9)
            left = (self.planned - self.done) / rate
            self.console.print(f"calibrated on the first documents: {rate:,.0f} LM tokens/s, "
                               f"about {_duration(left)} for the rest")


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def print_plan(c: dict, console: Console) -> None:
    if c["documents_with_contexts"] == 0:
        return
    lengths = ", ".join(str(x) for x in c["grid"])
    line = (f"curves: {c['documents']} of {c['documents_with_contexts']} documents with a verified context x "
            f"{len(CONDITIONS)} contexts x lengths [{lengths}]: {c['lm_tokens_planned']:,} LM tokens")
    if c["lm_tokens_reused"]:
        line += f" ({c['lm_tokens_reused']:,} more read from the entropy stage's scores, not run)"
    if c["max_lm_tokens"] is not None:
        line += f", budget {c['max_lm_tokens']:,} (--max-lm-tokens)"
    console.print(line)
    left = []
    if c["left_out_documents"]:
        left.append(f"{c['left_out_documents']} documents")
    if c["left_out_lengths"]:
        left.append("lengths " + ", ".join(map(str, c["left_out_lengths"])))
    if left:
        console.print(f"[yellow]left out for the budget[/yellow]: {' and '.join(left)}")
    if c["status"].startswith("over budget"):
        console.print(f"[yellow]no curves[/yellow]: {c['status']}; raise --max-lm-tokens")


def _f(x: float | None, signed: bool = False, digits: int = 3) -> str:
    return "-" if x is None else (f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}")


def lengths_line(s: dict) -> str:
    """Sample length and dependency distance: how long the data is and how long-range."""
    def spread(dist: dict, unit: str = "") -> str:
        q = dist["quantiles"] if dist["count"] else {}
        return spread_text({"median": q.get("50"), "p90": q.get("90"), "max": dist["max"] if q else None}, unit)

    far = s["dependency_distance"]["from_context_end"]
    line = (f"tokens per sample: {spread(s['tokens_per_sample'])}; dependency distance (tokens from the context's "
            f"end to its anchor, {far['count']} verified pairs in samples): {spread(far)}")
    by_depth = s.get("contexts_by_depth", {})
    if len(by_depth) > 1:  # pack.depth > 1 put contexts of contexts in
        line += ("; documents per sample: " + spread(s["documents_per_sample"]) + "; by depth: " + ", ".join(
            f"{k}: {_f(v['mean'], digits=1)} contexts a sample, edges "
            f"{spread(s['edge_distance_by_depth'][k], 'tokens')} apart" for k, v in by_depth.items()))
    return line


def cost_line(c: dict) -> str:
    """The LM work per emitted token and per verified dependency: what was run, and what was read from the
    measurement caches instead. Beside the floor only where nothing was read: a figure with reads is this
    run's work, not the cost, and may lie under the floor."""
    if not c["emitted_tokens"]:
        return "LM cost: no samples matched yet"
    pt, pd, floor = c["per_emitted_token"], c["per_dependency"], c["floor_lm_tokens_per_emitted_token"]
    by_stage = ", ".join(f"{stage} {v['lm_tokens'] / c['emitted_tokens']:.2f}"
                         for stage, v in sorted(c["stages"].items()) if v["lm_tokens"]) or "no stage recorded any"
    floor_text = f"{floor:.2f}: each distinct token of the samples read once"
    read = ", ".join(f"{stage} {v['reused']:,} {'documents' if stage == 'entropy' else 'pairs'}"
                     for stage, v in sorted(c["stages"].items()) if v["reused"])
    if not c["total"]["lm_tokens"] and read:
        return (f"LM cost: nothing run, every measurement read from the cache ({read}); a cold run costs at least "
                f"the floor, {floor_text}")
    rate = (f"{pt['lm_tokens']:.2f} LM tokens per emitted token ({by_stage}"
            + (f"; floor {floor_text})" if not read else ")")
            + f", {pt['flops'] / 1e9:.2f} GFLOP and {1e3 * pt['seconds']:.2f} ms of LM time per emitted token")
    line = f"LM cost: {rate}" if not read else f"LM work this run: {rate}"
    if pd["lm_tokens"] is not None:
        line += f"; {pd['lm_tokens']:,.0f} LM tokens per verified dependency ({c['dependencies']:,} in the samples)"
    if read:
        line += (f"; read from the measurement cache instead of run: {read} (a cold run costs more, at least the "
                 f"floor, {floor_text})")
    if c["documents_without_costs"]:
        line += (f"; {c['documents_without_costs']} of {c['documents']} records carry no cost (written before "
                 "costs were recorded)")
    return line


def print_summary(report: dict, console: Console) -> None:
    d, s = report["dependencies"], report["samples"]
    if scope := report.get("scope"):
        i = report["inputs"]
        missing = i["shard_samples_without_record"] + i["records_disagreeing_with_shard"]
        console.print(f"scope: the shard set {scope['shard_set']}, {scope['shards']:,} shards, {scope['samples']:,} "
                      f"samples; {i['matched']:,} of them measured here with their document's record"
                      + (f" ({missing:,} without one this report can use)" if missing else ""))
    console.print(
        f"[bold]data quality[/bold] of pack version {report['config']['stage_versions']['pack']}: "
        f"{d['documents']} documents, {d['anchors_per_1k_tokens']:.1f} anchors per 1K tokens, "
        f"{d['candidates_per_anchor']:.2f} candidates per anchor, acceptance {d['acceptance_rate']:.1%} "
        f"(mean dI accepted {_f(d['d_i']['accepted']['mean'])}, rejected {_f(d['d_i']['rejected']['mean'])}); "
        f"{_f(s['contexts_per_sample']['mean'], digits=2)} contexts and {_f(s['tokens_per_sample']['mean'], digits=0)} "
        f"tokens per "
        f"sample; {s['shards']} shards, mean fill {_f(s['shard_fill']['mean'])}")
    console.print(lengths_line(s))
    console.print(cost_line(report["cost"]))
    t = d["template"]
    console.print(f"templates (lines many pool documents hold): {t['anchors']} anchors; {t['pairs_kept_apart']} "
                  f"dependencies the criterion accepts there kept apart ({t['kept_apart_share']:.1%} of what it "
                  f"accepts); {t['accepted_share']:.1%} of the accepted dependencies are on template lines")


def print_curves(report: dict, console: Console) -> None:
    c = report["curves"]
    if not c["points"]:
        if not c["documents_with_contexts"]:
            console.print("no curves: no document has a verified context")
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
