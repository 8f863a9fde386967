"""Batch mode: the same stages in one process, over in-memory topics instead of Kafka.

build(docs, corpus) -> OUT/shards/<version>/..., OUT/dependencies.jsonl, OUT/dead-letter.jsonl,
OUT/dropped.jsonl (documents the door turned away), OUT/config.json (the resolved settings, secrets
masked: what `report --batch OUT` and a build into the same OUT start from) and OUT/inputs.json (the
paths built: what `replay --batch OUT` builds again).
Documents pass the door as `ingest` passes them (ingest.Ingest); every stage, the packer too, runs
as its worker runs it (its Worker in the one loop, agents/worker_loop.py) over in-memory topics
(worker_loop.MemoryTopics), in the registry's order and at the workers' batch sizes (agents.max_batch).
For the same input, configuration and seed it yields the dependencies streaming mode yields, and the
same samples up to their depth-1 part: with pack.depth > 1 a build knows every record before it packs,
a streaming packer what is known when it packs (docs/method.md, multi-hop samples).
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import Progress

from entropylong_streamer import registry
from entropylong_streamer.agents import worker_loop
from entropylong_streamer.agents.faults import Backoff, Blocked
from entropylong_streamer.agents.worker_loop import MemorySource, MemoryTopics, Message, Produced, Worker
from entropylong_streamer.agents.workers import PackWorker, StageWorker
from entropylong_streamer.config import Config
from entropylong_streamer.ingest import Door, Ingest, bad_row_letter
from entropylong_streamer.measurements import MemoryCache
from entropylong_streamer.method.samples import Dependency, Sample
from entropylong_streamer.pipeline import Pipeline
from entropylong_streamer.quality.figures import cost_figures, distinct_tokens
from entropylong_streamer.quality.report import RECORDS_FILE, read_records, write_records
from entropylong_streamer.services.door_index import DoorIndex
from entropylong_streamer.services.shards import spread
from entropylong_streamer.sources import BadRow, iter_paths, read_documents
from entropylong_streamer.stages.pack import sample_from
from entropylong_streamer.topics import (
    DEAD_LETTER,
    DEPENDENCIES,
    DOCS,
    DROPPED,
    DependenciesRecord,
    Pair,
    RecordError,
    ShardReady,
    TopicSpec,
)

log = logging.getLogger(__name__)


BUILD_CONFIG = "config.json"
BUILD_INPUTS = "inputs.json"  # the --docs and --corpus paths: what `elong replay --batch OUT` builds again


def read_build_inputs(out: Path) -> tuple[list[Path], list[Path]]:
    """(docs, corpus) of the last build into `out`."""
    path = out / BUILD_INPUTS
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: {out} holds no build of this version of `elong build`")
    inputs = json.loads(path.read_text())
    return [Path(p) for p in inputs["docs"]], [Path(p) for p in inputs["corpus"]]


def dependency_rows(rec: DependenciesRecord, sample: Sample | None = None,
                    records: dict[str, DependenciesRecord] | None = None,
                    sources: dict[str, tuple[str, str]] | None = None) -> list[dict]:
    """One line per measured (document, context, anchor): the dependencies.jsonl format. An accepted
    pair whose context the document's sample holds says how far apart they are there, in tokens. A
    sample of more than one hop (pack.depth) adds a line per deeper edge it holds: the pair as the
    record of the document whose anchor it is (in `records`) measured it, with the sample's document,
    the edge's depth and its distance in the sample. `sources`: doc_id -> (source_id, url) of the documents
    the build read, which name each context's document as the user's files do."""
    sources = sources or {}
    placed = {(d.context_id, d.anchor_index): d for d in (sample.dependencies if sample else ()) if d.depth == 1}
    rows = [_row(rec, p, placed.get((p.context_id, p.anchor_index)), rec.doc_id, sources) for p in rec.pairs]
    for d in sample.dependencies if sample else ():
        target = (records or {}).get(d.target_id) if d.depth > 1 else None
        pair = next((p for p in target.pairs if (p.context_id, p.anchor_index) == (d.context_id, d.anchor_index)),
                    None) if target else None
        if pair is not None:
            rows.append(_row(target, pair, d, rec.doc_id, sources))
    return rows


def _row(rec: DependenciesRecord, p: Pair, d: Dependency | None, sample_doc_id: str,
         sources: dict[str, tuple[str, str]]) -> dict:
    context_doc_id = rec.context(p.context_id).context_doc_id
    # a pool document this build did not read (a pool `elong index` filled) is named by its hash alone
    context_source_id, context_url = sources.get(context_doc_id, ("", ""))
    return {
        "doc_id": rec.doc_id, "source_id": rec.source_id, "url": rec.url, "source": rec.source,
        "context_id": p.context_id, "context_doc_id": context_doc_id,
        "context_source_id": context_source_id, "context_url": context_url,
        "anchor": p.anchor_index, "anchor_span": [p.char_start, p.char_end], "H": p.h, "H_ctx": p.h_ctx,
        "NLL": p.nll, "NLL_ctx": p.nll_ctx, "dI": p.d_i, "accepted": p.accepted,
        # the anchor's word, in the document's tokens, and its NLL without and with the context: what the
        # criterion judged (verify.span_tokens > 1); null when it judged the anchor alone
        "word_span": list(p.span) if p.span else None, "word_NLL": p.span_nll, "word_NLL_ctx": p.span_nll_ctx,
        "retrieved": p.retrieved, "template": p.template, "round": p.round,
        # the sample it is placed in: the document's own, or, for depth > 1, the sample of a document
        # that holds this document's window (and this context before it)
        "sample_doc_id": sample_doc_id, "depth": d.depth if d else 1,
        "in_sample": d is not None,
        "distance_from_context_end": d.from_end if d else None,
        "distance_from_context_start": d.from_start if d else None,
        "config_version": rec.config_version,
    }


@dataclass
class BuildReport:
    documents: int = 0
    dead_letters: list[dict] = field(default_factory=list)
    dropped: list[dict] = field(default_factory=list)  # turned away by the door, with the rule
    shards: list[ShardReady] = field(default_factory=list)
    stats: dict[str, dict] = field(default_factory=dict)
    samples: dict = field(default_factory=dict)  # what the trainer receives: lengths, contexts, distances
    cost: dict = field(default_factory=dict)  # the LM work per emitted token (quality/figures.cost_figures)
    shard_set: dict = field(default_factory=dict)  # the whole set after this build: dir, shards, samples
    already_packed: int = 0  # documents an earlier build into the same --out had packed already
    files: int = 0  # files --docs named or held
    records: dict[str, int] = field(default_factory=dict)  # records each in-memory topic received


def sample_summary(samples: list[Sample]) -> dict:
    """Tokens per sample, verified contexts per sample and dependency distances (context end to
    anchor), as median / p90 / max; with contexts deeper than 1 (pack.depth), the documents a sample
    joins and the contexts and edge distances of each depth."""
    depths = sorted({k for s in samples for k in s.context_depths})
    return {"samples": len(samples), "tokens": spread([len(s) for s in samples]),
            "contexts": spread([len(s.context_ids) for s in samples]),
            "distance": spread([d.from_end for s in samples for d in s.dependencies]),
            "documents": spread([1 + len(s.context_ids) for s in samples]),
            "by_depth": {k: {"contexts": spread([s.context_depths.count(k) for s in samples]),
                             "distance": spread([d.from_end for s in samples for d in s.dependencies if d.depth == k])}
                         for k in depths}}


def load_pool(paths: Iterable[Path], cfg: Config) -> MemoryTopics:
    """The pool's documents as a docs topic, past no door (`elong index` reads them so too); bad
    rows as dead letters."""
    pool = MemoryTopics()
    for item in read_documents(list(paths), cfg.door.html_extractor):
        letter = bad_row_letter(item) if isinstance(item, BadRow) else None
        pool.send([letter or Produced.of(DOCS, item)])
    return pool


def drive(worker: Worker, topics: MemoryTopics, source: TopicSpec, batch: int, progress: Progress, label: str,
          ledger: Ledger | None = None) -> None:
    """The worker in the one loop (worker_loop.py) over everything its source topic holds, batch by batch
    as its streaming worker takes them; outputs and dead letters go to their topics. With a ledger, records
    it holds are skipped (done by an earlier, interrupted build) and each commit adds its records' keys."""

    def committed(msgs: list[Message]) -> None:
        if ledger is not None:
            ledger.add(m.key.hex() for m in msgs if m.key is not None)
        progress.advance(task, len(msgs))

    records = MemorySource(topics, source, batch, committed, ledger.keys if ledger is not None else None)
    task = progress.add_task(label, total=len(records.msgs) + records.skipped)
    if records.skipped:
        worker.stage.stats["done_before"] += records.skipped
        progress.advance(task, records.skipped)
    # an outage (a full disk, the vector store) is waited out as a worker waits it out: nothing is dead-lettered
    worker_loop.run(worker, records, topics, Blocked(worker.name, Backoff()), threading.Event())


class Ledger:
    """The keys of records a stage finished, one per line, appended per batch and fsynced."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.keys = set(path.read_text().split()) if path.exists() else set()

    def add(self, keys: Iterable[str]) -> None:
        new = [k for k in keys if k not in self.keys]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as fh:
            fh.write("".join(k + "\n" for k in new))
            fh.flush()
            os.fsync(fh.fileno())
        self.keys.update(new)


def index_ledger(milvus_uri: str, index_version: str) -> Ledger | None:
    """The pool documents indexed into a local milvus-lite pool under this index version, kept beside it (a
    build run again skips them); none for a server, whose pool another process may change."""
    if "://" in milvus_uri:
        return None
    pool = Path(milvus_uri)
    path = pool.with_name(f"{pool.name}.indexed-{index_version}")
    if not pool.exists():  # a pool removed since: its ledger says nothing
        path.unlink(missing_ok=True)
    return Ledger(path)


def build(cfg: Config, docs: list[Path], corpus: Iterable[Path], out: Path, milvus_uri: str | None = None,
          show_progress: bool = True, pipeline: Pipeline | None = None) -> BuildReport:
    """`pipeline`: one whose models are already loaded (its pool is used as it is)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / BUILD_CONFIG).write_text(json.dumps(cfg.masked(), indent=1) + "\n")
    corpus = list(corpus)
    (out / BUILD_INPUTS).write_text(json.dumps({"docs": [str(p.resolve()) for p in docs],
                                                "corpus": [str(p.resolve()) for p in corpus]}, indent=1) + "\n")
    report = BuildReport()
    topics = MemoryTopics()
    # The door of a build remembers this build only (an in-memory index): a rebuild decides the same.
    ingest = Ingest(cfg, Console(quiet=True), Door(cfg.door, DoorIndex(":memory:")), transport=topics)
    for path in iter_paths(docs):
        ingest.file(path)
        report.files += 1
    ingest.close(ok=True)
    pool = load_pool(iter_paths(list(corpus)), cfg)
    report.documents = ingest.sent
    if not report.documents:  # nothing to build samples for: no model is loaded, the reasons are written
        _collect_rows(report, topics, pool)
        _write_rows(out, report)
        return report
    pipe = pipeline or Pipeline(cfg, milvus_uri=milvus_uri or str(out / "pool.db"))
    with Progress(disable=not show_progress) as progress:
        # The measurement caches outlive the run: a rebuild after a threshold change scores only the
        # documents and measures only the pairs no earlier build with this data_dir did.
        Path(cfg.data_dir).mkdir(parents=True, exist_ok=True)
        indexed = index_ledger(pipe.milvus_uri, cfg.version("index"))  # before the pool is opened (created)
        caches: dict[str, MemoryCache] = {}
        runners: dict[str, StageWorker] = {}
        for spec in registry.active(cfg):
            if spec.runner != "stage":
                continue
            cache = MemoryCache.load(cfg.paths.cache(spec.cache_name)) if spec.cache_name else None
            if cache is not None:
                caches[spec.cache_name] = cache
            runners[spec.name] = StageWorker.build(cfg, spec, pipe, cache)
        # the corpus is the pool before any document arrives, as `elong index` makes it for a stack
        indexer = runners.get("index") or StageWorker.build(cfg, registry.stage("index"), pipe)
        drive(indexer, pool, DOCS, cfg.agents.batch_size("index"), progress, "index (corpus)", indexed)
        for name, runner in runners.items():
            drive(runner, topics, runner.spec.source, cfg.agents.batch_size(name), progress, name)
        for name, cache in caches.items():
            cache.save(cfg.paths.cache(name))
        # the packer's rule, without its wait: a batch has all its input at once
        pack = pipe.stage("pack", shard_root=out / "shards", max_wait_s=math.inf)
        # a batch has every document's record before it packs any: each multi-hop sample may use them all
        deps: list[DependenciesRecord] = topics.records(DEPENDENCIES)
        pack.remember([r for r in deps if r.config_version == cfg.version("verify")])
        packer = PackWorker(cfg, pack, keep=True)
        drive(packer, topics, DEPENDENCIES, cfg.agents.batch_size("pack"), progress, "pack")
        report.shards, samples = packer.shards, dict(packer.samples)
        packed = pack.shards.doc_ids
        for rec in deps:  # packed by an earlier build into this --out: the same sample, rebuilt to describe it
            if rec.doc_id not in samples and rec.doc_id in packed:
                samples[rec.doc_id] = sample_from(rec, pack.separator, pack.seed, pack.sample_tokens,
                                                  pack.known.get if pack.known else None, pack.depth)
    by_doc = {rec.doc_id: rec for rec in deps}
    sources = {d.doc_id: (d.source_id, d.url) for t in (pool, topics) for d in t.records(DOCS)}
    with open(out / "dependencies.jsonl", "w") as fh:
        for rec in deps:
            for row in dependency_rows(rec, samples.get(rec.doc_id), by_doc, sources):
                fh.write(json.dumps(row) + "\n")
    write_records(out / RECORDS_FILE, with_earlier(out / RECORDS_FILE, deps))  # whole records, for `elong report`
    _collect_rows(report, topics, pool)
    _write_rows(out, report)
    report.stats = ({"index": dict(indexer.stage.stats)} | {name: dict(r.stage.stats) for name, r in runners.items()}
                    | {"pack": dict(pack.stats)})
    report.samples = sample_summary(list(samples.values()))
    report.cost = cost_figures([r for r in deps if r.doc_id in samples], sum(len(s) for s in samples.values()),
                               sum(len(s.dependencies) for s in samples.values()),
                               distinct_tokens((len(s), [(c, b - a) for c, (a, b) in zip(s.context_ids, s.context_spans,
                                                                                        strict=True)])
                                               for s in samples.values()))
    report.already_packed = pack.stats["duplicates_skipped"]
    report.shard_set = {"dir": str(pack.shards.dir), "shards": len(pack.shards.entries),
                        "samples": sum(e["samples"] for e in pack.shards.entries)}
    return report


def with_earlier(path: Path, deps: list[DependenciesRecord]) -> list[DependenciesRecord]:
    """The records earlier builds into this --out wrote that this build did not measure again, then this
    build's: `elong report` speaks of a whole shard set, whose samples several builds packed."""
    if not path.exists():
        return deps
    new = {(r.config_version, r.doc_id) for r in deps}
    try:
        earlier = [r for r in read_records(path) if (r.config_version, r.doc_id) not in new]
    except RecordError as exc:  # not ours to keep: the report will say which documents lack a record
        log.warning("%s: the earlier builds' records are not kept: %s", path, exc)
        earlier = []
    return earlier + deps


def _collect_rows(report: BuildReport, topics: MemoryTopics, pool: MemoryTopics) -> None:
    report.records = topics.counts()
    report.dropped = [d.model_dump() for d in topics.records(DROPPED)]
    report.dead_letters = [
        {"stage": d.stage, "reason": d.reason, "doc_id": d.doc_id, "source_id": d.source_id, "input": name,
         "topic": d.topic, "offset": d.offset, "attempts": d.attempts}
        for name, t in (("docs", topics), ("corpus", pool)) for d in t.records(DEAD_LETTER)]


def _write_rows(out: Path, report: BuildReport) -> None:
    for name, rows in (("dead-letter.jsonl", report.dead_letters), ("dropped.jsonl", report.dropped)):
        with open(out / name, "w") as fh:
            fh.writelines(json.dumps(row) + "\n" for row in rows)
