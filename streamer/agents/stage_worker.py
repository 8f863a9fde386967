"""A record stage (entropy, index, retrieval, verify) as the one loop's Worker: its object behind
handle_batch, with the measurement cache read up before a batch and made durable after it (before the
outputs that used it are sent), the output distributions and the per-batch metrics; and, under
policy.follow, the move to each newer published model version between batches."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from entropylong_streamer import metrics
from entropylong_streamer.pipeline import Pipeline
from entropylong_streamer.stages.base import StageResult

from .adapter import Message, Produced, handle_batch
from .model_follower import ModelFollower
from .worker_loop import Worker

if TYPE_CHECKING:
    from entropylong_streamer.config import Config
    from entropylong_streamer.registry import StageSpec

log = logging.getLogger(__name__)


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


class FollowingWorker(Worker):
    """A StageWorker that scores with the trainer's newest published version (policy.follow): it moves to
    a newer one between batches, never within one (a document meets one version)."""

    def __init__(self, cfg: Config, spec: StageSpec, worker: StageWorker) -> None:
        self.cfg, self.spec, self.worker, self.name = cfg, spec, worker, spec.name
        self.follower = ModelFollower(cfg)
        self.version = None
        self._follow()

    def _load(self, version) -> StageWorker:  # the same stage on a published version's weights, same cache
        # vLLM, one engine per GPU: the running one takes the new weights, last, once the stage is built around
        # it (what fails before leaves it as it was; a failed load restores its weights or raises
        # EngineStateLost). transformers: the Pipeline loads a new engine from the version's directory.
        engine = self.worker.stage.engine if self.cfg.model.engine == "vllm" else None
        built = StageWorker.build(self.cfg, self.spec, Pipeline(self.cfg, model_version=version, engine=engine),
                                  self.worker.stage.cache)
        if engine is not None:
            engine.reload_weights(version.path)
        return built

    def _follow(self) -> None:  # to the newest announced version, if one is newer than ours and loads
        self.version, loaded = self.follower.follow(self.spec.name, self.version, self._load)
        self.worker = loaded or self.worker

    def before(self, msgs: list[Message]) -> None:
        if msgs:
            self._follow()

    def run(self, msgs: list[Message]) -> tuple[list[Produced], list[Produced]]:
        return self.worker.run(msgs)

    def done(self) -> None:
        self.worker.done()

    def close(self) -> None:
        self.follower.close()


def stage_worker(cfg: Config, spec: StageSpec) -> Worker:
    """The streaming worker of a record stage: its measurements kept in its changelog topic."""
    cache = spec.cache(cfg) if spec.cache is not None and cfg.agents.measurement_cache else None
    worker = StageWorker.build(cfg, spec, Pipeline(cfg), cache)
    return FollowingWorker(cfg, spec, worker) if cfg.policy.follow and spec.follows_model else worker
