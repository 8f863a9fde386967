"""candidates: the anchors record plus the unique retrieved contexts (pool documents, cut around the
retrieved chunks, or the chunks themselves) and the anchors that found each."""

from __future__ import annotations

from .anchors import AnchorsRecord
from .base import Record, TopicSpec


class Candidate(Record):
    context_id: str
    context_doc_id: str
    text: str
    score: float
    anchor_indices: list[int]
    # [start, end) characters of text that the anchors' queries matched (the retrieved chunks): a
    # verifier with less room keeps the part around them.
    spans: list[tuple[int, int]] = []
    # The retrieval round of each anchor_indices entry (retrieval.rounds): round r is measured only
    # at anchors no context of rounds < r resolved. Empty: every anchor is round 1.
    anchor_rounds: list[int] = []

    def rounds(self) -> dict[int, int]:
        """Anchor index -> the round this context is measured at it."""
        return {t: r for t, r in zip(self.anchor_indices, self.anchor_rounds or [1] * len(self.anchor_indices),
                                     strict=True)}


class CandidatesRecord(Record):
    anchors: AnchorsRecord
    candidates: list[Candidate]
    config_version: str

    @property
    def doc_id(self) -> str:
        return self.anchors.doc_id

    @property
    def source_id(self) -> str:
        return self.anchors.source_id


CANDIDATES = TopicSpec("candidates", CandidatesRecord)
