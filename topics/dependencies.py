"""dependencies: every measured (context, anchor) pair of a document, with H, H', NLL, NLL', dI."""

from __future__ import annotations

from typing import ClassVar

from pydantic import model_validator

from .base import FromSource, Record, TopicSpec
from .cost import LMCost


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
    # Whether this anchor's query retrieved the context; False: measured because the context was
    # retrieved for another anchor of the document (verify.all_anchors).
    retrieved: bool = True
    # The anchor lies on a template line (retrieval.template_min_docs): never accepted, whatever dI.
    template: bool = False
    # The retrieval round that measured it (retrieval.rounds): > 1 only at an anchor no context of
    # the earlier rounds resolved.
    round: int = 1
    # Under verify.span_tokens > 1: the NLL without and with the context summed over the anchor's word
    # and the token that ends it (span: [start, end) in the document's tokens), which the criterion
    # judged; nll and nll_ctx stay the anchor's.
    span: tuple[int, int] | None = None
    span_nll: float | None = None
    span_nll_ctx: float | None = None

    def judged(self, spans: bool = True) -> tuple[int, float, float, float, float]:
        """(anchor, H, H', NLL, NLL') as the criterion judges the pair: over its span where measured (and
        spans), else at the anchor alone."""
        if not spans or self.span_nll is None or self.span_nll_ctx is None:
            return self.anchor_index, self.h, self.h_ctx, self.nll, self.nll_ctx
        return self.anchor_index, self.h, self.h_ctx, self.span_nll, self.span_nll_ctx


class Screened(Record):
    """A context the screen before exact verification judged (verify.screen): the true token's NLL
    at each screened anchor on the anchor's window alone and with the context's view before it."""

    context_id: str
    context_doc_id: str
    anchors: list[int]
    nll: list[float]
    nll_view: list[float]
    passed: bool  # measured exactly ("shadow": every context is, and this says what "on" would do)


class DependenciesRecord(FromSource):
    # 2: the LM cost of the document per stage, the screen's verdicts
    # 3: the model version of each stage, the rescore marker
    # 4: each pair's span (span, span_nll, span_nll_ctx)
    SCHEMA_VERSION: ClassVar[int] = 4
    UPGRADES_FROM: ClassVar[tuple[int, ...]] = (1, 2, 3)

    schema_version: int = 4
    doc_id: str
    text: str
    token_ids: list[int]
    contexts: list[Context]
    pairs: list[Pair]
    config_version: str
    # What the LM work on this document cost, by stage ("entropy", "verify"); {}: written before
    # costs were recorded (schema 1).
    costs: dict[str, LMCost] = {}
    screened: list[Screened] = []  # what the screen judged (none without a screen)
    # The published model version that measured it, by stage ("entropy", "verify"; policy.follow);
    # {}: model.path itself, or written before versions were recorded (schema < 3).
    model_versions: dict[str, str] = {}
    rescore: str = ""  # Doc.rescore, carried: the packer packs a document once per rescoring

    @model_validator(mode="after")
    def _consistent(self) -> DependenciesRecord:
        known = {c.context_id for c in self.contexts}
        if any(p.context_id not in known for p in self.pairs):
            raise ValueError("a pair names a context the record does not carry")
        if any(p.anchor_index >= len(self.token_ids) for p in self.pairs):
            raise ValueError(f"a pair's anchor is beyond the document's {len(self.token_ids)} tokens")
        return self

    def context(self, context_id: str) -> Context:
        return next(c for c in self.contexts if c.context_id == context_id)


DEPENDENCIES = TopicSpec("dependencies", DependenciesRecord)
