"""Verify stage: candidates -> dependencies. dI of every (context, anchor) pair.

One forward per unique context over [sep C sep D[:last anchor that retrieved C] + 1] measures H'
at all of that context's anchors at once; H comes from the anchors record, never recomputed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from entropylong_streamer.method.dependency import Criterion, relative_reduction
from entropylong_streamer.services.lm import LMEngine
from entropylong_streamer.topics import CandidatesRecord, Context, DependenciesRecord, Pair

from .base import StageError, StageResult, Stats, run_batch


@dataclass(eq=False)
class VerifyStage:
    name: ClassVar[str] = "verify"
    engine: LMEngine
    criterion: Criterion
    max_context_tokens: int
    separator_id: int
    config_version: str
    stats: Stats = field(default_factory=Stats, init=False)

    def process(self, records: list[CandidatesRecord]) -> StageResult[CandidatesRecord, DependenciesRecord]:
        result = run_batch(self.name, records, self._one, self.stats, self.engine)
        for rec in result.outputs:
            self.stats["pairs"] += len(rec.pairs)
            self.stats["accepted"] += sum(p.accepted for p in rec.pairs)
        return result

    def context_tokens(self, text: str) -> list[int]:
        """The candidate length cap, shared with the packer through the record: trained == verified."""
        return self.engine.tokenize(text).ids[: self.max_context_tokens]

    def _one(self, rec: CandidatesRecord) -> DependenciesRecord:
        doc = rec.anchors
        anchors = {a.index: a for a in doc.anchors}
        contexts, pairs = [], []
        for cand in rec.candidates:
            idx = sorted(set(cand.anchor_indices))
            if not idx or any(t not in anchors for t in idx):
                raise StageError(f"bad_anchor_indices: {cand.context_id} names {idx[:5]}, not anchors")
            last = idx[-1]
            # [sep C sep D[:last + 1]] must fit the model: a context near a long document's end is cut.
            room = self.engine.max_tokens - (last + 1) - 2
            ctx = self.context_tokens(cand.text)[: max(room, 0)]
            if not ctx:
                self.stats["contexts_without_room"] += 1
                continue
            contexts.append(Context(context_id=cand.context_id, context_doc_id=cand.context_doc_id,
                                    text=cand.text, token_ids=ctx))
            seq = [self.separator_id, *ctx, self.separator_id, *doc.token_ids[: last + 1]]
            offset = len(ctx) + 1  # logits at offset + t predict document token t
            h_ctx, nll_ctx = self.engine.score(seq, [offset + t for t in idx])
            for t, hc, nc in zip(idx, h_ctx, nll_ctx, strict=True):
                a = anchors[t]
                pairs.append(Pair(
                    context_id=cand.context_id, anchor_index=t, char_start=a.char_start,
                    char_end=a.char_end, h=a.entropy, h_ctx=float(hc), nll=a.nll, nll_ctx=float(nc),
                    d_i=relative_reduction(a.entropy, float(hc)),
                    accepted=self.criterion.accepts(a.entropy, float(hc), a.nll, float(nc)),
                ))
        return DependenciesRecord(doc_id=doc.doc_id, text=doc.text, token_ids=doc.token_ids,
                                  contexts=contexts, pairs=pairs, config_version=self.config_version)
