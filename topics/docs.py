"""docs: documents as they enter the pipeline, keyed by a content-derived doc_id."""

from __future__ import annotations

from typing import ClassVar

from pydantic import field_validator

from .base import FromSource, TopicSpec


class Doc(FromSource):
    # 2: the rescore marker
    SCHEMA_VERSION: ClassVar[int] = 2
    UPGRADES_FROM: ClassVar[tuple[int, ...]] = (1,)

    schema_version: int = 2
    doc_id: str
    text: str
    # A document of a shard sent again to be scored by a newer model version (policy.rescore_last_shards):
    # the version that asked. The indexer skips it (the pool holds it already).
    rescore: str = ""

    @field_validator("text")
    @classmethod
    def _not_blank(cls, text: str) -> str:
        if not text.strip():
            raise ValueError("empty text")
        return text


DOCS = TopicSpec("docs", Doc)
