"""Verify stage: candidates -> dependencies. dI of every (context, anchor) pair.

One forward per unique context over [sep C sep D[:last anchor that retrieved C] + 1] (sep: the
separator's ids, exactly as the packer joins the sample) measures H' at all of that context's
anchors at once; H comes from the anchors record, never recomputed.
Pairs measured before (the measurement cache) are not measured again: a forward runs only up to
the last anchor still missing, and a context with nothing missing runs none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from entropylong_streamer.measurements import Measurement, MeasurementCache, pair_key, token_digest
from entropylong_streamer.method.context_window import char_window, context_window, token_spans
from entropylong_streamer.method.dependency import Criterion, relative_reduction
from entropylong_streamer.services.lm import LMEngine, ScoreRequest, Scores
from entropylong_streamer.topics import Candidate, CandidatesRecord, Context, DependenciesRecord, Pair

from .base import StageError, StageResult, Stats, run_batch, score_counted
from .retrieve import check_limits


@dataclass(eq=False)
class VerifyStage:
    name: ClassVar[str] = "verify"
    engine: LMEngine
    criterion: Criterion
    max_context_tokens: int | None  # None: what the verifier's context leaves beside the document
    separator: tuple[int, ...]
    config_version: str
    # Measure each context at every anchor of the document whose [sep C sep D[:t + 1]] fits the
    # model, not only at the anchors whose query retrieved it: a true source retrieved by one fact's
    # query is then also measured at the document's other facts, and a lookalike at every fact it
    # contradicts. One forward per context still measures them all.
    all_anchors: bool = False
    model_key: str = ""  # what H' depends on besides the tokens: model, dtype (the cache's key)
    cache: MeasurementCache | None = None
    # A record beyond what the upstream stages could produce is bad input, refused before any work.
    max_anchors: int | None = None
    max_candidates: int | None = None
    stats: Stats = field(default_factory=Stats, init=False)

    def process(self, records: list[CandidatesRecord]) -> StageResult[CandidatesRecord, DependenciesRecord]:
        # Plan every record's forwards, run the whole batch's in one engine call (batched by
        # length across candidates and documents), then build each record's pairs.
        planned = run_batch(self.name, records, self._plan, self.stats)
        # The [sep C] prefix is shared by every document that retrieved C: an engine may compute it once.
        requests = [ScoreRequest(f.ids, f.positions, prefix=f.prefix)
                    for plan in planned.outputs for f in plan.forwards if f.positions]
        scores = iter(score_counted(self.engine, requests, self.stats))
        result: StageResult[CandidatesRecord, DependenciesRecord] = StageResult(rejects=planned.rejects)
        for plan in planned.outputs:
            for f in plan.forwards:
                if f.positions:
                    f.measure(next(scores))
            if self.cache is not None:
                self.cache.put(item for f in plan.forwards for item in f.fresh.items())
            rec = self._record(plan)
            self.stats["pairs"] += len(rec.pairs)
            self.stats["accepted"] += sum(p.accepted for p in rec.pairs)
            result.outputs.append(rec)
        return result

    def context_tokens(self, text: str) -> list[int]:
        """A text's tokens under the context length cap, from its head."""
        return self.engine.tokenize(text).ids[: self.max_context_tokens]

    def _context(self, cand: Candidate, room: int) -> tuple[str, list[int]]:
        """What is measured, and so trained (the record carries it to the packer): the candidate's
        tokens within the cap and the room, around the spans its anchors' queries matched."""
        size = room if self.max_context_tokens is None else min(room, self.max_context_tokens)
        tok = self.engine.tokenize(cand.text)
        window = context_window(len(tok.ids), token_spans(tok.offsets, cand.spans), size)
        if window == (0, len(tok.ids)):
            return cand.text, tok.ids
        start, end = char_window(tok.offsets, window)
        return cand.text[start:end], tok.ids[window[0] : window[1]]

    def _plan(self, rec: CandidatesRecord) -> _Plan:
        doc = rec.anchors
        check_limits(doc, self.max_anchors, self.engine.vocab_size)
        if self.max_candidates is not None and len(rec.candidates) > self.max_candidates:
            raise StageError(f"too_many_candidates: {len(rec.candidates)} > {self.max_candidates}")
        anchors = {a.index for a in doc.anchors}
        ordered = sorted(anchors)
        doc_digest = token_digest(doc.token_ids)
        plan = _Plan(rec)
        for cand in rec.candidates:
            idx = sorted(set(cand.anchor_indices))
            if not idx or any(t not in anchors for t in idx):
                raise StageError(f"bad_anchor_indices: {cand.context_id} names {idx[:5]}, not anchors")
            last = idx[-1]
            # [sep C sep D[:last + 1]] must fit the model: a context near a long document's end is cut.
            k = len(self.separator)
            room = self.engine.max_tokens - (last + 1) - 2 * k
            text, ctx = self._context(cand, max(room, 0))
            if not ctx:
                self.stats["contexts_without_room"] += 1
                continue
            retrieved = set(idx)
            if self.all_anchors:
                fits = self.engine.max_tokens - 2 * k - len(ctx) - 1  # the last anchor [C; D[:t + 1]] holds
                idx = sorted(retrieved.union(t for t in ordered if t <= fits))
            plan.contexts.append(Context(context_id=cand.context_id, context_doc_id=cand.context_doc_id,
                                         text=text, token_ids=ctx))
            keys = {t: pair_key(self.model_key, doc.doc_id, doc_digest, token_digest(ctx), t) for t in idx}
            known = {t: m for t, m in ((t, self._cached(keys[t])) for t in idx) if m is not None}
            missing = [t for t in idx if t not in known]
            offset = 2 * k + len(ctx) - 1  # logits at offset + t predict document token t
            seq = [*self.separator, *ctx, *self.separator, *doc.token_ids[: missing[-1] + 1]] if missing else []
            plan.forwards.append(_Forward(cand.context_id, idx, retrieved, known, keys, seq,
                                          [offset + t for t in missing], offset, prefix=k + len(ctx)))
        return plan

    def _cached(self, key: bytes) -> Measurement | None:
        found = self.cache.get(key) if self.cache is not None else None
        self.stats["pairs_cached" if found is not None else "pairs_measured"] += 1
        return found

    def _record(self, plan: _Plan) -> DependenciesRecord:
        doc = plan.record.anchors
        anchors = {a.index: a for a in doc.anchors}
        measured = [(f, (t, anchors[t].entropy, float(f.known[t][0]), anchors[t].nll, float(f.known[t][1])))
                    for f in plan.forwards for t in f.anchors]
        decided = self.criterion.decide([m for _, m in measured])
        pairs = []
        for (forward, (t, h, hc, nll, nc)), accepted in zip(measured, decided, strict=True):
            a = anchors[t]
            if a.template and accepted:  # kept apart: a template dependency never fills a sample
                self.stats["template_pairs_kept_apart"] += 1
            pairs.append(Pair(
                context_id=forward.context_id, anchor_index=t, char_start=a.char_start,
                char_end=a.char_end, h=h, h_ctx=hc, nll=nll, nll_ctx=nc, d_i=relative_reduction(h, hc),
                accepted=accepted and not a.template, retrieved=t in forward.retrieved, template=a.template,
            ))
        return DependenciesRecord(doc_id=doc.doc_id, text=doc.text, token_ids=doc.token_ids, url=doc.url,
                                  source=doc.source, source_id=doc.source_id,
                                  contexts=plan.contexts, pairs=pairs, config_version=self.config_version)


@dataclass
class _Forward:
    """One forward of [sep C sep D[:last missing anchor + 1]], scored at every anchor that retrieved
    C and has no measurement yet (no forward at all when none is missing)."""

    context_id: str
    anchors: list[int]
    retrieved: set[int]  # the anchors whose query retrieved C
    known: dict[int, Measurement]
    keys: dict[int, bytes]
    ids: list[int]
    positions: list[int]
    offset: int  # logits at offset + t predict document token t
    prefix: int  # [sep C]: what every document that retrieved C shares
    fresh: dict[bytes, Measurement] = field(default_factory=dict)

    def measure(self, scores: Scores) -> None:
        for pos, h, nll in zip(self.positions, *scores, strict=True):
            t = pos - self.offset
            self.known[t] = (float(h), float(nll))
            self.fresh[self.keys[t]] = self.known[t]


@dataclass
class _Plan:
    record: CandidatesRecord
    contexts: list[Context] = field(default_factory=list)
    forwards: list[_Forward] = field(default_factory=list)
