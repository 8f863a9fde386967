"""Retrieval stage: anchors -> candidates. Top-K pool chunks per anchor query, never the document."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Protocol

import numpy as np

from entropylong_streamer.method.near_dup import NearDuplicateRule
from entropylong_streamer.method.templates import split_lines, template_spans
from entropylong_streamer.services.line_store import LineStore
from entropylong_streamer.topics import Anchor, AnchorsRecord, Candidate, CandidatesRecord

from .base import StageError, StageResult, Stats, run_batch


@dataclass(frozen=True)
class Hit:
    chunk_id: str
    doc_id: str
    text: str
    score: float
    doc_signature: tuple[int, ...] = ()  # MinHash of the chunk's whole document


class Embedder(Protocol):
    def embed(self, texts: list[str]) -> np.ndarray: ...


class Pool(Protocol):
    def search(self, vectors: np.ndarray, k: int, exclude_doc_id: str) -> list[list[Hit]]: ...


def is_same_document(doc_id: str, doc_signature: np.ndarray, hit: Hit, rule: NearDuplicateRule) -> bool:
    """The leakage guard: a chunk of the document itself, or of a near duplicate of it by the door's
    rule, is a copy of the document, not a dependency."""
    return hit.doc_id == doc_id or rule.same(doc_signature, hit.doc_signature)


def check_limits(rec: AnchorsRecord, max_anchors: int | None, vocab_size: int | None = None) -> None:
    """Refuse an anchors record no entropy stage of this configuration could have produced."""
    if max_anchors is not None and len(rec.anchors) > max_anchors:
        raise StageError(f"too_many_anchors: {len(rec.anchors)} > {max_anchors}")
    if vocab_size is not None and rec.token_ids and not 0 <= min(rec.token_ids) <= max(rec.token_ids) < vocab_size:
        raise StageError(f"bad_token_id: document token ids must be in [0, {vocab_size})")


@dataclass(eq=False)
class RetrievalStage:
    """Anchors -> candidates. With a line store, anchors on lines that at least template_min_docs
    pool documents hold are templates (method/templates.py): they query nothing and no candidate is
    retrieved for them; verify measures no dependency of theirs into a sample."""

    name: ClassVar[str] = "retrieval"
    embedder: Embedder
    pool: Pool
    top_k: int
    rule: NearDuplicateRule
    config_version: str
    overfetch: int = 3
    max_anchors: int | None = None  # more anchors than the entropy stage keeps: bad input, refused
    lines: LineStore | None = None
    template_min_docs: int = 10
    stats: Stats = field(default_factory=Stats, init=False)

    def process(self, records: list[AnchorsRecord]) -> StageResult[AnchorsRecord, CandidatesRecord]:
        # Every query of the batch in one embedding call; then one search per document, since each
        # excludes its own document. Records refused by the limits embed nothing.
        flagged: dict[int, AnchorsRecord] = {}
        for rec in records:
            try:
                check_limits(rec, self.max_anchors)
            except StageError:
                continue
            flagged[id(rec)] = self._flag_templates(rec)
        queried = {key: _queried(rec) for key, rec in flagged.items()}
        queries = [a.query for leaders in queried.values() for a in leaders]
        vectors = self.embedder.embed(queries) if queries else None
        self.stats["queries"] += len(queries)
        starts, at = {}, 0
        for key, leaders in queried.items():
            starts[key] = at
            at += len(leaders)

        def one(rec: AnchorsRecord) -> CandidatesRecord:
            check_limits(rec, self.max_anchors)
            leaders, start = queried[id(rec)], starts[id(rec)]
            return self._one(flagged[id(rec)], leaders, vectors[start : start + len(leaders)] if leaders else None)

        return run_batch(self.name, records, one, self.stats)

    def _flag_templates(self, rec: AnchorsRecord) -> AnchorsRecord:
        if self.lines is None or not rec.anchors:
            return rec
        lines = split_lines(rec.text)
        templates = template_spans(lines, self.lines.counts(lines.distinct()), self.template_min_docs)
        if not templates:
            return rec
        marked = [a.model_copy(update={"template": True}) if lines.hash_of_token(a.char_start, a.char_end)
                  in templates else a for a in rec.anchors]
        self.stats["template_anchors"] += sum(a.template for a in marked)
        return rec.model_copy(update={"anchors": marked})

    def _one(self, rec: AnchorsRecord, queried: list[Anchor], vectors: np.ndarray | None) -> CandidatesRecord:
        if not queried:
            return CandidatesRecord(anchors=rec, candidates=[], config_version=self.config_version)
        found = self.pool.search(vectors, self.top_k * self.overfetch, exclude_doc_id=rec.doc_id)
        hits_of = {a.index: hits for a, hits in zip(queried, found, strict=True)}
        doc_sig = self.rule.signature(rec.text)
        by_chunk: dict[str, Candidate] = {}
        leaks: dict[str, bool] = {}
        for anchor in rec.anchors:  # a follower is measured against what its leader's query found
            if anchor.template:
                continue
            kept = 0
            for hit in hits_of[anchor.index if anchor.leader is None else anchor.leader]:
                if kept == self.top_k:
                    break
                if hit.chunk_id not in leaks:  # the same chunk comes back for several anchors
                    leaks[hit.chunk_id] = is_same_document(rec.doc_id, doc_sig, hit, self.rule)
                if leaks[hit.chunk_id]:
                    self.stats["leaks_excluded"] += 1
                    continue
                kept += 1
                prev = by_chunk.get(hit.chunk_id)
                anchors = [*(prev.anchor_indices if prev else []), anchor.index]
                score = max(hit.score, prev.score) if prev else hit.score
                by_chunk[hit.chunk_id] = Candidate(context_id=hit.chunk_id, context_doc_id=hit.doc_id,
                                                   text=hit.text, score=score, anchor_indices=anchors)
            self.stats["pairs"] += kept
        candidates = sorted(by_chunk.values(), key=lambda c: c.context_id)
        self.stats["unique_candidates"] += len(candidates)
        return CandidatesRecord(anchors=rec, candidates=candidates, config_version=self.config_version)


def _queried(rec: AnchorsRecord) -> list[Anchor]:
    """The leaders whose query is run: those with at least one anchor of their group not a template."""
    live = {a.index if a.leader is None else a.leader for a in rec.anchors if not a.template}
    return [a for a in rec.anchors if a.leader is None and a.index in live]
