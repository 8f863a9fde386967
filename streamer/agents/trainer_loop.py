"""The rolling trainer's Kafka loop: train on each announced shard, then commit its offset."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

from entropylong_streamer.config import Config
from entropylong_streamer.topics import SHARD_READY, RecordError

from . import kafka_clients as kc
from .adapter import dead_letter

log = logging.getLogger(__name__)


def run(cfg: Config, stop: threading.Event | None = None) -> None:
    from entropylong_streamer.services.trainer import RollingTrainer

    stop = stop or kc.stop_event()
    t = cfg.trainer
    state = Path(cfg.data_dir) / "trainer"
    trainer = RollingTrainer(t.model, Path(cfg.data_dir) / "models", state, t.lr,
                             t.steps_per_shard, t.seed, t.from_scratch)
    prefix = cfg.kafka.topic_prefix
    cons = kc.consumer(cfg, SHARD_READY.full_name(prefix), f"{prefix}trainer")
    prod = kc.producer(cfg)
    try:
        while not stop.is_set():
            for msg in kc.poll_messages(cons, stop, cfg.kafka.idle_fetch_backoff_ms, max_records=1):
                try:
                    ready = SHARD_READY.decode(msg.value)
                except RecordError as exc:
                    kc.send_all(prod, prefix, [dead_letter("trainer", f"decode: {exc}", msg)])
                    continue
                try:
                    losses = trainer.train_shard(f"{ready.config_version}/{ready.shard_id}", Path(ready.path))
                except (OSError, ValueError, KeyError) as exc:  # a missing or unreadable shard
                    kc.send_all(prod, prefix, [dead_letter("trainer", f"shard: {exc}", msg)])
                    continue
                if losses:
                    line = {"shard_id": ready.shard_id, "loss_first": losses[0], "loss_last": losses[-1],
                            "steps": len(losses), "shards_trained": len(trainer.consumed)}
                    with open(state / "loss.jsonl", "a") as fh:
                        fh.write(json.dumps(line) + "\n")
                    log.info("trained %s: loss %.3f -> %.3f", ready.shard_id, losses[0], losses[-1])
            cons.commit()
    finally:
        cons.close(autocommit=False)
        prod.close()
