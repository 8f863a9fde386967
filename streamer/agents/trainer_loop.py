"""The rolling trainer's Kafka loop: train on each announced shard, checkpoint, then commit its offset."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

from entropylong_streamer import metrics, registry
from entropylong_streamer.config import Config
from entropylong_streamer.policy import announcement, rescore_documents
from entropylong_streamer.services.model_versions import Published, published
from entropylong_streamer.services.patches import install_kafka_backoff
from entropylong_streamer.topics import DOCS, MODEL_VERSIONS, SHARD_READY, RecordError

from . import kafka_clients as kc
from . import worker_metrics
from .adapter import Produced, dead_letter

log = logging.getLogger(__name__)
RESCORED = "rescored.txt"  # in the trainer's state: the versions whose rescoring was sent


def run(cfg: Config, stop: threading.Event | None = None) -> None:
    from entropylong_streamer.services.trainer import RollingTrainer, ShardUnreadable

    stop = stop or kc.stop_event()
    install_kafka_backoff(cfg.kafka.idle_fetch_backoff_ms / 1000)
    state = cfg.paths.trainer
    prefix, version = cfg.kafka.topic_prefix, cfg.version("pack")
    versions = cfg.paths.model_versions(version) if cfg.trainer.publish_every else None
    trainer = RollingTrainer(cfg.trainer, cfg.paths.models, state, versions)
    worker_metrics.serve(cfg, "trainer", stop)
    cons = kc.consumer(cfg, SHARD_READY.full_name(prefix), registry.stage("trainer").group(cfg))
    prod = kc.producer(cfg)
    if versions is not None:
        # A crash between a checkpoint and its publication, or between a publication and its
        # announcement, must not lose the version: publish what is due, announce every version again.
        trainer.publish_if_due()
        on_disk = published(versions)
        kc.send_all(prod, prefix, [_announced(v, version) for v in on_disk])
        if on_disk:
            _rescore(cfg, trainer, on_disk[-1], prod)
    metrics.READY.labels("trainer").set(1)
    log.info("trainer worker ready: trains shard set %s, state in %s", version, state)
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
                if (new := trainer.publish_if_due()) is not None:  # before the commit: a crash re-publishes
                    kc.send_all(prod, prefix, [_announced(new, version)])
                    metrics.MODELS_PUBLISHED.inc()
                    log.info("published model version %s (%d shards, step %d) at %s", new.version, new.shards_seen,
                             new.step, new.path)
                    _rescore(cfg, trainer, new, prod)
            kc.commit(cons)  # after the checkpoint: a restart resumes at the first untrained shard
    finally:
        cons.close(autocommit=False)
        prod.close()


def _announced(v: Published, config_version: str) -> Produced:
    rec = announcement(v, config_version)
    return Produced.of(MODEL_VERSIONS, rec)


def _rescore(cfg: Config, trainer, version: Published, prod) -> None:
    """Send the documents of the last policy.rescore_last_shards shards to be scored by version, once per
    version (recorded in the trainer's state after every document was acknowledged)."""
    m = cfg.policy.rescore_last_shards
    done = cfg.paths.trainer / RESCORED
    if not m or (done.exists() and version.version in done.read_text().split()):
        return
    shards = [Path(p) for p in list(trainer.consumed.values())[-m:]]
    docs, missing = rescore_documents(shards, version.version)
    kc.send_all(prod, cfg.kafka.topic_prefix, [Produced.of(DOCS, d) for d in docs])
    with open(done, "a") as fh:
        fh.write(version.version + "\n")
    log.info("sent %d documents of the last %d shards to be scored by %s%s", len(docs), len(shards), version.version,
             f" ({missing} shards kept no documents)" if missing else "")


def _behind(cons) -> int:
    parts = list(cons.assignment())
    if not parts:
        return 0
    ends = cons.end_offsets(parts)
    return sum(max(0, ends[tp] - cons.position(tp)) for tp in parts)
