"""How a scoring worker follows the trainer (policy.follow): between batches, read the model-versions
topic up to its end and move the stage to the newest version announced for this configuration.

Reading up to the end offsets (not merely polling) is what makes a rescored document meet its
version: the trainer announces a version before it sends the documents to score again with it, so
a worker that took such a document has the announcement below the end offsets it reads next.
A version that does not load leaves the worker on the one it has, and it says so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from entropylong_streamer import metrics
from entropylong_streamer.config import Config
from entropylong_streamer.pipeline import Pipeline
from entropylong_streamer.services.lm import EngineStateLost
from entropylong_streamer.topics import MODEL_VERSIONS, ModelVersion, RecordError

from . import kafka_clients as kc
from .worker_loop import Message, Produced, Worker
from .workers import StageWorker

if TYPE_CHECKING:
    from entropylong_streamer.registry import StageSpec

log = logging.getLogger(__name__)
T = TypeVar("T")
LOAD_TRIES = 3


class ModelFollower:
    def __init__(self, cfg: Config) -> None:
        from kafka import KafkaConsumer, TopicPartition

        self.config_version, self.base = cfg.version("pack"), cfg.model.path
        self.topic = MODEL_VERSIONS.full_name(cfg.kafka.topic_prefix)
        self.cons = KafkaConsumer(enable_auto_commit=False, max_partition_fetch_bytes=cfg.kafka.max_message_bytes,
                                  **kc.client_kwargs(cfg))
        self.parts = [TopicPartition(self.topic, p) for p in sorted(self.cons.partitions_for_topic(self.topic) or [0])]
        self.cons.assign(self.parts)
        self.cons.seek_to_beginning(*self.parts)
        self.newest: ModelVersion | None = None  # the newest announced for this configuration
        self.failures: dict[str, int] = {}  # version -> failed loads

    def announced(self, timeout_s: float = 10.0) -> ModelVersion | None:
        """Read every announcement up to the topic's end now; the newest for this configuration."""
        ends = self.cons.end_offsets(self.parts)
        for _ in range(max(1, int(timeout_s / 0.05))):
            if all((self.cons.position(tp) or 0) >= ends[tp] for tp in self.parts):
                break
            for msgs in self.cons.poll(timeout_ms=50).values():
                for msg in msgs:
                    self._take(msg.value)
        else:
            log.warning("model-versions: not read to its end within %.0f s; following what was read", timeout_s)
        return self.newest

    def _take(self, raw: bytes | None) -> None:
        try:
            found = MODEL_VERSIONS.decode(raw)
        except RecordError as exc:  # nothing to dead-letter to from here: say it and go on
            log.warning("model-versions: an undecodable announcement skipped: %s", exc)
            return
        if found.config_version == self.config_version and found.base_model == self.base \
                and found.newer_than(self.newest):
            self.newest = found

    def follow(self, stage: str, current: ModelVersion | None,
               load: Callable[[ModelVersion], T]) -> tuple[ModelVersion | None, T | None]:
        """(the version now held, what load made of it) when a newer one than current was announced and
        loads; (current, None) otherwise: the worker goes on with what it has. A version that fails to load
        is tried again at the next batches (a shared file system may show a directory late) up to
        LOAD_TRIES times, one whose configuration the engine cannot take (ValueError) never again."""
        try:
            newest = self.announced()
        except Exception as exc:  # the broker restarting: the stage's own consumer rides it out, so does this
            log.warning("%s worker: model-versions unreadable (%s: %s); scoring on with %s", stage,
                        type(exc).__name__, exc, current.version if current else "the base model")
            return current, None
        if newest is None or not newest.newer_than(current) or self.failures.get(newest.version, 0) >= LOAD_TRIES:
            return current, None
        try:
            loaded = load(newest)
        except EngineStateLost:
            raise  # neither version whole: the worker stops and starts afresh
        except Exception as exc:  # a torn or incompatible directory must not stop the worker
            tries = LOAD_TRIES if isinstance(exc, ValueError) else self.failures.get(newest.version, 0) + 1
            self.failures[newest.version] = tries
            metrics.MODEL_VERSION_REFUSED.labels(stage).inc()
            log.error("%s worker keeps model version %s: version %s (%s) does not load (%s): %s: %s", stage,
                      current.version if current else "base", newest.version, newest.path,
                      "refused" if tries >= LOAD_TRIES else f"try {tries} of {LOAD_TRIES}", type(exc).__name__, exc)
            return current, None
        metrics.MODEL_VERSION.labels(stage).set(newest.shards_seen)
        log.info("%s worker now scores with model version %s (%d shards, step %d)", stage, newest.version,
                 newest.shards_seen, newest.step)
        return newest, loaded

    def close(self) -> None:
        self.cons.close()


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
