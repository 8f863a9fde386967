"""The packer as the one loop's Worker: samples are buffered, and at a commit point (the buffer holds a
shard's tokens or has waited pack.max_wait_s) the shard is written and announced before the offsets
of the records inside it commit. A crash between a shard's manifest line and its announcement must
not hide it from the trainer: a streaming packer announces every durable shard again at start (the
trainer skips shards it has seen)."""

from __future__ import annotations

import logging
import time

from entropylong_streamer import metrics
from entropylong_streamer.config import Config
from entropylong_streamer.method.samples import Sample
from entropylong_streamer.quality.gauges import ReportGauges
from entropylong_streamer.stages.pack import PackStage, shard_ready
from entropylong_streamer.topics import DEPENDENCIES, SHARD_READY, VERIFIED, ShardReady

from .adapter import Message, Produced, handle_batch
from .verified_follower import VerifiedFollower
from .worker_loop import Worker

log = logging.getLogger(__name__)


class PackWorker(Worker):
    """peers (pack.depth > 1, streaming): what every packer made known of the documents it packed, read
    up before each batch, and this packer's own sent to them. quality: the gauges of `elong report`'s
    figures, shown on change. announce_earlier: announce the set's durable shards at start."""

    name = "pack"

    def __init__(self, cfg: Config, stage: PackStage, peers: VerifiedFollower | None = None,
                 quality: ReportGauges | None = None, announce_earlier: bool = False) -> None:
        self.stage, self.peers, self.quality, self.announce_earlier = stage, peers, quality, announce_earlier
        if peers is not None:
            stage.outbox = []
        self.version = cfg.version("verify")
        self.meter = metrics.BatchMeter("pack", stats=stage.stats)
        self.pending: list[ShardReady] = []  # a durable shard whose announcement or commit has not gone through
        self.shards: list[ShardReady] = []  # every shard this worker wrote and announced
        self.samples: dict[str, Sample] = {}  # their samples, by document

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
