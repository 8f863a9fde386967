"""The worker loop of the record-in, records-out stages (entropy, index, retrieval, verify).

Take a batch (up to max_batch records, or what arrived within batch_wait_s), run the stage, send
its outputs and dead letters, wait for every acknowledgement, then commit the batch's offsets.
A crash, a rebalance or a broker restart anywhere before the commit brings the batch again (at
least once: the packer skips a document it has packed); no offset is committed whose record's
outputs were not acknowledged. An outage (agents/faults.py) is not the batch's fault: the loop seeks
back to the batch, waits (capped, jittered back-off, elong_stage_blocked set) and runs it again.

Not a Faust agent: faust-streaming 0.15.3 derives the offsets it commits from acked messages and
"gaps" it infers from the offsets it reads, and around a rebalance (a broker restart) it
committed past records its agent never received (16 of 90 documents lost in
tests/integration/test_broker_restart.py on CI; upstream, faust-streaming issues #221, #312 and
#606, the last still open). Here the offsets committed are the consumer's own positions after a
batch this loop processed whole.
"""

from __future__ import annotations

import logging
import threading
import time

from kafka import ConsumerRebalanceListener

from entropylong_streamer import metrics, registry
from entropylong_streamer.config import Config
from entropylong_streamer.pipeline import Pipeline
from entropylong_streamer.services.patches import install_kafka_backoff

from . import kafka_clients as kc
from . import worker_metrics
from .adapter import Message, StageRunner
from .faults import Backoff, Blocked, Outage, as_outage, outage_file, retrying
from .model_follower import ModelFollower

log = logging.getLogger(__name__)


def run(cfg: Config, stage: str, stop: threading.Event | None = None) -> None:
    stop = stop or kc.stop_event()
    install_kafka_backoff(cfg.kafka.idle_fetch_backoff_ms / 1000)
    spec = registry.stage(stage)
    worker_metrics.serve(cfg, stage, stop)
    keep = spec.cache is not None and cfg.agents.measurement_cache
    blocked = Blocked(stage, Backoff(cfg.agents.outage_backoff_s, cfg.agents.outage_backoff_max_s),
                      outage_file(cfg, stage))
    pipe = Pipeline(cfg)
    # a worker (re)started during an outage waits for its vector store, broker or model directory
    runner = retrying(lambda: StageRunner.build(cfg, spec, pipe, spec.cache(cfg) if keep else None), blocked, stop)
    if runner is None:
        return
    follower = ModelFollower(cfg) if cfg.policy.follow and spec.follows_model else None

    def load(version):  # the same stage on a published version's weights, keeping the measurement cache
        # vLLM, one engine per GPU: the running one takes the new weights, last, once the stage is built around
        # it (what fails before leaves it as it was; a failed load restores its weights or raises
        # EngineStateLost). transformers: the Pipeline loads a new engine from the version's directory.
        engine = runner.stage.engine if cfg.model.engine == "vllm" else None
        built = StageRunner.build(cfg, spec, Pipeline(cfg, model_version=version, engine=engine), runner.stage.cache)
        if engine is not None:
            engine.reload_weights(version.path)
        return built

    version = None

    def follow() -> None:  # to the newest announced version, if one is newer than ours and loads
        nonlocal version, runner
        version, loaded = follower.follow(stage, version, load)
        runner = loaded or runner

    if follower is not None:
        follow()
    metrics.READY.labels(stage).set(1)
    log.info("%s worker ready", stage)
    prefix = cfg.kafka.topic_prefix
    revoked = Revoked()
    cons = kc.consumer(cfg, spec.source.full_name(prefix), spec.group(cfg), revoked)
    prod = kc.producer(cfg)
    max_batch = cfg.agents.batch_size(stage)
    try:
        while not stop.is_set():
            msgs = take_batch(cons, max_batch, cfg.agents.batch_wait_s, revoked)
            if not msgs:
                continue
            if follower is not None:  # between batches, never within one: a document meets one version
                follow()
            try:
                outs, dead = runner.run(msgs)
                kc.send_all(prod, prefix, outs + dead)
            except Exception as exc:  # an outage: the same batch again after a wait, nothing committed
                outage = exc if isinstance(exc, Outage) else as_outage(exc)
                if outage is None:
                    raise
                kc.rewind(cons, msgs)
                blocked.wait(outage, stop)
                continue
            blocked.clear()
            kc.commit(cons)  # refused after a rebalance: the batch comes again, nothing is lost
            log.info("%s", runner.last_log)
    finally:
        cons.close(autocommit=False)
        prod.close()
        if follower is not None:
            follower.close()


class Revoked(ConsumerRebalanceListener):
    """The partitions rebalances took from this consumer since take_batch last cleared it."""

    def __init__(self) -> None:
        self.partitions: set[int] = set()
        self.dropped = 0  # records take_batch left to their partitions' next owner
        self.rebalances = 0  # that took partitions from this consumer

    def on_partitions_revoked(self, revoked) -> None:
        self.partitions |= {tp.partition for tp in revoked}
        self.rebalances += bool(revoked)

    def on_partitions_assigned(self, assigned) -> None:
        pass


def take_batch(cons, max_batch: int, wait_s: float, revoked: Revoked | None = None) -> list[Message]:
    """Up to max_batch records: what one poll brings, topped up until max_batch or until wait_s
    has passed since the first record arrived (nothing when the topic is quiet).

    A rebalance during a top-up poll revokes partitions whose records this batch already holds:
    their offsets were not committed, so their next owner reads them from the committed offset. They
    are dropped here, or both owners would process them; unless the partition came back to this
    consumer, which then goes on from its position (tests/integration/test_stage_loop.py)."""
    msgs = kc.poll_messages(cons, max_records=max_batch)
    deadline = time.monotonic() + wait_s
    while msgs and len(msgs) < max_batch:
        left_ms = int((deadline - time.monotonic()) * 1000)
        if left_ms <= 0:
            break
        if revoked is not None:
            revoked.partitions.clear()
        more = kc.poll_messages(cons, max_records=max_batch - len(msgs), timeout_ms=min(left_ms, 250))
        if revoked is not None and revoked.partitions:
            # A partition the rebalance gave back to this consumer keeps its position (kafka-python 3
            # preserves the state of partitions in both assignments): its records stay in the batch,
            # or they would be committed past unprocessed.
            ours = {tp.partition for tp in cons.assignment()}
            gone = revoked.partitions - ours
            kept = [m for m in msgs if m.partition not in gone]
            revoked.dropped += len(msgs) - len(kept)
            msgs = kept
        msgs += more
    return msgs
