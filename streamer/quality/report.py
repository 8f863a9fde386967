"""The data-quality report over a shard set and the dependencies records it was packed from.

    shards + records -> figures (no LM work) + CE-versus-context curves for the verified samples
    and two baselines on the same documents and token budget -> report.json, PNGs, a summary.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import msgpack
import numpy as np

from entropylong_streamer.config import Config
from entropylong_streamer.registry import criterion
from entropylong_streamer.stages.pack import sample_from
from entropylong_streamer.topics import DEPENDENCIES, DependenciesRecord
from entropylong_streamer.topics.base import RecordError, TopicSpec

from .contexts import CONDITIONS, PoolChunk, Prefixes, prefixes
from .curves import FULL, DocCurves, Plan, fit_budget, length_grid, measure, room_beside, summarize
from .figures import cost_figures, dependency_figures, distinct_tokens, sample_figures
from .gauges import REPORT_FILE

RECORDS_FILE = "dependencies.msgpack"  # what `elong build` writes beside dependencies.jsonl


@dataclass
class ShardSetView:
    """doc_id -> its sample's tokens, as the shards hold them; the manifest's entries; and, from shards
    that record them, each sample's contexts (id, start, end, depth) and verified edges (anchor, context
    start, context end, depth), in the sample's positions."""

    samples: dict[str, list[int]] = field(default_factory=dict)
    manifest: list[dict] = field(default_factory=list)
    contexts: dict[str, list[tuple[str, int, int, int]]] = field(default_factory=dict)
    edges: dict[str, list[tuple[int, int, int, int]]] = field(default_factory=dict)

    def depth_one(self, doc_id: str, separator: int) -> list[int]:
        """The sample without its contexts deeper than 1 (pack.depth), each with the separator before it:
        what the document's own record rebuilds, whatever was known of the others when it was packed."""
        ids = self.samples[doc_id]
        cut = sorted((a - separator, b) for _, a, b, depth in self.contexts.get(doc_id, ()) if depth > 1)
        out, at = [], 0
        for a, b in cut:
            out += ids[at:a]
            at = b
        return out + ids[at:]


def read_shard_set(shard_dir: Path) -> ShardSetView:
    from entropylong_streamer.services.shards import MANIFEST, read_manifest, read_shard

    if not (shard_dir / MANIFEST).exists():
        raise FileNotFoundError(f"no shard set at {shard_dir} (no {MANIFEST}): has the packer written a shard?")
    view = ShardSetView(manifest=read_manifest(shard_dir))
    for entry in view.manifest:
        for seq in read_shard(Path(entry["path"])):
            ids = seq["input_ids"].tolist()
            spans = seq["indices"].reshape(-1, 2).tolist()
            for doc_id, (start, end) in zip(seq["doc_ids"], spans, strict=True):
                view.samples[doc_id] = ids[start:end]
            if "contexts" not in seq:  # outside the support window (docs/operations.md)
                raise RecordError(f"{entry['path']}: a shard without the contexts column, written before the "
                                  "shard format this version reads: build it again into another --out")

            def owner(position: int, spans=spans, doc_ids=seq["doc_ids"]) -> tuple[str, int]:
                i = next(i for i, (a, b) in enumerate(spans) if a <= position < b)
                return doc_ids[i], spans[i][0]

            for c, a, b, depth in seq["contexts"]:
                doc_id, start = owner(a)
                view.contexts.setdefault(doc_id, []).append((c, a - start, b - start, depth))
            for (anchor, a, b), depth in zip(seq["dependencies"], seq["dependency_depths"], strict=True):
                doc_id, start = owner(anchor)
                view.edges.setdefault(doc_id, []).append((anchor - start, a - start, b - start, depth))
    return view


def sample_row(doc_id: str, tokens: int, contexts: list[tuple[str, int, int, int]],
               edges: list[tuple[int, int, int, int]]) -> dict:
    """One sample as the report lists it: its length, its contexts by depth and every verified edge's
    depth and distance (tokens from the context's end to the anchor)."""
    by_depth: dict[str, int] = {}
    for *_, depth in contexts:
        by_depth[str(depth)] = by_depth.get(str(depth), 0) + 1
    return {"doc_id": doc_id, "tokens": tokens, "documents": 1 + len(contexts), "contexts_by_depth": by_depth,
            "edges": [[depth, anchor - end] for anchor, _, end, depth in sorted(edges)]}


def write_records(path: Path, records: Iterable[DependenciesRecord]) -> int:
    """A msgpack stream of dependencies records (each the topic's own encoding), replacing `path` whole."""
    n = 0
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        for rec in records:
            fh.write(DEPENDENCIES.encode(rec))
            n += 1
    tmp.replace(path)
    return n


def read_records(path: Path) -> Iterable[DependenciesRecord]:
    with open(path, "rb") as fh:
        unpacker = msgpack.Unpacker(fh, raw=False, use_list=True, max_buffer_size=64 << 20)
        done = 0
        try:
            for raw in unpacker:
                yield DEPENDENCIES.record.model_validate(raw)
                done += 1
        except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
            raise RecordError(f"{path}: record {done} is not a dependencies record: {exc}") from exc


def records_from_topic(cfg: Config, undecodable: list[str], poll_ms: int = 1000) -> Iterable[DependenciesRecord]:
    """Every record of the dependencies topic up to its end offsets at the start; a record that
    does not decode is skipped and its reason appended to `undecodable`."""
    for msg in topic_messages(cfg, DEPENDENCIES, poll_ms):
        try:
            yield DEPENDENCIES.decode(msg.value)
        except RecordError as exc:
            undecodable.append(f"{msg.topic}[{msg.partition}]@{msg.offset}: {exc}")


def topic_messages(cfg: Config, spec: TopicSpec, poll_ms: int = 1000) -> Iterable:
    """A topic's messages up to its end offsets at the start (no consumer group: nothing is
    committed, no stage's group is touched)."""
    from kafka import KafkaConsumer, TopicPartition

    from entropylong_streamer.agents.kafka_clients import client_kwargs

    topic = spec.full_name(cfg.kafka.topic_prefix)
    cons = KafkaConsumer(enable_auto_commit=False, **client_kwargs(cfg))
    try:
        parts = [TopicPartition(topic, p) for p in sorted(cons.partitions_for_topic(topic) or ())]
        if not parts:
            raise FileNotFoundError(f"topic {topic} not found on {cfg.kafka.bootstrap_servers}: is the stack up?")
        cons.assign(parts)
        cons.seek_to_beginning(*parts)
        ends = {tp: n for tp, n in cons.end_offsets(parts).items() if n > 0}
        while ends:
            for tp, msgs in cons.poll(timeout_ms=poll_ms).items():
                yield from (msg for msg in msgs if msg.offset < ends.get(tp, 0))
            ends = {tp: n for tp, n in ends.items() if cons.position(tp) < n}
    finally:
        cons.close()


def _pick(doc_ids: Iterable[str], n: int) -> list[str]:
    """A stable choice of n documents (by hash, not by arrival order)."""
    return sorted(doc_ids, key=lambda d: hashlib.sha256(d.encode()).digest())[:n]


def build_figures(cfg: Config, records: Iterable[DependenciesRecord], shards: ShardSetView,
                  pool: list[PoolChunk], separator: tuple[int, ...], max_docs: int = 64,
                  undecodable: int = 0) -> tuple[dict, list[Prefixes]]:
    """The report's figures that need no LM (lengths, distances, acceptance, dI, fill), and the
    documents with a verified context whose curves it would measure (at most max_docs, a stable
    random choice, in that order)."""
    p = cfg.pack
    version = cfg.version("verify")
    latest: dict[str, DependenciesRecord] = {}
    other_versions = 0
    for rec in records:
        if rec.config_version != version:
            other_versions += 1
            continue
        latest[rec.doc_id] = rec
    matched, mismatched, contexts, tokens, distances, dependencies = [], [], [], [], [], 0
    per_sample, held = [], []
    for doc_id in sorted(set(latest) & set(shards.samples)):
        rec = latest[doc_id]
        sample = sample_from(rec, separator, p.seed, p.sample_length)
        if list(sample.token_ids) != shards.depth_one(doc_id, len(separator)):
            mismatched.append(doc_id)  # packed under settings these records do not reproduce
            continue
        matched.append(rec)
        # what the shard holds: with pack.depth > 1, more than the record rebuilds
        pieces = shards.contexts.get(doc_id) or [(c, a, b, 1) for c, (a, b) in
                                                 zip(sample.context_ids, sample.context_spans, strict=True)]
        edges = shards.edges.get(doc_id) or [(d.anchor, d.context_start, d.context_end, 1)
                                             for d in sample.dependencies]
        contexts.append(len(pieces))
        tokens.append(len(shards.samples[doc_id]))
        distances += [(anchor - b, anchor - a, depth) for anchor, a, b, depth in edges]
        dependencies += len(edges)
        per_sample.append(sample_row(doc_id, len(shards.samples[doc_id]), pieces, edges))
        held.append((len(shards.samples[doc_id]), [(c, b - a) for c, a, b, _ in pieces]))
    report: dict = {
        "created_unix": time.time(),
        "config": {"schema_version": cfg.schema_version, "stage_versions": cfg.stage_versions(),
                   "model": cfg.model.path, "epsilon": cfg.verify.epsilon, "criterion": cfg.verify.criterion,
                   "alpha": cfg.entropy.alpha, "top_k": cfg.retrieval.top_k},
        "inputs": {"samples_in_shards": len(shards.samples), "records_of_this_version": len(latest),
                   "records_of_other_versions": other_versions, "matched": len(matched),
                   "shard_samples_without_record": len(set(shards.samples) - set(latest)),
                   "records_not_yet_in_a_shard": len(set(latest) - set(shards.samples)),
                   "records_disagreeing_with_shard": len(mismatched), "records_undecodable": undecodable},
        "dependencies": dependency_figures(matched, criterion(cfg)),
        "samples": sample_figures(contexts, tokens, shards.manifest, distances, per_sample),
        "cost": cost_figures(matched, sum(tokens), dependencies, distinct_tokens(held)),
    }
    with_context = {r.doc_id: r for r, c in zip(matched, contexts, strict=True) if c}
    docs = [prefixes(with_context[d], shards.samples[d], pool, separator, p.seed)
            for d in _pick(with_context, max_docs)]
    report["curves"] = {"status": "pending", "documents": 0, "documents_with_contexts": len(with_context),
                        "documents_without_contexts": len(matched) - len(with_context),
                        "random_prefix_short": sum(len(d.random) < len(d.verified) for d in docs),
                        "pool_chunks_sampled": len(pool), "points": []}
    report["headline"] = headline(report)
    return report, docs


def plan_curves(report: dict, docs: list[Prefixes], separator: tuple[int, ...], max_tokens: int | None,
                max_lm_tokens: int | None, no_context: Callable[[Prefixes], np.ndarray | None] | None = None) -> Plan:
    """Which documents and lengths the curves measure within max_lm_tokens, recorded in the report
    (what was left out, what the no-context scores already measured saved)."""
    grid = length_grid(max((len(d.verified) for d in docs), default=0))
    curves = [DocCurves(d, room_beside(len(d.doc), separator, max_tokens)) for d in docs]
    reused = 0
    for dc in curves:
        nll = no_context(dc.prefixes) if no_context is not None else None
        if nll is not None and len(nll) == len(dc.prefixes.doc):
            dc.known[(CONDITIONS[0], 0)] = nll
            reused += len(separator) + len(dc.prefixes.doc)
    plan = fit_budget(curves, grid, separator, max_lm_tokens)
    c = report["curves"]
    c.update(documents=len(plan.curves), grid=plan.grid, lm_tokens_planned=plan.lm_tokens, max_lm_tokens=max_lm_tokens,
             left_out_documents=plan.left_out_documents, left_out_lengths=plan.left_out_lengths,
             lm_tokens_reused=reused, scoring_context_tokens=max_tokens,
             documents_beyond_scoring_context=sum(dc.room is not None and len(dc.prefixes.verified) > dc.room
                                                  for dc in plan.curves))
    if plan.needed:
        c["status"] = f"over budget: the first document needs {plan.needed:,} LM tokens at the shortest grid"
    return plan


def finish_curves(report: dict, plan: Plan, engine, separator: tuple[int, ...],
                  advance: Callable[[int, int], None] | None = None) -> dict:
    """Measure the planned curves; the report with its points and headline."""
    c = report["curves"]
    if plan.curves and not plan.needed:
        before = engine.lm_tokens
        c["points"] = summarize(measure(engine, plan.curves, plan.grid, separator, advance=advance), plan.grid)
        c["lm_tokens"] = engine.lm_tokens - before
        c["status"] = "done"
    elif c["status"] == "pending":
        c["status"] = "done"  # nothing to measure
    report["headline"] = headline(report)
    return report


def headline(report: dict) -> dict:
    """The figures a dashboard shows: CE with the whole context, and each baseline's gap."""
    full = next((pt for pt in report["curves"]["points"] if pt["context_tokens"] == FULL), None)
    out = {"acceptance_rate": report["dependencies"]["acceptance_rate"],
           "documents_measured": report["curves"]["documents"] if report["curves"]["points"] else 0,
           "lm_tokens_per_emitted_token": report["cost"]["per_emitted_token"]["lm_tokens"]}
    if full is not None:
        for where in ("all", "anchors"):
            out[f"ce_{where}"] = full[where]["ce"]
            out[f"gap_{where}"] = {b: full[where]["gap_to_verified"][b]["gap"] for b in CONDITIONS[1:]}
    return out


def write_report(report: dict, out_dir: Path) -> list[Path]:
    from .plots import plot_curves, plot_d_i, plot_lengths

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / REPORT_FILE]
    tmp = paths[0].with_suffix(".tmp")
    tmp.write_text(json.dumps(report, indent=1))
    tmp.replace(paths[0])  # a reader (the metrics collector) never sees half a report
    points = report["curves"]["points"]
    if points:
        for where, title in (("all", "every document token"), ("anchors", "at the anchors")):
            path = out_dir / f"ce_vs_context_{where}.png"
            plot_curves(points, where, path, f"cross-entropy, {title}")
            paths.append(path)
    path = out_dir / "d_i.png"
    plot_d_i(report["dependencies"]["d_i"], path)
    paths.append(path)
    path = out_dir / "lengths.png"
    plot_lengths(report["samples"], path)
    paths.append(path)
    return paths
