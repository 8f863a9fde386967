"""On-policy construction (policy.*): what the trainer announces when it publishes a model version,
and which documents it sends back to be scored by it. Transport-free: the trainer's loop sends these."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from entropylong_streamer.services.model_versions import Published
from entropylong_streamer.services.shards import read_documents
from entropylong_streamer.topics import Doc, ModelVersion


def announcement(version: Published, config_version: str) -> ModelVersion:
    return ModelVersion(version=version.version, path=version.path, base_model=version.base_model,
                        config_version=config_version, step=version.step, shards_seen=version.shards_seen,
                        last_shard=version.shards[-1] if version.shards else "")


def rescore_documents(shard_paths: Iterable[Path], version: str) -> tuple[list[Doc], int]:
    """The documents of these shards' samples, once each, marked to be scored again for version;
    and how many samples had no document kept (shards written before documents.jsonl)."""
    docs: dict[str, Doc] = {}
    missing = 0
    for path in shard_paths:
        found = read_documents(path)
        if not found:
            missing += 1
        for d in found:
            docs.setdefault(d["doc_id"], Doc(doc_id=d["doc_id"], text=d["text"], url=d.get("url", ""),
                                             source=d.get("source", ""), source_id=d.get("source_id", ""),
                                             rescore=version))
    return list(docs.values()), missing
