"""Pipeline status: for every stage its consumer group, input topic, lag; shards and trainer loss."""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from entropylong_streamer.config import Config
from entropylong_streamer.services import checkpoint
from entropylong_streamer.services.shards import read_manifest, spread
from entropylong_streamer.topics import ALL_TOPICS, TopicSpec

from . import registry
from .agents.kafka_clients import client_kwargs


@dataclass
class StageStatus:
    stage: str
    topic: str
    group: str
    produced: int
    committed: int
    partitions: int = 0  # of the input topic: the most consumers the stage can use
    consumers: int | None = None  # members of the group now (None: the broker would not say)
    rate: float | None = None  # records committed per second since the previous snapshot
    at: float = 0.0  # time.monotonic() of the snapshot

    @property
    def lag(self) -> int:
        return self.produced - self.committed


def with_rates(rows: list[StageStatus], previous: list[StageStatus] | None) -> list[StageStatus]:
    """Fill each row's rate from the same stage's row of an earlier snapshot."""
    before = {r.stage: r for r in previous or []}
    for r in rows:
        b = before.get(r.stage)
        if b is not None and r.at > b.at:
            r.rate = max(0, r.committed - b.committed) / (r.at - b.at)
    return rows


def stage_groups(cfg: Config) -> list[tuple[str, str, str]]:
    """(stage, input topic, consumer group) for every consuming stage."""
    return [(s.name, s.source.full_name(cfg.kafka.topic_prefix), s.group(cfg)) for s in registry.active(cfg)]


def pipeline_topics() -> list[TopicSpec]:
    """The package's topics and every registered stage's (a stage added to the registry brings its own)."""
    return list(dict.fromkeys([*ALL_TOPICS, *(t for s in registry.STAGES for t in (s.source, s.sink) if t)]))


def topic_partitions(cfg: Config) -> dict[str, int]:
    return {t.full_name(cfg.kafka.topic_prefix): t.partitions or cfg.kafka.partitions for t in pipeline_topics()}


def ensure_pipeline_topics(cfg: Config) -> None:
    """Create every topic of the pipeline with its partition count (changelogs compacted)."""
    from entropylong_streamer.services.stack import ensure_topics

    ensure_topics(cfg.kafka.bootstrap_servers, topic_partitions(cfg),
                  compacted=[t.full_name(cfg.kafka.topic_prefix) for t in pipeline_topics() if t.compacted],
                  client=client_kwargs(cfg), max_message_bytes=cfg.kafka.max_message_bytes)


def end_offsets(cfg: Config, topics: list[str], partitions: dict[str, int] | None = None) -> dict[str, int]:
    """Records produced to each topic (the sum of its partitions' end offsets); fills `partitions`
    with each topic's partition count when given."""
    from kafka import KafkaConsumer, TopicPartition

    cons = KafkaConsumer(enable_auto_commit=False, **client_kwargs(cfg))
    try:
        out = {}
        for t in topics:
            parts = cons.partitions_for_topic(t) or set()
            ends = cons.end_offsets([TopicPartition(t, p) for p in parts]) if parts else {}
            out[t] = sum(ends.values())
            if partitions is not None:
                partitions[t] = len(parts)
        return out
    finally:
        cons.close()


def collect(cfg: Config, stages: set[str] | None = None) -> list[StageStatus]:
    """One row per consuming stage (or per stage in `stages`)."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    groups = [g for g in stage_groups(cfg) if stages is None or g[0] in stages]
    partitions: dict[str, int] = {}
    ends = end_offsets(cfg, sorted({t for _, t, _ in groups}), partitions)
    admin = KafkaAdminClient(**client_kwargs(cfg))
    try:
        members = _members(admin, [g for _, _, g in groups])
        rows = []
        for stage, topic, group in groups:
            try:
                offsets = admin.list_group_offsets([group]).get(group, {})
            except KafkaError:  # a group that never committed (or not yet known): nothing committed
                offsets = {}
            committed = sum(o.offset for tp, o in offsets.items() if tp.topic == topic and o.offset >= 0)
            rows.append(StageStatus(stage, topic, group, ends.get(topic, 0), committed, partitions.get(topic, 0),
                                    members.get(group), at=time.monotonic()))
        return rows
    finally:
        admin.close()


def _members(admin, groups: list[str]) -> dict[str, int]:
    """Members of each group, in one DescribeGroups round; a group the broker cannot describe is absent."""
    import logging

    from kafka.errors import KafkaError

    # kafka-python warns per member whose assignor metadata it cannot decode (we read none of it)
    logging.getLogger("kafka.admin._groups").setLevel(logging.ERROR)
    try:
        described = admin.describe_groups(groups)
    except (KafkaError, AttributeError, ValueError):  # older clients or brokers: unknown, not an error
        return {}
    return {g: len(d.get("members") or []) for g, d in described.items() if not d.get("error")}


def outages(cfg: Config) -> list[dict]:
    """The embedded stack's workers waiting out an outage now, from the state files they keep in the run
    directory (agents/faults.py); a file whose worker is gone says nothing."""
    from entropylong_streamer.services.processes import pid_alive

    out = []
    for path in sorted(cfg.paths.run.glob("*.outage.json")):
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(state, dict) and pid_alive(int(state.get("pid", 0))):
            out.append(state)
    return out


def dead_letter_counts(cfg: Config) -> Counter[tuple[str, str]]:
    """(stage, reason) -> dead letters in the topic; the reason is its head ("decode", "error", a rule)."""
    from entropylong_streamer.quality.report import topic_messages
    from entropylong_streamer.topics import DEAD_LETTER, RecordError

    counts: Counter[tuple[str, str]] = Counter()
    for msg in topic_messages(cfg, DEAD_LETTER):
        try:
            letter = DEAD_LETTER.decode(msg.value)
        except RecordError:
            counts[("?", "undecodable")] += 1
            continue
        counts[(letter.stage, letter.reason.split(":")[0])] += 1
    return counts


def shard_summary(cfg: Config) -> dict:
    entries = read_manifest(cfg.paths.shard_set(cfg.version("pack")))
    losses = _jsonl(cfg.paths.trainer / "loss.jsonl")
    return {
        "shards": len(entries),
        "samples": sum(e["samples"] for e in entries),
        "tokens": sum(e["tokens"] for e in entries),
        "contexts": sum(e.get("contexts", 0) for e in entries),
        "sample_tokens": spread([n for e in entries for n in e.get("sample_lengths", ())]),
        "dependency_distance": spread([n for e in entries for n in e.get("dependency_distances", ())]),
        "trained_shards": len((checkpoint.latest_state(cfg.paths.trainer) or {}).get("consumed", ())),
        "loss_first": losses[0]["loss_first"] if losses else None,
        "loss_last": losses[-1]["loss_last"] if losses else None,
    }


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

