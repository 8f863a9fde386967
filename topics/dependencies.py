"""dependencies: every measured (context, anchor) pair of a document, with H, H', NLL, NLL', dI."""

from __future__ import annotations

from .base import Record, TopicSpec


class Context(Record):
    context_id: str
    context_doc_id: str
    text: str
    token_ids: list[int]


class Pair(Record):
    context_id: str
    anchor_index: int
    char_start: int
    char_end: int
    h: float
    h_ctx: float
    nll: float
    nll_ctx: float
    d_i: float
    accepted: bool


class DependenciesRecord(Record):
    doc_id: str
    text: str
    token_ids: list[int]
    contexts: list[Context]
    pairs: list[Pair]
    config_version: str


DEPENDENCIES = TopicSpec("dependencies", DependenciesRecord)
