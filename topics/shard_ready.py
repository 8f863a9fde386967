"""shard-ready: one announcement per durable shard, for the rolling trainer."""

from __future__ import annotations

from .base import Record, TopicSpec


class ShardReady(Record):
    shard_id: str
    path: str  # an MDS directory (index.json + shard files) readable by StreamingDataset
    config_version: str
    sequences: int
    samples: int
    tokens: int


SHARD_READY = TopicSpec("shard-ready", ShardReady, key_field="shard_id", partitions=1)
