"""Entropy stage: docs -> anchors. Per-token entropy, anchors above tau, query windows."""

from __future__ import annotations

import numpy as np

from entropylong_streamer.method.anchors import AnchorParams, query_span, select_anchors
from entropylong_streamer.services.lm import LMEngine
from entropylong_streamer.topics import Anchor, AnchorsRecord, Doc

from .base import StageError, StageResult, Stats, run_batch


class EntropyStage:
    name = "entropy"

    def __init__(self, engine: LMEngine, params: AnchorParams, window: int, separator_id: int,
                 config_version: str) -> None:
        self.engine = engine
        self.params = params
        self.window = window
        self.separator_id = separator_id
        self.config_version = config_version
        self.stats = Stats()

    def process(self, docs: list[Doc]) -> StageResult[Doc, AnchorsRecord]:
        result = run_batch(self.name, docs, self._one, self.stats, self.engine)
        self.stats["anchors"] += sum(len(r.anchors) for r in result.outputs)
        return result

    def _one(self, doc: Doc) -> AnchorsRecord:
        tok = self.engine.tokenize(doc.text)
        n = len(tok.ids)
        if n < 2:
            raise StageError(f"too_short: {n} tokens")
        # Stated rule for now: a document longer than the model's context is refused, not cut.
        if n + 1 > self.engine.max_tokens:
            raise StageError(f"too_long: {n} tokens > model limit {self.engine.max_tokens - 1}")
        # Prefixed by the separator, as in every training sample: logits at p predict token p.
        h, nll = self.engine.score([self.separator_id, *tok.ids])
        anchors = []
        for t in select_anchors(h, self.params):
            lo, hi = query_span(t, self.window, n)
            start, end = tok.offsets[t]
            anchors.append(Anchor(index=t, char_start=start, char_end=end, entropy=float(h[t]),
                                  nll=float(nll[t]), query=self.engine.decode(tok.ids[lo:hi])))
        return AnchorsRecord(
            doc_id=doc.doc_id, text=doc.text, token_ids=tok.ids, token_offsets=tok.offsets,
            entropy_f16=h.astype("<f2").tobytes(), anchors=anchors, config_version=self.config_version,
        )


def entropy_array(record: AnchorsRecord) -> np.ndarray:
    return np.frombuffer(record.entropy_f16, dtype="<f2").astype(np.float32)
