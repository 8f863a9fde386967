"""anchors: a document's tokens and its high-entropy anchors with their queries. The per-token
entropy itself is in the scores topic (fp32), keyed by model and tokens."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, model_validator

from .base import FromSource, Record, TopicSpec
from .cost import LMCost


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


class AnchorsRecord(FromSource):
    # 2: no per-token entropy (schema 1's entropy_f16, which nothing read: 2 bytes a token)
    # 3: the entropy stage's LM cost of the document
    # 4: the model version that scored it, the rescore marker
    SCHEMA_VERSION: ClassVar[int] = 4
    UPGRADES_FROM: ClassVar[tuple[int, ...]] = (1, 2, 3)

    schema_version: int = 4
    doc_id: str
    text: str
    token_ids: list[int]
    token_offsets: list[tuple[int, int]]
    anchors: list[Anchor]
    config_version: str
    cost: LMCost | None = None  # None: written before costs were recorded (schema < 3)
    model_version: str = ""  # the published version that scored it (policy.follow); "": model.path itself
    rescore: str = ""  # Doc.rescore: sent again to be scored by this version (policy.rescore_last_shards)

    @model_validator(mode="before")
    @classmethod
    def _upgrade_schema(cls, data: Any) -> Any:  # the base's, and schema 1's per-token entropy dropped
        if isinstance(data, dict) and data.get("schema_version") in cls.UPGRADES_FROM:
            data = {k: v for k, v in data.items() if k != "entropy_f16"} | {"schema_version": cls.SCHEMA_VERSION}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> AnchorsRecord:
        n = len(self.token_ids)
        if len(self.token_offsets) != n:
            raise ValueError(f"{n} token ids but {len(self.token_offsets)} offsets")
        if any(a.index >= n for a in self.anchors):
            raise ValueError(f"an anchor index is beyond the document's {n} tokens")
        leads = {a.index for a in self.anchors if a.leader is None}
        if any(a.leader is not None and a.leader not in leads for a in self.anchors):
            raise ValueError("an anchor's leader is not a leading anchor of the record")
        return self


ANCHORS = TopicSpec("anchors", AnchorsRecord)
