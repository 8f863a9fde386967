"""The rolling trainer as the one loop's Worker: train on each announced shard and checkpoint; the loop
then commits its offset, so a restart resumes at the first untrained shard. With trainer.publish_every
it publishes model versions (announced on the model-versions topic) and, with
policy.rescore_last_shards, sends the documents of the last shards to be scored by each new version."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from entropylong_streamer import metrics
from entropylong_streamer.config import Config
from entropylong_streamer.policy import announcement, rescore_documents
from entropylong_streamer.services.model_versions import Published, published
from entropylong_streamer.topics import DOCS, MODEL_VERSIONS, SHARD_READY

from .worker_loop import Message, Produced, Worker
from .workers import dead_letter, decode_batch

log = logging.getLogger(__name__)
RESCORED = "rescored.txt"  # in the trainer's state: the versions whose rescoring was sent


class TrainingFailed(RuntimeError):
    """Training or checkpointing a shard failed: the trainer stops (a restart resumes from its checkpoint)
    rather than train the same shard twice on a model that already took some of its steps."""


class TrainWorker(Worker):
    name = "trainer"

    def __init__(self, cfg: Config) -> None:
        from entropylong_streamer.services.trainer import RollingTrainer

        self.cfg, self.version = cfg, cfg.version("pack")
        self.state = cfg.paths.trainer
        self.versions = cfg.paths.model_versions(self.version) if cfg.trainer.publish_every else None
        self.trainer = RollingTrainer(cfg.trainer, cfg.paths.models, self.state, self.versions)
        self.unsent: list[Produced] = []  # announcements and rescoring sent but not yet acknowledged
        self.rescoring: list[str] = []  # versions whose rescoring documents are among them
        log.info("trainer worker ready: trains shard set %s, state in %s", self.version, self.state)

    def start(self) -> list[Produced]:
        # A crash between a checkpoint and its publication, or between a publication and its
        # announcement, must not lose the version: publish what is due, announce every version again.
        # (called again after an outage: what a failed try made is sent, not made again)
        if self.versions is not None and not self.unsent:
            self.trainer.publish_if_due()
            on_disk = published(self.versions)
            self.unsent = [self._announced(v) for v in on_disk] + (self._rescore(on_disk[-1]) if on_disk else [])
        return list(self.unsent)

    def run(self, msgs: list[Message]) -> tuple[list[Produced], list[Produced]]:
        from entropylong_streamer.services.trainer import ShardUnreadable

        # a shard of another shard set is not this trainer's data: skipped
        taken, dead = decode_batch("trainer", msgs, SHARD_READY, self.version)
        for ready, msg in taken:
            failed = None
            try:
                report = self.trainer.train_shard(f"{ready.config_version}/{ready.shard_id}", Path(ready.path))
            except ShardUnreadable as exc:  # a failing checkpoint, by contrast, stops the trainer
                dead.append(dead_letter("trainer", f"shard: {exc}", msg))
                continue
            except Exception as exc:
                log.exception("training on shard %s failed", ready.shard_id)
                failed = f"{type(exc).__name__}: {exc}"
            if failed is not None:  # raised outside the handler: no outage in its chain, so nothing retries it
                raise TrainingFailed(f"shard {ready.shard_id}: {failed}")
            if report is not None and report.losses:
                self._log(ready.shard_id, report)
            if (new := self.trainer.publish_if_due()) is not None:  # before the commit: a crash re-publishes
                metrics.MODELS_PUBLISHED.inc()
                log.info("published model version %s (%d shards, step %d) at %s", new.version, new.shards_seen,
                         new.step, new.path)
                self.unsent += [self._announced(new), *self._rescore(new)]
        return list(self.unsent), dead

    def done(self) -> None:
        if self.rescoring:
            with open(self.state / RESCORED, "a") as fh:
                fh.writelines(v + "\n" for v in self.rescoring)
        self.unsent, self.rescoring = [], []

    def _log(self, shard_id: str, report) -> None:
        behind = self.source.behind() if self.source is not None else 0
        line = {"shard_id": shard_id, "loss_first": report.losses[0], "loss_last": report.losses[-1],
                "steps": len(report.losses), "tokens": report.tokens, "tokens_per_second": report.tokens_per_second,
                "earlier_sequences": report.earlier_sequences,
                "loss_by_position": {str(k): v for k, v in report.loss_by_bucket().items()},
                "shards_trained": len(self.trainer.consumed), "shards_behind": behind}
        with open(self.state / "loss.jsonl", "a") as fh:
            fh.write(json.dumps(line) + "\n")
        metrics.observe_training(report, behind)
        log.info("trained %s: loss %.3f -> %.3f, %.0f tokens/s, %d shards behind", shard_id,
                 report.losses[0], report.losses[-1], report.tokens_per_second, behind)

    def _announced(self, v: Published) -> Produced:
        return Produced.of(MODEL_VERSIONS, announcement(v, self.version))

    def _rescore(self, version: Published) -> list[Produced]:
        """The documents of the last policy.rescore_last_shards shards, to be scored by version: once per
        version (recorded in the trainer's state once every document was acknowledged)."""
        m = self.cfg.policy.rescore_last_shards
        done = self.state / RESCORED
        if not m or version.version in self.rescoring or (
                done.exists() and version.version in done.read_text().split()):
            return []
        shards = [Path(p) for p in list(self.trainer.consumed.values())[-m:]]
        docs, missing = rescore_documents(shards, version.version)
        self.rescoring.append(version.version)
        log.info("sending %d documents of the last %d shards to be scored by %s%s", len(docs), len(shards),
                 version.version, f" ({missing} shards kept no documents)" if missing else "")
        return [Produced.of(DOCS, d) for d in docs]
