"""anchors: a document's per-token entropy (float16) and its high-entropy anchors with queries."""

from __future__ import annotations

from pydantic import Field

from .base import Record, TopicSpec


class Anchor(Record):
    index: int = Field(ge=0)  # token index in the document
    char_start: int = Field(ge=0)
    char_end: int = Field(ge=0)
    entropy: float
    nll: float
    query: str


class AnchorsRecord(Record):
    doc_id: str
    text: str
    token_ids: list[int]
    token_offsets: list[tuple[int, int]]
    entropy_f16: bytes  # little-endian float16, one per token: alpha can change without LM work
    anchors: list[Anchor]
    config_version: str


ANCHORS = TopicSpec("anchors", AnchorsRecord)
