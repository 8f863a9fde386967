"""anchors: a document's per-token entropy (float16) and its high-entropy anchors with queries."""

from __future__ import annotations

from pydantic import Field, model_validator

from .base import Record, TopicSpec


class Anchor(Record):
    index: int = Field(ge=0)  # token index in the document
    char_start: int = Field(ge=0)
    char_end: int = Field(ge=0)
    entropy: float
    nll: float
    query: str  # the retrieval query: the text of tokens [index - w, index + w]; "" for a follower
    # A follower shares the query of this anchor (a nearby one with higher entropy) and is measured
    # against what that query retrieved; None: it leads, with its own query.
    leader: int | None = None
    # Set by retrieval: the anchor's line recurs in at least retrieval.template_min_docs pool
    # documents (navigation, footers): nothing is retrieved for it and no dependency of it is trained.
    template: bool = False


class AnchorsRecord(Record):
    doc_id: str
    text: str
    token_ids: list[int]
    token_offsets: list[tuple[int, int]]
    entropy_f16: bytes  # little-endian float16, one per token (a replay reads the fp32 scores topic)
    anchors: list[Anchor]
    config_version: str
    # where the document came from (Doc.url, .source, .source_id), carried to the samples
    url: str = ""
    source: str = ""
    source_id: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> AnchorsRecord:
        n = len(self.token_ids)
        if len(self.token_offsets) != n or len(self.entropy_f16) != 2 * n:
            raise ValueError(f"{n} token ids but {len(self.token_offsets)} offsets and "
                             f"{len(self.entropy_f16) // 2} entropies")
        if any(a.index >= n for a in self.anchors):
            raise ValueError(f"an anchor index is beyond the document's {n} tokens")
        leads = {a.index for a in self.anchors if a.leader is None}
        if any(a.leader is not None and a.leader not in leads for a in self.anchors):
            raise ValueError("an anchor's leader is not a leading anchor of the record")
        return self


ANCHORS = TopicSpec("anchors", AnchorsRecord)
