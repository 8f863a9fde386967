"""The packer's Kafka loop: shards are durable before the offsets of the records inside them commit."""

from __future__ import annotations

import logging
import threading
import time

from entropylong_streamer import metrics, registry
from entropylong_streamer.config import Config
from entropylong_streamer.pipeline import Pipeline
from entropylong_streamer.quality.gauges import REPORT_FILE, ReportGauges, report_dir
from entropylong_streamer.services.patches import install_kafka_backoff
from entropylong_streamer.stages.pack import shard_ready
from entropylong_streamer.topics import DEPENDENCIES, SHARD_READY, VERIFIED, ShardReady

from . import kafka_clients as kc
from . import worker_metrics
from .adapter import Produced, handle_batch
from .faults import Backoff, Blocked, outage_file, retrying
from .verified_follower import VerifiedFollower

log = logging.getLogger(__name__)


def run(cfg: Config, stop: threading.Event | None = None) -> None:
    stop = stop or kc.stop_event()
    install_kafka_backoff(cfg.kafka.idle_fetch_backoff_ms / 1000)
    prefix = cfg.kafka.topic_prefix
    stage = Pipeline(cfg).stage("pack")
    worker_metrics.serve(cfg, "pack", stop)
    metrics.READY.labels("pack").set(1)
    log.info("pack worker ready: %d shards in %s", len(stage.shards.entries), stage.shards.dir)
    meter = metrics.BatchMeter("pack", stats=stage.stats)
    quality = ReportGauges(report_dir(cfg) / REPORT_FILE)  # `elong report` writes it; shown on change
    cons = kc.consumer(cfg, DEPENDENCIES.full_name(prefix), registry.stage("pack").group(cfg))
    # pack.depth > 1: what every packer made known of the documents it packed
    peers = None if stage.known is None else VerifiedFollower(cfg, stage.known, cfg.version("verify"))
    if peers is not None:
        stage.outbox = []
    prod = kc.producer(cfg)
    # A crash between a shard's manifest line and its announcement must not hide it from the
    # trainer: announce every durable shard again at start (the trainer skips shards it has seen).
    kc.send_all(prod, prefix, [announcement(shard_ready(stage.shards.config_version, e)) for e in stage.shards.entries])
    # A shard the disk refuses (full, gone) or an announcement the broker refuses is an outage: nothing is
    # committed, nothing new is taken, and the same buffer is flushed again after a back-off. A wait past the
    # consumer's max.poll.interval costs a rejoin: the records come again and are skipped as packed.
    blocked = Blocked("pack", Backoff(cfg.agents.outage_backoff_s, cfg.agents.outage_backoff_max_s),
                      outage_file(cfg, "pack"))

    written: list[ShardReady] = []  # a durable shard whose announcement or commit has not gone through yet

    def flush() -> None:
        retrying(lambda: flush_and_commit(stage, cons, prod, prefix, written), blocked, stop)

    try:
        while not stop.is_set():
            quality.refresh()
            msgs = kc.poll_messages(cons)
            t0 = time.perf_counter()
            if peers is not None and msgs:
                retrying(peers.catch_up_all, blocked, stop)
            # the verified table beside the shard set (pack.depth > 1) may meet the disk's outage too
            _, dead = retrying(lambda msgs=msgs: handle_batch("pack", msgs, DEPENDENCIES, None, stage.process,
                                                              cfg.version("verify")), blocked, stop) or ([], [])
            known = [Produced.of(VERIFIED, r) for r in stage.outbox or ()]
            if stage.outbox:
                stage.outbox = []
            kc.send_all(prod, prefix, dead + known)
            if msgs:  # samples leave in shards: counted as "out" by flush_and_commit
                meter.observe(len(msgs), 0, len(dead), time.perf_counter() - t0)
            if stage.should_flush():
                flush()
            elif not stage.buffer and msgs:
                kc.commit(cons)  # everything consumed is in a shard, dead-lettered or a duplicate
        flush()
    finally:
        cons.close(autocommit=False)
        if peers is not None:
            peers.close()
        prod.close()


def announcement(ready: ShardReady) -> Produced:
    return Produced.of(SHARD_READY, ready)


def flush_and_commit(stage, cons, prod, prefix: str, written: list[ShardReady] | None = None) -> None:
    """Write the buffer's shard, announce it, commit. `written` carries a shard written by an earlier try
    whose announcement met an outage: it is announced, not written twice."""
    written = [] if written is None else written
    if not written and (ready := stage.flush()) is not None:
        written.append(ready)
    if not written:
        return
    ready = written[0]
    kc.send_all(prod, prefix, [announcement(ready)])
    kc.commit(cons)
    written.clear()
    r = stage.shards.entries[-1]
    metrics.observe_shard(r)
    metrics.observe_samples(stage.flushed)
    log.info("shard %s: %d sequences, %d samples, %d tokens, fill %.3f, %.1f samples and %.1f contexts per "
             "sequence, mean context dI %s, median sample %s tokens, median dependency distance %s tokens",
             ready.shard_id, ready.sequences, ready.samples, ready.tokens,
             r["fill_ratio"], r["samples_per_sequence"], r["contexts_per_sequence"],
             "-" if r["mean_context_di"] is None else f"{r['mean_context_di']:.3f}",
             r["sample_tokens"]["median"], r["dependency_distance"]["median"])
