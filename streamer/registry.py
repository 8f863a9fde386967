"""The stages, in pipeline order: what each reads and writes, the version of what it writes, how
its worker runs. Consumer groups, worker dispatch, `status` rows, the replay plan and the number of
workers a stage may have are all read from STAGES; adding a stage is an entry here plus its own
files."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from entropylong_streamer.agents.changelog_cache import ChangelogCache, measurement_log, scores_log
from entropylong_streamer.config import Config
from entropylong_streamer.pipeline import Pipeline
from entropylong_streamer.topics import ANCHORS, CANDIDATES, DEPENDENCIES, DOCS, SHARD_READY, TopicSpec


def _always(cfg: Config) -> bool:
    return True


@dataclass(frozen=True)
class StageSpec:
    name: str
    source: TopicSpec
    sink: TopicSpec | None
    version: Callable[[Config], str]  # of what it writes; its consumer group carries it
    consumes: Callable[[Config], str] | None = None  # the upstream version it reads (None: raw input)
    # stage: agents/stage_loop.py around `build`'s stage object; pack and trainer: their own loops
    runner: Literal["stage", "pack", "trainer"] = "stage"
    scalable: bool = True  # False: exactly one worker (it orders or owns what it writes)
    build: Callable[[Pipeline], object] | None = None
    cache: Callable[[Config], ChangelogCache] | None = None  # the LM measurements its worker keeps
    cache_name: str | None = None  # batch mode's file of them, data_dir/<name>.msgpack
    # False: one consumer group for every version (the trainer trains its own config's shard set,
    # and a new version restarts it rather than re-reading the topic)
    versioned_group: bool = True
    active: Callable[[Config], bool] = _always  # whether this configuration runs it at all
    follows_model: bool = False  # scores with the trainer's newest published version under policy.follow

    def group(self, cfg: Config) -> str:
        prefix = cfg.kafka.topic_prefix
        return f"{prefix}{self.name}-{self.version(cfg)}" if self.versioned_group else f"{prefix}{self.name}"


STAGES: tuple[StageSpec, ...] = (
    StageSpec("entropy", DOCS, ANCHORS, Config.entropy_version, build=Pipeline.entropy, cache=scores_log,
              cache_name="scores", follows_model=True),
    StageSpec("index", DOCS, None, Config.index_version, build=Pipeline.index,
              active=lambda cfg: cfg.retrieval.index_live_docs),
    StageSpec("retrieval", ANCHORS, CANDIDATES, Config.retrieval_version, Config.entropy_version,
              build=Pipeline.retrieval),
    StageSpec("verify", CANDIDATES, DEPENDENCIES, Config.verify_version, Config.retrieval_version,
              build=Pipeline.verify, cache=measurement_log, cache_name="measurements", follows_model=True),
    StageSpec("pack", DEPENDENCIES, SHARD_READY, Config.pack_version, Config.verify_version, runner="pack",
              scalable=False),
    StageSpec("trainer", SHARD_READY, None, Config.pack_version, Config.pack_version, runner="trainer",
              scalable=False, versioned_group=False),
)
NAMES = tuple(s.name for s in STAGES)


def stage(name: str) -> StageSpec:
    for spec in STAGES:
        if spec.name == name:
            return spec
    raise KeyError(f"unknown stage {name!r}: one of {', '.join(NAMES)}")


def active(cfg: Config) -> list[StageSpec]:
    """The stages this configuration runs, in pipeline order."""
    return [s for s in STAGES if s.active(cfg)]
