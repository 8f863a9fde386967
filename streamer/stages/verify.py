"""Verify stage: candidates -> dependencies. dI of every (context, anchor) pair.

One forward per unique context over [sep C sep D[:last anchor that retrieved C] + 1] measures H'
at all of that context's anchors at once; H comes from the anchors record, never recomputed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from entropylong_streamer.method.dependency import Criterion, relative_reduction
from entropylong_streamer.services.lm import LMEngine, ScoreRequest, Scores
from entropylong_streamer.topics import CandidatesRecord, Context, DependenciesRecord, Pair

from .base import StageError, StageResult, Stats, run_batch, score_counted


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
        # Plan every record's forwards, run the whole batch's in one engine call (batched by
        # length across candidates and documents), then build each record's pairs.
        planned = run_batch(self.name, records, self._plan, self.stats)
        requests = [ScoreRequest(f.ids, f.positions) for plan in planned.outputs for f in plan.forwards]
        scores = iter(score_counted(self.engine, requests, self.stats))
        result: StageResult[CandidatesRecord, DependenciesRecord] = StageResult(rejects=planned.rejects)
        for plan in planned.outputs:
            rec = self._record(plan, [next(scores) for _ in plan.forwards])
            self.stats["pairs"] += len(rec.pairs)
            self.stats["accepted"] += sum(p.accepted for p in rec.pairs)
            result.outputs.append(rec)
        return result

    def context_tokens(self, text: str) -> list[int]:
        """The candidate length cap, shared with the packer through the record: trained == verified."""
        return self.engine.tokenize(text).ids[: self.max_context_tokens]

    def _plan(self, rec: CandidatesRecord) -> _Plan:
        doc = rec.anchors
        anchors = {a.index for a in doc.anchors}
        plan = _Plan(rec)
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
            plan.contexts.append(Context(context_id=cand.context_id, context_doc_id=cand.context_doc_id,
                                         text=cand.text, token_ids=ctx))
            seq = [self.separator_id, *ctx, self.separator_id, *doc.token_ids[: last + 1]]
            offset = len(ctx) + 1  # logits at offset + t predict document token t
            plan.forwards.append(_Forward(cand.context_id, idx, seq, [offset + t for t in idx]))
        return plan

    def _record(self, plan: _Plan, scores: list[Scores]) -> DependenciesRecord:
        doc = plan.record.anchors
        anchors = {a.index: a for a in doc.anchors}
        pairs = []
        for forward, (h_ctx, nll_ctx) in zip(plan.forwards, scores, strict=True):
            for t, hc, nc in zip(forward.anchors, h_ctx, nll_ctx, strict=True):
                a = anchors[t]
                pairs.append(Pair(
                    context_id=forward.context_id, anchor_index=t, char_start=a.char_start,
                    char_end=a.char_end, h=a.entropy, h_ctx=float(hc), nll=a.nll, nll_ctx=float(nc),
                    d_i=relative_reduction(a.entropy, float(hc)),
                    accepted=self.criterion.accepts(a.entropy, float(hc), a.nll, float(nc)),
                ))
        return DependenciesRecord(doc_id=doc.doc_id, text=doc.text, token_ids=doc.token_ids,
                                  contexts=plan.contexts, pairs=pairs, config_version=self.config_version)


@dataclass
class _Forward:
    """One forward of [sep C sep D[:last anchor + 1]], scored at every anchor that retrieved C."""

    context_id: str
    anchors: list[int]
    ids: list[int]
    positions: list[int]


@dataclass
class _Plan:
    record: CandidatesRecord
    contexts: list[Context] = field(default_factory=list)
    forwards: list[_Forward] = field(default_factory=list)
