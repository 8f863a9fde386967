"""What a later multi-hop sample needs of a verified document (pack.depth > 1): its tokens and its
verified contexts, compacted by (verify version, document). Every packer publishes the documents it
packs and reads the whole topic into its store (services/verified_store.py), so a sample packed on
one packer uses what its peers made known."""

from __future__ import annotations

from .base import Record, TopicSpec


class VerifiedContext(Record):
    context_id: str
    context_doc_id: str
    token_ids: bytes  # little-endian uint32
    score: float  # its best dI
    anchors: list[int]  # the document's tokens it was accepted at


class VerifiedRecord(Record):
    doc_id: str
    config_version: str  # the verify stage's
    token_ids: bytes  # the document's tokens, little-endian uint32: where a window of it lies
    contexts: list[VerifiedContext]

    @property
    def topic_key(self) -> str:
        return f"{self.config_version}/{self.doc_id}"


VERIFIED = TopicSpec("verified", VerifiedRecord, key_field="topic_key", compacted=True)
