"""The Workers the one loop (worker_loop.py) runs for the record stages and the packer, and what both do
to a batch of messages: decode, call the stage, encode, dead-letter what it rejects (handle_batch).

A record stage (entropy, index, retrieval, verify): its object behind handle_batch, with the measurement
cache read up before a batch and made durable after it (before the outputs that used it are sent), the
output distributions and the per-batch metrics.

The packer: samples are buffered, and at a commit point (the buffer holds a shard's tokens or has waited
pack.max_wait_s) the shard is written and announced before the offsets of the records inside it commit.
A crash between a shard's manifest line and its announcement must not hide it from the trainer: a
streaming packer announces every durable shard again at start (the trainer skips shards it has seen).

Transport-free: Kafka's source and sink (kafka_source.py, kafka_clients.py), batch mode's in-memory
topics and the tests all hand them plain messages.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from entropylong_streamer import metrics
from entropylong_streamer.method.samples import Sample
from entropylong_streamer.pipeline import Pipeline
from entropylong_streamer.quality.gauges import ReportGauges
from entropylong_streamer.stages.base import StageResult
from entropylong_streamer.stages.pack import PackStage, shard_ready
from entropylong_streamer.topics import (
    DEAD_LETTER,
    DEPENDENCIES,
    SHARD_READY,
    VERIFIED,
    DeadLetter,
    RecordError,
    ShardReady,
    TopicSpec,
)

from .faults import as_outage
from .verified_follower import VerifiedFollower
from .worker_loop import Message, Produced, Worker

if TYPE_CHECKING:
    from entropylong_streamer.config import Config
    from entropylong_streamer.registry import StageSpec

log = logging.getLogger(__name__)


def handle_batch(
    stage_name: str,
    messages: list[Message],
    in_spec: TopicSpec,
    out_spec: TopicSpec | None,
    process: Callable[[list[Any]], StageResult],
    expected_version: str | None = None,
    max_bytes: int | None = None,
    attempts: int = 3,
) -> tuple[list[Produced], list[Produced]]:
    """-> (outputs for out_spec, dead letters). Nothing is lost: undecodable records, stage rejects
    and records on which the stage raised, alone, `attempts` times all become dead letters with a
    reason. An outage (faults.py: the vector store, the broker, the engine, the file system) is no
    record's fault: it raises Outage, and the caller runs the same batch again later.

    Records made under another config version than the one this stage consumes belong to another
    shard set and are skipped, so versions never mix after a replay. An output larger than
    max_bytes (kafka.max_message_bytes) would fail the send for the whole batch: its input is
    dead-lettered instead.
    """
    taken, dead = decode_batch(stage_name, messages, in_spec, expected_version)
    decoded = [rec for rec, _ in taken]
    origin = {id(rec): msg for rec, msg in taken}
    try:
        results = [process(decoded) if decoded else StageResult()]
    except Exception as exc:  # one bad record must not cost the batch: isolate it, one record at a time
        raise_outage(exc)
        results = []
        for rec in decoded:
            for attempt in range(1, attempts + 1):
                try:
                    results.append(process([rec]))
                    break
                except Exception as alone:
                    raise_outage(alone)
                    if attempt == attempts:
                        dead.append(dead_letter(stage_name, f"error: {type(alone).__name__}: {alone}",
                                                origin[id(rec)], getattr(rec, "doc_id", ""), source_id_of(rec),
                                                attempts))
    outputs = []
    for result in results:
        for rej in result.rejects:
            dead.append(dead_letter(stage_name, rej.reason, origin[id(rej.record)], rej.doc_id,
                                    source_id_of(rej.record)))
        if out_spec is None:
            continue
        for o in result.outputs:
            value = out_spec.encode(o)
            if max_bytes is not None and len(value) > max_bytes:
                doc_id = getattr(o, "doc_id", "")
                msg = next(origin[id(r)] for r in decoded if getattr(r, "doc_id", "") == doc_id)
                dead.append(dead_letter(stage_name, f"record_too_large: its {out_spec.name} record has {len(value):,} "
                                        f"bytes > kafka.max_message_bytes {max_bytes:,}", msg, doc_id, source_id_of(o)))
                continue
            outputs.append(Produced(out_spec, out_spec.key(o), value))
    return outputs, dead


def decode_batch(stage_name: str, messages: list[Message], in_spec: TopicSpec,
                 expected_version: str | None = None) -> tuple[list[tuple[Any, Message]], list[Produced]]:
    """-> ((record, its message) of each record for this version, dead letters of the undecodable). A
    record made under another config version than expected_version belongs to another data set: skipped."""
    taken, dead = [], []
    for msg in messages:
        try:
            rec = in_spec.decode(msg.value)
        except RecordError as exc:
            dead.append(dead_letter(stage_name, f"decode: {exc}", msg))
            continue
        if expected_version is not None and getattr(rec, "config_version", expected_version) != expected_version:
            continue
        taken.append((rec, msg))
    return taken, dead


def raise_outage(exc: BaseException) -> None:
    """Raise Outage where exc is the infrastructure's fault (EngineLost where the engine is gone)."""
    if (outage := as_outage(exc)) is not None:
        raise outage from exc


def dead_letter(stage: str, reason: str, msg: Message, doc_id: str = "", source_id: str = "",
                attempts: int = 1) -> Produced:
    rec = DeadLetter(stage=stage, reason=reason[:2000], topic=msg.topic, partition=msg.partition,
                     offset=msg.offset, key=msg.key, payload=msg.value or b"", doc_id=doc_id, source_id=source_id,
                     attempts=attempts)
    return Produced.of(DEAD_LETTER, rec)


def source_id_of(record: Any) -> str:
    """The source's own id of a record's document (docs, anchors, candidates, dependencies)."""
    found = getattr(record, "source_id", "")
    return found if isinstance(found, str) else ""


class StageWorker(Worker):
    def __init__(self, cfg: Config, spec: StageSpec, stage: Any) -> None:
        self.name, self.spec, self.stage = spec.name, spec, stage
        self.expected = spec.consumes(cfg)
        self.max_bytes = cfg.kafka.max_message_bytes
        self.attempts = cfg.agents.poison_attempts
        self.meter = metrics.BatchMeter(spec.name, getattr(stage, "engine", None), stage.stats)
        self.last_log = ""

    @classmethod
    def build(cls, cfg: Config, spec: StageSpec, pipe: Pipeline, cache: Any = None) -> StageWorker:
        """spec's stage object from the Pipeline, with the measurement cache it keeps where given (the
        worker's changelog topic, batch mode's file)."""
        return cls(cfg, spec, pipe.stage(spec.name, cache))

    def _process(self, records: list) -> StageResult:
        result = self.stage.process(records)
        metrics.observe_outputs(self.spec.name, result.outputs)
        return result

    def run(self, msgs: list[Message]) -> tuple[list[Produced], list[Produced]]:
        t0 = time.perf_counter()
        cache = getattr(self.stage, "cache", None)
        if cache is not None:
            cache.catch_up({m.partition for m in msgs})
        outs, dead = handle_batch(self.spec.name, msgs, self.spec.source, self.spec.sink, self._process,
                                  self.expected, self.max_bytes, self.attempts)
        if cache is not None:
            cache.flush({m.key.decode(errors="replace"): m.partition for m in msgs if m.key})
        self.last_log = self.meter.observe(len(msgs), len(outs), len(dead), time.perf_counter() - t0)
        return outs, dead

    def done(self) -> None:
        if self.last_log:
            log.info("%s", self.last_log)
            self.last_log = ""


class PackWorker(Worker):
    """peers (pack.depth > 1, streaming): what every packer made known of the documents it packed, read
    up before each batch, and this packer's own sent to them. quality: the gauges of `elong report`'s
    figures, shown on change. announce_earlier: announce the set's durable shards at start. keep: hold every
    shard announced and its samples (batch mode's report); a streaming packer, which writes thousands of
    shards, keeps none."""

    name = "pack"

    def __init__(self, cfg: Config, stage: PackStage, peers: VerifiedFollower | None = None,
                 quality: ReportGauges | None = None, announce_earlier: bool = False, keep: bool = False) -> None:
        self.stage, self.peers, self.quality, self.announce_earlier = stage, peers, quality, announce_earlier
        self.keep = keep
        if peers is not None:
            stage.outbox = []
        self.version = cfg.version("verify")
        self.meter = metrics.BatchMeter("pack", stats=stage.stats)
        self.pending: list[ShardReady] = []  # a durable shard whose announcement or commit has not gone through
        self.shards: list[ShardReady] = []  # with keep: every shard this worker wrote and announced
        self.samples: dict[str, Sample] = {}  # with keep: their samples, by document

    def start(self) -> list[Produced]:
        if not self.announce_earlier:
            return []
        return [announcement(shard_ready(self.stage.shards.config_version, e)) for e in self.stage.shards.entries]

    def before(self, msgs: list[Message]) -> None:
        if self.quality is not None:
            self.quality.refresh()

    def run(self, msgs: list[Message]) -> tuple[list[Produced], list[Produced]]:
        t0 = time.perf_counter()
        if self.peers is not None:
            self.peers.catch_up_all()
        _, dead = handle_batch("pack", msgs, DEPENDENCIES, None, self.stage.process, self.version)
        known = [Produced.of(VERIFIED, r) for r in self.stage.outbox or ()]
        if self.stage.outbox:
            self.stage.outbox = []
        # samples leave in shards: counted as "out" when their shard is announced
        self.meter.observe(len(msgs), 0, len(dead), time.perf_counter() - t0)
        return known, dead

    def due(self, took: bool) -> bool:
        # a full or waiting buffer makes a shard; an empty one means everything consumed is in a shard,
        # dead-lettered or a duplicate: committed at once
        return self.stage.should_flush() or (took and not self.stage.buffer)

    def flush(self) -> list[Produced]:
        if not self.pending and (ready := self.stage.flush()) is not None:
            self.pending.append(ready)
        return [announcement(r) for r in self.pending]

    def done(self) -> None:
        if not self.pending:
            return
        ready = self.pending.pop()
        if self.keep:
            self.shards.append(ready)
            self.samples.update((s.doc_id, s) for s in self.stage.flushed)
        r = self.stage.shards.entries[-1]
        metrics.observe_shard(r)
        metrics.observe_samples(self.stage.flushed)
        log.info("shard %s: %d sequences, %d samples, %d tokens, fill %.3f, %.1f samples and %.1f contexts per "
                 "sequence, mean context dI %s, median sample %s tokens, median dependency distance %s tokens",
                 ready.shard_id, ready.sequences, ready.samples, ready.tokens,
                 r["fill_ratio"], r["samples_per_sequence"], r["contexts_per_sequence"],
                 "-" if r["mean_context_di"] is None else f"{r['mean_context_di']:.3f}",
                 r["sample_tokens"]["median"], r["dependency_distance"]["median"])

    def close(self) -> None:
        if self.peers is not None:
            self.peers.close()


def announcement(ready: ShardReady) -> Produced:
    return Produced.of(SHARD_READY, ready)
