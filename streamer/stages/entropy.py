"""Entropy stage: docs -> anchors. Per-token entropy, anchors above tau, query windows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from entropylong_streamer.measurements import MeasurementCache, pack_scores, scores_key, token_digest, unpack_scores
from entropylong_streamer.method.anchors import AnchorParams, is_layout, query_span, select_anchors
from entropylong_streamer.services.lm import LMEngine, ScoreRequest, Scores, Tokenized
from entropylong_streamer.topics import Anchor, AnchorsRecord, Doc, LMCost

from .base import StageError, StageResult, Stats, cost_of, run_batch, score_counted


@dataclass(eq=False)
class EntropyStage:
    """Scores a batch of documents in one engine call (batched across documents by the engine).

    Documents longer than the engine's context are scored in overlapping windows (see
    method/windows.py); only documents above max_doc_tokens, which no packed sequence could hold,
    are refused ("too_long").

    With a cache, a document scored before by the same model (same tokens) is not scored again:
    a replay with a new alpha, w or anchor cap re-selects anchors from its scores.
    """

    name: ClassVar[str] = "entropy"
    engine: LMEngine
    params: AnchorParams
    window: int
    separator: tuple[int, ...]  # the ids that open every piece of a sample (pack.separator)
    config_version: str
    max_doc_tokens: int = 131072
    model_key: str = ""  # what the scores depend on besides the tokens (the cache's key)
    cache: MeasurementCache | None = None
    model_version: str = ""  # the published version the engine holds (policy.follow); "": model.path
    stats: Stats = field(default_factory=Stats, init=False)

    def process(self, docs: list[Doc]) -> StageResult[Doc, AnchorsRecord]:
        tokens = dict(zip(map(id, docs), self.engine.tokenize_many([d.text for d in docs]), strict=True))
        tokenized = run_batch(self.name, docs, lambda doc: self._checked(doc, tokens[id(doc)]), self.stats)
        scores, costs = self._scores(tokenized.outputs)
        result: StageResult[Doc, AnchorsRecord] = StageResult(rejects=tokenized.rejects)
        for (doc, tok), (h, nll), cost in zip(tokenized.outputs, scores, costs, strict=True):
            result.outputs.append(self._record(doc, tok, h, nll, cost))
        self.stats["anchors"] += sum(len(r.anchors) for r in result.outputs)
        return result

    def _scores(self, tokenized: list[tuple[Doc, Tokenized]]) -> tuple[list[Scores], list[LMCost]]:
        keys = [scores_key(self.model_key, doc.doc_id, token_digest(tok.ids)) for doc, tok in tokenized]
        found = [self.cache.get(k) if self.cache is not None else None for k in keys]
        todo = [i for i, f in enumerate(found) if f is None]
        self.stats["docs_cached"] += len(found) - len(todo)
        self.stats["docs_scored"] += len(todo)
        # Prefixed by the separator, as in every training sample: logits at k - 1 + t predict token t.
        k = len(self.separator)
        requests = [ScoreRequest([*self.separator, *tokenized[i][1].ids],
                                 positions=range(k - 1, k - 1 + len(tokenized[i][1].ids)))
                    for i in todo]
        fresh, charges = score_counted(self.engine, requests, self.stats) if requests else ([], [])
        out: list[Scores | None] = [None if f is None else unpack_scores(f) for f in found]
        costs = [LMCost(reused=1)] * len(out)
        for i, s, charge in zip(todo, fresh, charges, strict=True):
            out[i], costs[i] = s, cost_of([charge])
        if self.cache is not None and todo:
            self.cache.put((keys[i], pack_scores(*s)) for i, s in zip(todo, fresh, strict=True))
        return out, costs  # type: ignore[return-value]

    def _checked(self, doc: Doc, tok: Tokenized) -> tuple[Doc, Tokenized]:
        n = len(tok.ids)
        if n < 2:
            raise StageError(f"too_short: {n} tokens")
        if n > self.max_doc_tokens:
            raise StageError(f"too_long: {n} tokens > entropy.max_doc_tokens {self.max_doc_tokens}")
        return doc, tok

    def _record(self, doc: Doc, tok: Tokenized, h: np.ndarray, nll: np.ndarray, cost: LMCost) -> AnchorsRecord:
        n = len(tok.ids)
        anchors = []
        layout = np.fromiter((is_layout(doc.text[a:b]) for a, b in tok.offsets), bool, n)
        chosen = select_anchors(h, self.params, layout)
        self.stats["layout_positions_skipped"] += chosen.layout
        if chosen.capped:
            self.stats["docs_capped"] += 1
            self.stats["anchors_capped"] += chosen.capped
        for t, leader in zip(chosen.anchors, chosen.leaders, strict=True):
            lo, hi = query_span(t, self.window, n)
            start, end = tok.offsets[t]
            follows = leader != t
            anchors.append(Anchor(index=t, char_start=start, char_end=end, entropy=float(h[t]), nll=float(nll[t]),
                                  query="" if follows else self.engine.decode(tok.ids[lo:hi]),
                                  leader=leader if follows else None))
        return AnchorsRecord(
            doc_id=doc.doc_id, text=doc.text, token_ids=tok.ids, token_offsets=tok.offsets,
            anchors=anchors, config_version=self.config_version, cost=cost, model_version=self.model_version,
            rescore=doc.rescore, **doc.origin(),
        )

