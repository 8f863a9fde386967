"""Replay after a threshold change: the stages whose version changes read their input again.

A stage's consumer group carries its config version (registry.StageSpec.group), so a new threshold
means new groups for that stage and every stage downstream of it, and a new shard set: the old
groups, outputs and shards stay as they are. The first changed stage of the chain reads its input
from the chosen origin (the beginning, a time, or an offset per partition); the changed stages
after it start at the end of their input topic as it is now, because every record of the new
version will be written after that. The LM work a replay needs is only what was never measured
(streamer/measurements.py): a new epsilon none, a new alpha only the new pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from entropylong_streamer.config import Config

from . import registry
from .agents.kafka_clients import client_kwargs
from .status import stage_groups


class ReplayError(RuntimeError):
    pass


@dataclass(frozen=True)
class Origin:
    """Where the first changed stage starts reading."""

    kind: Literal["beginning", "time", "offset"] = "beginning"
    value: int = 0  # ms since the epoch (time) or the offset in every partition (offset)

    @classmethod
    def parse(cls, from_time: str | None, from_offset: int | None) -> Origin:
        if from_time is not None and from_offset is not None:
            raise ReplayError("give --from-time or --from-offset, not both")
        if from_offset is not None:
            if from_offset < 0:
                raise ReplayError("--from-offset must be >= 0")
            return cls("offset", from_offset)
        if from_time is not None:
            try:
                when = datetime.fromisoformat(from_time)
            except ValueError as exc:
                raise ReplayError(f"--from-time wants an ISO 8601 time (2026-11-23T18:00:00+00:00): {exc}") from exc
            if when.tzinfo is None:
                raise ReplayError("--from-time needs a time zone (add +00:00 for UTC)")
            return cls("time", int(when.timestamp() * 1000))
        return cls()

    def describe(self) -> str:
        return {"beginning": "from the beginning", "time": f"from {self.value} ms",
                "offset": f"from offset {self.value}"}[self.kind]


@dataclass(frozen=True)
class StagePlan:
    stage: str
    topic: str
    old_group: str
    new_group: str
    start: Literal["origin", "latest", "unchanged", "restart"]  # restart: new config, same group


def plan(old: Config, new: Config) -> list[StagePlan]:
    """What a replay from `old` to `new` does to each consuming stage."""
    before = {s: g for s, _, g in stage_groups(old)}
    rows = []
    for stage, topic, group in stage_groups(new):
        spec = registry.stage(stage)
        if not spec.versioned_group:  # one group for every version: a new version restarts it
            start = "restart" if spec.version(old) != spec.version(new) else "unchanged"
        elif before.get(stage) == group:
            start = "unchanged"
        elif spec.upstream is not None and spec.consumes(old) != spec.consumes(new):
            start = "latest"  # its input's new version is still to be written
        else:
            start = "origin"
        rows.append(StagePlan(stage, topic, before.get(stage, ""), group, start))
    return rows


def reset_offsets(cfg: Config, rows: list[StagePlan], origin: Origin) -> dict[str, dict[int, int]]:
    """Commit each new group's start offsets (the groups must have no members yet);
    returns group -> partition -> offset."""
    from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
    from kafka.admin import OffsetSpec, OffsetTimestamp

    cons = KafkaConsumer(enable_auto_commit=False, **client_kwargs(cfg))
    admin = KafkaAdminClient(**client_kwargs(cfg))
    try:
        done: dict[str, dict[int, int]] = {}
        for row in rows:
            if row.start not in ("origin", "latest"):
                continue
            parts = sorted(cons.partitions_for_topic(row.topic) or ())
            if not parts:
                raise ReplayError(f"topic {row.topic} does not exist (is the stack up?)")
            if row.start == "latest":
                spec = OffsetSpec.LATEST
            elif origin.kind == "time":
                spec = OffsetTimestamp(origin.value)
            elif origin.kind == "offset":
                spec = origin.value
            else:
                spec = OffsetSpec.EARLIEST
            result = admin.reset_group_offsets(row.new_group, {TopicPartition(row.topic, p): spec for p in parts})
            errors = {tp.partition: r["error"] for tp, r in result.items() if r["error"].errno != 0}
            if errors:
                raise ReplayError(f"cannot set the offsets of {row.new_group} (does it have members?): {errors}")
            done[row.new_group] = {tp.partition: r["offset"] for tp, r in result.items()}
        return done
    finally:
        admin.close()
        cons.close()
