"""Batch mode: the same stages in one process without Kafka.

build(docs, corpus) -> OUT/shards/<version>/..., OUT/dependencies.jsonl, OUT/dead-letter.jsonl,
OUT/dropped.jsonl (documents the door turned away).
For the same input, configuration and seed it yields the dependencies and samples streaming mode
yields: both call the same stage objects, in the registry's order and at the configuration's batch
sizes (agents.max_batch), on each document.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from rich.progress import Progress

from entropylong_streamer import registry
from entropylong_streamer.agents.adapter import source_id_of
from entropylong_streamer.config import Config
from entropylong_streamer.measurements import MemoryCache
from entropylong_streamer.method.samples import Sample
from entropylong_streamer.pipeline import Pipeline
from entropylong_streamer.quality.report import RECORDS_FILE, write_records
from entropylong_streamer.services.door_index import DoorIndex
from entropylong_streamer.services.shards import spread
from entropylong_streamer.stages.base import StageResult
from entropylong_streamer.stages.door import Door
from entropylong_streamer.stages.ingest import BadRow, read_documents
from entropylong_streamer.stages.pack import sample_from
from entropylong_streamer.topics import DEPENDENCIES, DOCS, DependenciesRecord, Doc, ShardReady


def dependency_rows(rec: DependenciesRecord, sample: Sample | None = None) -> list[dict]:
    """One line per measured (document, context, anchor): the dependencies.jsonl format. An accepted
    pair whose context the document's sample holds says how far apart they are there, in tokens."""
    ctx_doc = {c.context_id: c.context_doc_id for c in rec.contexts}
    placed = {(d.context_id, d.anchor_index): d for d in (sample.dependencies if sample else ())}
    return [{
        "doc_id": rec.doc_id, "source_id": rec.source_id, "url": rec.url, "source": rec.source,
        "context_id": p.context_id, "context_doc_id": ctx_doc[p.context_id],
        "anchor": p.anchor_index, "anchor_span": [p.char_start, p.char_end], "H": p.h, "H_ctx": p.h_ctx,
        "NLL": p.nll, "NLL_ctx": p.nll_ctx, "dI": p.d_i, "accepted": p.accepted,
        "retrieved": p.retrieved, "template": p.template, "round": p.round,
        "in_sample": d is not None,
        "distance_from_context_end": d.from_end if d else None,
        "distance_from_context_start": d.from_start if d else None,
        "config_version": rec.config_version,
    } for p in rec.pairs for d in (placed.get((p.context_id, p.anchor_index)),)]


@dataclass
class BuildReport:
    documents: int = 0
    dead_letters: list[dict] = field(default_factory=list)
    dropped: list[dict] = field(default_factory=list)  # turned away by the door, with the rule
    shards: list[ShardReady] = field(default_factory=list)
    stats: dict[str, dict] = field(default_factory=dict)
    samples: dict = field(default_factory=dict)  # what the trainer receives: lengths, contexts, distances
    shard_set: dict = field(default_factory=dict)  # the whole set after this build: dir, shards, samples
    already_packed: int = 0  # documents an earlier build into the same --out had packed already


def sample_summary(samples: list[Sample]) -> dict:
    """Tokens per sample, verified contexts per sample and dependency distances (context end to
    anchor), as median / p90 / max."""
    return {"samples": len(samples), "tokens": spread([len(s) for s in samples]),
            "contexts": spread([len(s.context_ids) for s in samples]),
            "distance": spread([d.from_end for s in samples for d in s.dependencies])}


def unique_docs(paths: list[Path], report: BuildReport, cfg: Config, door: Door | None = None) -> list[Doc]:
    """The documents in the files; with a door, only those it admits (the rest in report.dropped)."""
    seen: dict[str, Doc] = {}
    for item in read_documents(paths, cfg.door.html_extractor):
        if isinstance(item, BadRow):
            report.dead_letters.append({"stage": "ingest", "where": item.where, "reason": item.reason})
        elif door is None:
            seen.setdefault(item.doc_id, item)
        elif isinstance(out := door.admit(item), Doc):
            seen[out.doc_id] = out
        else:
            report.dropped.append(out.model_dump())
    return list(seen.values())


def _staged(progress: Progress, label: str, items: list, batch: int, fn: Callable[[list], StageResult],
            report: BuildReport) -> list:
    out: list = []
    task = progress.add_task(label, total=len(items))
    for i in range(0, len(items), batch):
        res = fn(items[i : i + batch])
        out.extend(res.outputs)
        report.dead_letters += [{"stage": label, "doc_id": r.doc_id, "source_id": source_id_of(r.record),
                                 "reason": r.reason} for r in res.rejects]
        progress.advance(task, len(items[i : i + batch]))
    return out


def build(cfg: Config, docs: list[Path], corpus: Iterable[Path], out: Path, milvus_uri: str | None = None,
          show_progress: bool = True, pipeline: Pipeline | None = None) -> BuildReport:
    """`pipeline`: one whose models are already loaded (its pool is used as it is)."""
    out.mkdir(parents=True, exist_ok=True)
    pipe = pipeline or Pipeline(cfg, milvus_uri=milvus_uri or str(out / "pool.db"))
    report = BuildReport()
    # The door of a build remembers this build only (an in-memory index): a rebuild decides the same.
    documents = unique_docs(docs, report, cfg, Door(cfg.door, DoorIndex(":memory:")))
    pool_docs = unique_docs(list(corpus), report, cfg)
    report.documents = len(documents)
    if not documents:  # nothing to build samples for: no model is loaded, the reasons are written
        _write_rows(out, report)
        return report
    with Progress(disable=not show_progress) as progress:
        # The measurement caches outlive the run: a rebuild after a threshold change scores only the
        # documents and measures only the pairs no earlier build with this data_dir did.
        caches: dict[str, MemoryCache] = {}
        specs = [spec for spec in registry.active(cfg) if spec.runner == "faust"]
        stages = {}
        for spec in specs:
            stage = stages[spec.name] = spec.build(pipe)
            if spec.cache_name:
                stage.cache = caches[spec.cache_name] = MemoryCache.load(cfg.paths.cache(spec.cache_name))
        # the corpus is the pool before any document arrives, as `elong index` makes it for a stack
        indexer = stages.get("index") or pipe.index()
        _staged(progress, "index (corpus)", pool_docs, cfg.agents.batch_size("index"), indexer.process, report)
        records: dict[str, list] = {DOCS.name: documents}
        for spec in specs:
            produced = _staged(progress, spec.name, records[spec.source.name], cfg.agents.batch_size(spec.name),
                               stages[spec.name].process, report)
            if spec.sink is not None:
                records[spec.sink.name] = produced
        deps = records[DEPENDENCIES.name]
        Path(cfg.data_dir).mkdir(parents=True, exist_ok=True)
        for name, cache in caches.items():
            cache.save(cfg.paths.cache(name))
        pack = pipe.pack(out / "shards")
        samples: dict[str, Sample] = {}
        packing = progress.add_task("pack", total=len(deps))
        for i in range(0, len(deps), 16):
            res = pack.process(deps[i : i + 16])
            progress.advance(packing, len(deps[i : i + 16]))
            samples.update((s.doc_id, s) for s in res.outputs)
            report.dead_letters += [{"stage": "pack", "doc_id": r.doc_id, "source_id": source_id_of(r.record),
                                     "reason": r.reason} for r in res.rejects]
            if pack.buffered_tokens >= pack.target_tokens:
                report.shards.append(pack.flush())
        last = pack.flush()
        if last is not None:
            report.shards.append(last)
        packed = pack.shards.doc_ids
        for rec in deps:  # packed by an earlier build into this --out: the same sample, rebuilt to describe it
            if rec.doc_id not in samples and rec.doc_id in packed:
                samples[rec.doc_id] = sample_from(rec, pack.separator, pack.seed, pack.sample_tokens)
    with open(out / "dependencies.jsonl", "w") as fh:
        for rec in deps:
            for row in dependency_rows(rec, samples.get(rec.doc_id)):
                fh.write(json.dumps(row) + "\n")
    write_records(out / RECORDS_FILE, deps)  # whole records, for `elong report`
    _write_rows(out, report)
    report.stats = {s.name: dict(s.stats) for s in (*stages.values(), pack)}
    report.samples = sample_summary(list(samples.values()))
    report.already_packed = pack.stats["duplicates_skipped"]
    report.shard_set = {"dir": str(pack.shards.dir), "shards": len(pack.shards.entries),
                        "samples": sum(e["samples"] for e in pack.shards.entries)}
    return report


def _write_rows(out: Path, report: BuildReport) -> None:
    for name, rows in (("dead-letter.jsonl", report.dead_letters), ("dropped.jsonl", report.dropped)):
        with open(out / name, "w") as fh:
            fh.writelines(json.dumps(row) + "\n" for row in rows)
