"""`elong worker STAGE`: the registered stage's Worker in the one loop (worker_loop.py), reading its
source topic as a member of its consumer group and writing to the broker.

Not a Faust agent: faust-streaming 0.15.3 derives the offsets it commits from acked messages and
"gaps" it infers from the offsets it reads, and around a rebalance (a broker restart) it committed
past records its agent never received (16 of 90 documents lost in tests/integration/test_broker_restart.py
on CI; upstream, faust-streaming issues #221, #312 and #606, the last still open). Here the offsets
committed are the consumer's own positions after a batch the loop processed whole.
"""

from __future__ import annotations

import logging
import threading

from entropylong_streamer import metrics, registry
from entropylong_streamer.config import Config
from entropylong_streamer.registry import StageSpec
from entropylong_streamer.services.patches import install_kafka_backoff

from . import kafka_clients as kc
from . import worker_loop, worker_metrics
from .faults import Backoff, Blocked, outage_file, retrying
from .kafka_source import KafkaSource
from .worker_loop import Worker

log = logging.getLogger(__name__)


def pack_worker(cfg: Config, spec: StageSpec) -> Worker:
    from entropylong_streamer.pipeline import Pipeline
    from entropylong_streamer.quality.gauges import REPORT_FILE, ReportGauges, report_dir

    from . import workers
    from .verified_follower import VerifiedFollower

    stage = Pipeline(cfg).stage("pack")
    log.info("pack worker: %d shards in %s", len(stage.shards.entries), stage.shards.dir)
    peers = None if stage.known is None else VerifiedFollower(cfg, stage.known, cfg.version("verify"))
    return workers.PackWorker(cfg, stage, peers, ReportGauges(report_dir(cfg) / REPORT_FILE), announce_earlier=True)


def train_worker(cfg: Config, spec: StageSpec) -> Worker:
    from .train_worker import TrainWorker

    return TrainWorker(cfg)


def stage_worker(cfg: Config, spec: StageSpec) -> Worker:
    """The streaming worker of a record stage: its measurements kept in its changelog topic."""
    from entropylong_streamer.pipeline import Pipeline

    from . import model_follower, workers

    cache = spec.cache(cfg) if spec.cache is not None and cfg.agents.measurement_cache else None
    worker = workers.StageWorker.build(cfg, spec, Pipeline(cfg), cache)
    return model_follower.FollowingWorker(cfg, spec, worker) if cfg.policy.follow and spec.follows_model else worker


WORKERS = {"stage": stage_worker, "pack": pack_worker, "trainer": train_worker}
# records per take and how long to top a batch up: a record stage's own (agents.max_batch, batch_wait_s); the
# packer takes what one poll brings (it waits for shards, not batches), the trainer one shard at a time
TAKE = {"pack": (64, 0.0), "trainer": (1, 0.0)}


def run(cfg: Config, stage: str, stop: threading.Event | None = None) -> None:
    stop = stop or kc.stop_event()
    install_kafka_backoff(cfg.kafka.idle_fetch_backoff_ms / 1000)
    spec = registry.stage(stage)
    worker_metrics.serve(cfg, stage, stop)
    blocked = Blocked(stage, Backoff(cfg.agents.outage_backoff_s, cfg.agents.outage_backoff_max_s),
                      outage_file(cfg, stage))
    # a worker (re)started during an outage waits for its vector store, broker, disk or model directory
    worker = retrying(lambda: WORKERS[spec.runner](cfg, spec), blocked, stop)
    if worker is None:
        return
    metrics.READY.labels(stage).set(1)
    log.info("%s worker ready", stage)
    max_batch, wait_s = TAKE.get(spec.runner, (cfg.agents.batch_size(stage), cfg.agents.batch_wait_s))
    source = KafkaSource(cfg, spec.source.full_name(cfg.kafka.topic_prefix), spec.group(cfg), max_batch, wait_s)
    worker_loop.run(worker, source, kc.KafkaTopics(cfg), blocked, stop)
