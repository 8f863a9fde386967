"""The rolling trainer's Kafka loop: train on each announced shard, checkpoint, then commit its offset."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

from entropylong_streamer import metrics, registry
from entropylong_streamer.config import Config
from entropylong_streamer.topics import SHARD_READY, RecordError

from . import kafka_clients as kc
from . import worker_metrics
from .adapter import dead_letter
from .broker_compat import install_backoff

log = logging.getLogger(__name__)


def run(cfg: Config, stop: threading.Event | None = None) -> None:
    from entropylong_streamer.services.trainer import RollingTrainer, ShardUnreadable

    stop = stop or kc.stop_event()
    install_backoff(cfg.kafka.idle_fetch_backoff_ms / 1000)
    state = cfg.paths.trainer
    trainer = RollingTrainer(cfg.trainer, cfg.paths.models, state)
    worker_metrics.serve(cfg, "trainer", stop)
    metrics.READY.labels("trainer").set(1)
    prefix, version = cfg.kafka.topic_prefix, cfg.pack_version()
    log.info("trainer worker ready: trains shard set %s, state in %s", version, state)
    cons = kc.consumer(cfg, SHARD_READY.full_name(prefix), registry.stage("trainer").group(cfg))
    prod = kc.producer(cfg)
    try:
        while not stop.is_set():
            for msg in kc.poll_messages(cons, max_records=1):
                try:
                    ready = SHARD_READY.decode(msg.value)
                except RecordError as exc:
                    kc.send_all(prod, prefix, [dead_letter("trainer", f"decode: {exc}", msg)])
                    continue
                if ready.config_version != version:  # another shard set: not this trainer's data
                    continue
                try:
                    report = trainer.train_shard(f"{ready.config_version}/{ready.shard_id}", Path(ready.path))
                except ShardUnreadable as exc:  # a failing checkpoint, by contrast, stops the trainer
                    kc.send_all(prod, prefix, [dead_letter("trainer", f"shard: {exc}", msg)])
                    continue
                if report is not None and report.losses:
                    behind = _behind(cons)
                    line = {"shard_id": ready.shard_id, "loss_first": report.losses[0],
                            "loss_last": report.losses[-1], "steps": len(report.losses), "tokens": report.tokens,
                            "tokens_per_second": report.tokens_per_second,
                            "earlier_sequences": report.earlier_sequences,
                            "loss_by_position": {str(k): v for k, v in report.loss_by_bucket().items()},
                            "shards_trained": len(trainer.consumed), "shards_behind": behind}
                    with open(state / "loss.jsonl", "a") as fh:
                        fh.write(json.dumps(line) + "\n")
                    metrics.observe_training(report, behind)
                    log.info("trained %s: loss %.3f -> %.3f, %.0f tokens/s, %d shards behind", ready.shard_id,
                             report.losses[0], report.losses[-1], report.tokens_per_second, behind)
            kc.commit(cons)  # after the checkpoint: a restart resumes at the first untrained shard
    finally:
        cons.close(autocommit=False)
        prod.close()


def _behind(cons) -> int:
    parts = list(cons.assignment())
    if not parts:
        return 0
    ends = cons.end_offsets(parts)
    return sum(max(0, ends[tp] - cons.position(tp)) for tp in parts)
