"""model-versions: one announcement per published model version of the rolling trainer, for the
scoring workers that follow it (policy.follow). Announced again at every trainer start."""

from __future__ import annotations

from .base import Record, TopicSpec


class ModelVersion(Record):
    version: str  # "v000004-1a2b3c4d5e": shards seen, digest of the weights
    path: str  # a complete Hugging Face model directory
    base_model: str  # the model.path the trainer continued from
    config_version: str  # the shard set it was trained on (the trainer's pack version)
    step: int
    shards_seen: int
    last_shard: str = ""

    def newer_than(self, other: ModelVersion | None) -> bool:
        return other is None or (self.shards_seen, self.step) > (other.shards_seen, other.step)


# Compacted, keyed by version: every version's announcement stays however long ago it was made (a worker
# started a month after the last publication must still find it), re-announcements replace their own.
MODEL_VERSIONS = TopicSpec("model-versions", ModelVersion, key_field="version", partitions=1, compacted=True)
