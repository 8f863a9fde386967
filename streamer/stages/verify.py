"""Verify stage: candidates -> dependencies. dI of every (context, anchor) pair.

One forward per unique context over [sep C sep D[:last anchor that retrieved C] + 1] (sep: the
separator's ids, exactly as the packer joins the sample) measures H' at all of that context's
anchors at once; H comes from the anchors record, never recomputed.
Pairs measured before (the measurement cache) are not measured again: a forward runs only up to
the last anchor still missing, and a context with nothing missing runs none.
Under span_tokens > 1 a pair is judged on the NLL summed over its anchor's word (method/spans.py):
the same forwards score the word's positions too, and one forward per document over [sep D] gives
their NLL without context (cached as a pair with the empty context).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from entropylong_streamer.measurements import Measurement, MeasurementCache, pair_key, token_digest
from entropylong_streamer.method.context_window import PairLayout, char_window, context_window, token_spans
from entropylong_streamer.method.dependency import Criterion, Measured, relative_reduction
from entropylong_streamer.method.screen import (
    ScreenParams,
)
from entropylong_streamer.method.spans import word_spans
from entropylong_streamer.services.lm import LMEngine, ScoreRequest
from entropylong_streamer.topics import Candidate, CandidatesRecord, Context, DependenciesRecord, Pair

from .base import StageError, StageResult, Stats, cost_of, run_batch, score_counted
from .retrieve import check_limits
from .verify_plan import Forward, MeasuredContext, Plan, Rebaselined, SpanNLL
from .verify_screen import screen_round

NO_CONTEXT = token_digest([])  # the key of a document's own NLL at a span position


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
    # A screen before the exact measurement (method/screen.py): None measures every candidate exactly.
    screen: ScreenParams | None = None
    model_version: str = ""  # the published version the engine holds (policy.follow); "": model.path
    span_tokens: int = 1  # the tokens a pair's NLL sums over, at most (method/spans.py); 1: the anchor's
    stats: Stats = field(default_factory=Stats, init=False)

    @property
    def layout(self) -> PairLayout:
        """The forward a pair is measured in, [sep C sep D[:t + 1]] within the engine's context."""
        return PairLayout(self.separator, self.engine.max_tokens)

    def process(self, records: list[CandidatesRecord]) -> StageResult[CandidatesRecord, DependenciesRecord]:
        # Plan every record's contexts, then per retrieval round run the whole batch's forwards in
        # one engine call (batched by length across candidates and documents). Round r + 1 measures
        # a record's later-round contexts only at the anchors rounds <= r left unresolved.
        records, rebaselined = self._rebaseline(records)
        planned = run_batch(self.name, records, self._plan, self.stats)
        for rej in planned.rejects:  # the caller knows the records it gave, not their rebaselined copies
            rej.record = rebaselined[id(rej.record)].given if id(rej.record) in rebaselined else rej.record
        for plan in planned.outputs:
            if (done := rebaselined.get(id(plan.record))) is not None:
                plan.charges.append(done.charge)
                plan.chosen_by = done.given.anchors.model_version
        live, round_ = planned.outputs, 1
        self._baselines(live)
        while live:
            if self.screen is not None:
                self._screen(live, round_)
            forwards = [(plan, f) for plan in live for f in self._forwards(plan, round_)]
            self._run(forwards)
            if self.screen is not None and not self.screen.shadow and self.criterion.kind == "specific":
                forwards += self._measure_rivals(live, round_)
            if self.cache is not None:
                self.cache.put(item for _, f in forwards for item in f.fresh.items())
            for plan in live:  # what the next round may measure: decided once per round
                plan.unresolved = self._unresolved(plan)
            live = [plan for plan in live if plan.later_rounds(round_) and plan.unresolved]
            round_ += 1
        result: StageResult[CandidatesRecord, DependenciesRecord] = StageResult(rejects=planned.rejects)
        for plan in planned.outputs:
            rec = self._record(plan)
            self.stats["pairs"] += len(rec.pairs)
            self.stats["accepted"] += sum(p.accepted for p in rec.pairs)
            self.stats["accepted_after_round_1"] += sum(p.accepted for p in rec.pairs if p.round > 1)
            result.outputs.append(rec)
        return result

    def _rebaseline(self, records: list[CandidatesRecord]) -> tuple[list[CandidatesRecord], dict[int, Rebaselined]]:
        """Documents whose anchors another model version scored get H and NLL at their anchors from this
        engine's model, in one call, so that every number of a pair (H, H', NLL, NLL', dI) is one model's;
        the anchors stay those the entropy stage chose. -> (records, by id of each rebaselined copy: what it was)."""
        stale = [i for i, r in enumerate(records)
                 if r.anchors.model_version != self.model_version and r.anchors.anchors and self._plannable(r)]
        if not stale:
            return records, {}
        k = len(self.separator)
        requests = [ScoreRequest([*self.separator, *records[i].anchors.token_ids],
                                 positions=[k - 1 + a.index for a in records[i].anchors.anchors]) for i in stale]
        scores, charges = score_counted(self.engine, requests, self.stats)
        self.stats["docs_rebaselined"] += len(stale)
        out, charged = list(records), {}
        for i, (h, nll), charge in zip(stale, scores, charges, strict=True):
            doc = records[i].anchors
            anchors = [a.model_copy(update={"entropy": float(e), "nll": float(n)})
                       for a, e, n in zip(doc.anchors, h, nll, strict=True)]
            doc = doc.model_copy(update={"anchors": anchors, "model_version": self.model_version})
            out[i] = records[i].model_copy(update={"anchors": doc})
            charged[id(out[i])] = Rebaselined(records[i], charge)
        return out, charged

    def _baselines(self, plans: list[Plan]) -> None:
        """Under span_tokens > 1: each document's NLL without context at every position of its anchors'
        spans, from one forward over [sep D] (or the cache), as verification's own model computes it."""
        k = len(self.separator)
        last = self.layout.last_alone()
        requests, owners, fresh = [], [], {}
        for plan in plans:
            if not plan.spans:
                continue
            doc = plan.record.anchors
            keys = {u: pair_key(self.model_key, doc.doc_id, plan.doc_digest, NO_CONTEXT, u)
                    for start, end in plan.spans.values() for u in range(start, min(end, last + 1))}
            for u, key in keys.items():
                if (m := self._cached(key)) is not None:
                    plan.base[u] = float(m[1])
            missing = sorted(u for u in keys if u not in plan.base)
            if missing:
                requests.append(ScoreRequest([*self.separator, *doc.token_ids[: missing[-1] + 1]],
                                             positions=[k - 1 + u for u in missing]))
                owners.append((plan, missing, keys))
        if not requests:
            return
        scores, charges = score_counted(self.engine, requests, self.stats)
        for (plan, missing, keys), (h, nll), charge in zip(owners, scores, charges, strict=True):
            plan.charges.append(charge)
            for u, hu, n in zip(missing, h, nll, strict=True):
                plan.base[u] = float(n)
                fresh[keys[u]] = (float(hu), float(n))
        if self.cache is not None:
            self.cache.put(fresh.items())

    def _spans(self, doc) -> dict[int, tuple[int, int]]:
        """Each anchor's span [start, end); {} under span_tokens 1, or where the engine does not tokenize
        the text into the record's tokens (counted: the pairs are judged at the anchor alone)."""
        if self.span_tokens == 1:
            return {}
        tok = self.engine.tokenize(doc.text)
        if list(tok.ids) != list(doc.token_ids):
            self.stats["docs_without_spans"] += 1
            return {}
        return word_spans(doc.text, tok.offsets, [a.index for a in doc.anchors], self.span_tokens)

    def _context(self, cand: Candidate, room: int) -> tuple[str, list[int], list[tuple[int, int]]]:
        """What is measured, and so trained (the record carries it to the packer): the candidate's
        tokens within the cap and the room, around the spans its anchors' queries matched; and those
        spans in its tokens (where the screen's view falls back to)."""
        size = room if self.max_context_tokens is None else min(room, self.max_context_tokens)
        tok = self.engine.tokenize(cand.text)
        spans = token_spans(tok.offsets, cand.spans)
        window = context_window(len(tok.ids), spans, size)
        if window == (0, len(tok.ids)):
            return cand.text, tok.ids, spans
        start, end = char_window(tok.offsets, window)
        kept = [(max(a - window[0], 0), b - window[0]) for a, b in spans if b > window[0] and a < window[1]]
        return cand.text[start:end], tok.ids[window[0] : window[1]], kept

    def _check(self, rec: CandidatesRecord) -> None:
        """Refuse a record beyond what the upstream stages could produce, before any LM work on it."""
        check_limits(rec.anchors, self.max_anchors, self.engine.vocab_size)
        if self.max_candidates is not None and len(rec.candidates) > self.max_candidates:
            raise StageError(f"too_many_candidates: {len(rec.candidates)} > {self.max_candidates}")

    def _plannable(self, rec: CandidatesRecord) -> bool:
        try:
            self._check(rec)
        except StageError:
            return False  # _plan rejects it, with the reason
        return True

    def _plan(self, rec: CandidatesRecord) -> Plan:
        doc = rec.anchors
        self._check(rec)
        anchors = {a.index for a in doc.anchors}
        plan = Plan(rec, token_digest(doc.token_ids), spans=self._spans(doc))
        for cand in rec.candidates:
            rounds = cand.rounds()
            if not rounds or any(t not in anchors for t in rounds):
                raise StageError(f"bad_anchor_indices: {cand.context_id} names {sorted(rounds)[:5]}, not anchors")
            # [sep C sep D[:last + 1]] must fit the model: a context near a long document's end is cut.
            # Its first round's anchors decide the cut (as retrieval's): a later round measures it as is.
            first = min(rounds.values())
            last = max(t for t, r in rounds.items() if r == first)
            text, ctx, spans = self._context(cand, self.layout.room(last))
            if not ctx:
                self.stats["contexts_without_room"] += 1
                continue
            plan.candidates.append(MeasuredContext(cand.context_id, cand.context_doc_id, text, ctx, rounds, spans))
        return plan

    def _measure_rivals(self, live: list[Plan], round_: int) -> list[tuple[Plan, Forward]]:
        """Under "specific" a pair's verdict depends on the other contexts measured at its anchor, and
        one the screen removed can only have lowered the rival a pair had to beat: measure the removed
        contexts exactly at each anchor a pair is accepted at, and every verdict is the unscreened
        build's. A rejected pair needs none: more rivals never turn a rejection into an acceptance."""
        forwards = []
        for plan in live:
            accepted = {t for t, ok, template in self._decided(plan) if ok and not template}
            forwards += [(plan, f) for f in self._forwards(plan, round_, rivals_at=accepted)]
        self.stats["rival_pairs_measured"] += self._run(forwards)
        return forwards

    def _run(self, forwards: list[tuple[Plan, Forward]]) -> int:
        """The forwards that have positions to score, in one engine call, each charged to its
        document; the pairs measured. The [sep C] prefix is shared by every document that retrieved
        C: an engine may compute it once."""
        run = [(plan, f) for plan, f in forwards if f.positions]
        if not run:
            return 0
        requests = [ScoreRequest(f.ids, f.positions, prefix=f.prefix) for _, f in run]
        scores, charges = score_counted(self.engine, requests, self.stats)
        for (plan, f), score, charge in zip(run, scores, charges, strict=True):
            f.measure(score)
            plan.charges.append(charge)
        return sum(len(f.positions) for _, f in run)

    def _forwards(self, plan: Plan, round_: int, rivals_at: set[int] | None = None) -> list[Forward]:
        """This round's forward of each context: one [sep C sep D[:last missing anchor + 1]] scored at
        the anchors it is measured at this round and has no measurement of yet (none when none is missing).
        rivals_at: the forwards of the contexts the screen removed instead, at those anchors only."""
        doc = plan.record.anchors
        layout = self.layout
        open_ = None if round_ == 1 else plan.unresolved
        out = []
        for c in plan.candidates:
            if c.first_round > round_ or c.screened_out != (rivals_at is not None):
                continue
            fits = layout.last_anchor(len(c.token_ids))
            idx = {t for t, r in c.rounds.items() if r <= round_}
            if self.all_anchors:
                idx.update(a.index for a in doc.anchors if a.index <= fits)
            idx = {t for t in idx - c.measured
                   if (open_ is None or t in open_) and (rivals_at is None or t in rivals_at)}
            unfit = {t for t in idx if t > fits} - c.unfit  # a later round's anchor past what the cut leaves
            self.stats["pairs_without_room"] += len(unfit)
            c.unfit |= unfit
            idx = sorted(t for t in idx if t <= fits)
            if not idx:
                continue
            # the positions scored: each anchor's span, as far as the forward holds
            span = {t: [u for u in range(*plan.spans.get(t, (t, t + 1))) if u <= fits] for t in idx}
            positions = sorted({u for us in span.values() for u in us})
            if not c.measured:
                plan.contexts.append(Context(context_id=c.context_id, context_doc_id=c.context_doc_id,
                                             text=c.text, token_ids=c.token_ids))
            c.measured.update(idx)
            self.stats[f"round_{round_}_pairs"] += len(idx)
            keys = {t: pair_key(self.model_key, doc.doc_id, plan.doc_digest, token_digest(c.token_ids), t)
                    for t in positions}
            known = {t: m for t, m in ((t, self._cached(keys[t])) for t in positions) if m is not None}
            reused = sum(all(u in known for u in span[t]) for t in idx)  # pairs the cache answers whole
            plan.reused += reused
            self.stats["pairs_cached"] += reused
            self.stats["pairs_measured"] += len(idx) - reused
            missing = [t for t in positions if t not in known]
            offset = layout.doc_logit(len(c.token_ids))  # logits at offset + t predict document token t
            seq = layout.forward(c.token_ids, doc.token_ids, missing[-1]) if missing else []
            forward = Forward(c.context_id, round_, idx, set(c.rounds), known, keys, seq,
                               [offset + t for t in missing], offset, prefix=layout.prefix(len(c.token_ids)))
            plan.forwards.append(forward)
            out.append(forward)
        return out

    def _screen(self, live: list[Plan], round_: int) -> None:
        screen_round(self, live, round_)

    def _unresolved(self, plan: Plan) -> set[int]:
        """The anchors no context measured so far is accepted at (templates are never resolved)."""
        accepted = {t for t, ok, template in self._decided(plan) if ok and not template}
        return {a.index for a in plan.record.anchors.anchors if not a.template and a.index not in accepted}

    def _cached(self, key: bytes) -> Measurement | None:
        return self.cache.get(key) if self.cache is not None else None

    def _measured(self, plan: Plan) -> list[tuple[Forward, Measured, SpanNLL | None]]:
        """(forward, its pair at the anchor, its span's sums where spans are measured) of every pair so far."""
        anchors = {a.index: a for a in plan.record.anchors.anchors}
        out = []
        for f in plan.forwards:
            for t in f.anchors:
                at = (t, anchors[t].entropy, float(f.known[t][0]), anchors[t].nll, float(f.known[t][1]))
                if not plan.spans:
                    out.append((f, at, None))
                    continue
                span = [u for u in range(*plan.spans[t]) if u in f.known and u in plan.base]
                where = (span[0], span[-1] + 1) if span else (t, t)  # a span the room cuts keeps its start
                out.append((f, at, SpanNLL(where, sum(plan.base[u] for u in span),
                                         sum(float(f.known[u][1]) for u in span))))
        return out

    def _decide(self, measured: list[tuple[Forward, Measured, SpanNLL | None]]) -> list[bool]:
        """The criterion's verdicts, on the span's NLL where measured."""
        return self.criterion.decide([at if span is None else (*at[:3], span.nll, span.nll_ctx)
                                      for _, at, span in measured])

    def _decided(self, plan: Plan) -> list[tuple[int, bool, bool]]:
        """(anchor, accepted by the criterion, anchor is a template) of every pair measured so far."""
        measured = self._measured(plan)
        anchors = {a.index: a for a in plan.record.anchors.anchors}
        decided = self._decide(measured)
        return [(m[0], ok, anchors[m[0]].template) for (_, m, _), ok in zip(measured, decided, strict=True)]

    def _record(self, plan: Plan) -> DependenciesRecord:
        doc = plan.record.anchors
        anchors = {a.index: a for a in doc.anchors}
        measured = self._measured(plan)
        decided = self._decide(measured)
        pairs = []
        for (forward, (t, h, hc, nll, nc), span), accepted in zip(measured, decided, strict=True):
            a = anchors[t]
            if a.template and accepted:  # kept apart: a template dependency never fills a sample
                self.stats["template_pairs_kept_apart"] += 1
            pairs.append(Pair(
                context_id=forward.context_id, anchor_index=t, char_start=a.char_start,
                char_end=a.char_end, h=h, h_ctx=hc, nll=nll, nll_ctx=nc, d_i=relative_reduction(h, hc),
                accepted=accepted and not a.template, retrieved=t in forward.retrieved, template=a.template,
                round=forward.round,
                **({} if span is None else {"span": span.where, "span_nll": span.nll, "span_nll_ctx": span.nll_ctx}),
            ))
        costs = {"verify": cost_of(plan.charges, plan.reused)}
        if self.screen is not None:
            costs["screen"] = cost_of(plan.screen_charges)
        if doc.cost is not None:
            costs["entropy"] = doc.cost
        return DependenciesRecord(doc_id=doc.doc_id, text=doc.text, token_ids=doc.token_ids, **doc.origin(),
                                  contexts=plan.contexts, pairs=pairs, config_version=self.config_version,
                                  costs=costs, screened=plan.screened, model_versions=self._versions(plan),
                                  rescore=doc.rescore)

    def _versions(self, plan: Plan) -> dict[str, str]:
        chosen_by = plan.record.anchors.model_version if plan.chosen_by is None else plan.chosen_by
        found = {"entropy": chosen_by, "verify": self.model_version}
        return {stage: v for stage, v in found.items() if v}
