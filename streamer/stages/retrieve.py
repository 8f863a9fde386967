"""Retrieval stage: anchors -> candidates. The pool is searched by chunk; with contexts = "document"
each anchor gets its top-K distinct pool documents, each cut around its retrieved chunks to the
tokens the verifier holds (method/context_window.py); never the document itself or a near copy."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Protocol

import numpy as np

from entropylong_streamer.method.context_window import PairLayout, char_window, context_window, token_spans
from entropylong_streamer.method.near_dup import NearDuplicateRule
from entropylong_streamer.method.templates import (
    NGRAM_WORDS,
    line_prefixes,
    split_lines,
    split_ngrams,
    template_spans,
)
from entropylong_streamer.services.doc_store import DocStore
from entropylong_streamer.services.line_store import LineStore
from entropylong_streamer.services.lm import Tokenized, Tokenizer
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
    needs_vectors: bool  # False: a lexical pool searches the query texts alone, nothing is embedded

    def search(self, queries: list[str], vectors: np.ndarray | None, k: int,
               exclude_doc_id: str) -> list[list[Hit]]: ...


@dataclass(frozen=True)
class DocumentContexts:
    """Contexts are whole pool documents (retrieval.context = "document"): where their texts are,
    how they are tokenised and how many tokens of one the verifier holds beside the document."""

    store: DocStore
    tokenizer: Tokenizer  # the LM's: the window is cut in the tokens verification measures
    layout: PairLayout  # the verifier's forward (model.max_tokens, the separator)
    max_context_tokens: int | None = None
    max_contexts: int = 64  # context documents per document, the most retrieved first

    def room(self, last_anchor: int) -> int:
        """Tokens [sep C sep D[:last_anchor + 1]] leaves for C, within the cap."""
        room = self.layout.room(last_anchor)
        return room if self.max_context_tokens is None else min(room, self.max_context_tokens)

    def cut(self, text: str, chunks: list[str], last_anchor: int,
            tok: Tokenized | None = None) -> tuple[str, list[tuple[int, int]]]:
        """The window of the document around its retrieved chunks, and where they are in it (tok:
        the text's tokens, where the caller has them)."""
        tok = tok or self.tokenizer.tokenize(text)
        found = [(at, at + len(c)) for c in chunks if (at := text.find(c)) >= 0]
        start, end = char_window(tok.offsets, context_window(len(tok.ids), token_spans(tok.offsets, found),
                                                             self.room(last_anchor)))
        inside = [(max(a, start) - start, min(b, end) - start) for a, b in found if a < end and b > start]
        return text[start:end], sorted(set(inside))


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
    pool documents hold are templates (method/templates.py), and with an n-gram store so are anchors
    inside a word n-gram that many hold: they query nothing and no candidate is retrieved for them;
    verify measures no dependency of theirs into a sample."""

    name: ClassVar[str] = "retrieval"
    embedder: Embedder | None  # None where the pool searches by words alone (retrieval.mode lexical)
    pool: Pool
    top_k: int
    rule: NearDuplicateRule
    config_version: str
    overfetch: int = 3
    max_anchors: int | None = None  # more anchors than the entropy stage keeps: bad input, refused
    lines: LineStore | None = None
    template_min_docs: int = 10
    ngrams: LineStore | None = None  # how many pool documents hold each word n-gram (services/ngram_sketch.py)
    ngram_words: int = NGRAM_WORDS
    prefix_words: int = 0  # an anchor among a line's first prefix_words words whose prefix is a template (labels)
    documents: DocumentContexts | None = None  # None: the retrieved chunks are the contexts
    rounds: int = 1  # each anchor's top_k x rounds distinct contexts; verify measures round r + 1 if r resolved nothing
    stats: Stats = field(default_factory=Stats, init=False)

    def process(self, records: list[AnchorsRecord]) -> StageResult[AnchorsRecord, CandidatesRecord]:
        # Every query of the batch in one embedding call (where the pool searches by vector); then one
        # search per document, since each excludes its own document. Records refused by the limits
        # embed nothing.
        flagged: dict[int, AnchorsRecord] = {}
        for rec in records:
            try:
                check_limits(rec, self.max_anchors)
            except StageError:
                continue
            flagged[id(rec)] = self._flag_templates(rec)
        queried = {key: _queried(rec) for key, rec in flagged.items()}
        queries = [a.query for leaders in queried.values() for a in leaders]
        vectors = self.embedder.embed(queries) if queries and self.pool.needs_vectors else None
        self.stats["queries"] += len(queries)
        starts, at = {}, 0
        for key, leaders in queried.items():
            starts[key] = at
            at += len(leaders)

        tokens: dict[str, Tokenized] = {}  # text -> tokens: a context several records retrieved, tokenised once

        def one(rec: AnchorsRecord) -> CandidatesRecord:
            check_limits(rec, self.max_anchors)
            leaders, start = queried[id(rec)], starts[id(rec)]
            return self._one(flagged[id(rec)], leaders, None if vectors is None or not leaders
                             else vectors[start : start + len(leaders)], tokens)

        return run_batch(self.name, records, one, self.stats)

    def _flag_templates(self, rec: AnchorsRecord) -> AnchorsRecord:
        """Anchors on a template line, among the opening words of lines that template_min_docs pool
        documents open a line with (labels), or inside a word n-gram that many hold (chrome below the
        line: a navigation bar whose title changes per chapter)."""
        if (self.lines is None and self.ngrams is None) or not rec.anchors:
            return rec
        on_line: set[int] = set()
        labels: set[int] = set()
        in_gram: set[int] = set()
        if self.lines is not None:
            lines = split_lines(rec.text)
            templates = template_spans(lines, self.lines.counts(lines.distinct()), self.template_min_docs)
            on_line = {a.index for a in rec.anchors if lines.hash_of_token(a.char_start, a.char_end) in templates}
            if self.prefix_words:
                opening = line_prefixes(rec.text, self.prefix_words)
                wanted = {a.index: h for a in rec.anchors if a.index not in on_line
                          and (h := opening.of(a.char_start, a.char_end)) is not None}
                counts = self.lines.counts(set(wanted.values()))
                labels = {t for t, h in wanted.items() if counts.get(h, 0) >= self.template_min_docs}
        if self.ngrams is not None:
            grams = split_ngrams(rec.text, self.ngram_words)
            flagged = on_line | labels
            wanted = {a.index: grams.covering(a.char_start, a.char_end) for a in rec.anchors if a.index not in flagged}
            counts = self.ngrams.counts(h for hs in wanted.values() for h in hs)
            in_gram = {t for t, hs in wanted.items() if any(counts.get(h, 0) >= self.template_min_docs for h in hs)}
        if not on_line and not labels and not in_gram:
            return rec
        self.stats["template_anchors"] += len(on_line) + len(labels) + len(in_gram)
        self.stats["template_anchors_line"] += len(on_line)
        self.stats["template_anchors_prefix"] += len(labels)
        self.stats["template_anchors_ngram"] += len(in_gram)
        template = on_line | labels | in_gram
        marked = [a.model_copy(update={"template": True}) if a.index in template else a for a in rec.anchors]
        return rec.model_copy(update={"anchors": marked})

    def _one(self, rec: AnchorsRecord, queried: list[Anchor], vectors: np.ndarray | None,
             tokens: dict[str, Tokenized]) -> CandidatesRecord:
        if not queried:
            return CandidatesRecord(anchors=rec, candidates=[], config_version=self.config_version)
        found = self.pool.search([a.query for a in queried], vectors, self.top_k * self.rounds * self.overfetch,
                                 exclude_doc_id=rec.doc_id)
        hits_of = {a.index: hits for a, hits in zip(queried, found, strict=True)}
        doc_sig = self.rule.signature(rec.text)
        by_context: dict[str, _Found] = {}
        leaks: dict[str, bool] = {}
        per_document = self.documents is not None
        for anchor in rec.anchors:  # a follower is measured against what its leader's query found
            if anchor.template:
                continue
            kept: set[str] = set()
            round_, in_round = 1, 0
            for i, hit in enumerate(hits_of[anchor.index if anchor.leader is None else anchor.leader]):
                # round r holds an anchor's next top_k contexts among its first r x top_k x overfetch
                # hits: what round r finds is the same however many rounds are asked for
                window_round = i // (self.top_k * self.overfetch) + 1
                if window_round > round_ or in_round == self.top_k:
                    round_, in_round = max(window_round, round_ + 1), 0
                if round_ > self.rounds:
                    break
                if hit.chunk_id not in leaks:  # the same chunk comes back for several anchors
                    leaks[hit.chunk_id] = is_same_document(rec.doc_id, doc_sig, hit, self.rule)
                if leaks[hit.chunk_id]:
                    self.stats["leaks_excluded"] += 1
                    continue
                key = hit.doc_id if per_document else hit.chunk_id
                first = key not in kept
                ctx = by_context.setdefault(key, _Found(hit.doc_id))
                ctx.add(anchor.index, hit, round_, first=first)
                kept.add(key)
                in_round += first
                self.stats["pairs" if round_ == 1 else "reserve_pairs"] += first
        # the cap keeps the contexts retrieved by the most anchors
        contexts = sorted(by_context.items(), key=lambda kv: (kv[1].first_round, -len(kv[1].leading_anchors()),
                                                              -kv[1].score, kv[0]))
        if per_document:  # max_contexts per round: a later round runs only where the earlier resolved nothing
            rounds = [[kv for kv in contexts if kv[1].first_round == r] for r in range(1, self.rounds + 1)]
            self.stats["contexts_capped"] += sum(max(len(r) - self.documents.max_contexts, 0) for r in rounds)
            contexts = [kv for r in rounds for kv in r[: self.documents.max_contexts]]
        candidates = self._documents(contexts, tokens) if per_document else [
            Candidate(context_id=key, context_doc_id=f.doc_id, text=f.chunks[key][0], score=f.score,
                      anchor_indices=f.anchors, anchor_rounds=f.anchor_rounds()) for key, f in contexts]
        candidates.sort(key=lambda c: c.context_id)
        self.stats["unique_candidates"] += len(candidates)
        return CandidatesRecord(anchors=rec, candidates=candidates, config_version=self.config_version)

    def _documents(self, contexts: list[tuple[str, _Found]], tokens: dict[str, Tokenized]) -> list[Candidate]:
        texts = self.documents.store.get(doc_id for doc_id, _ in contexts)
        new = list(dict.fromkeys(t for t in texts.values() if t not in tokens))
        tokens.update(zip(new, self.documents.tokenizer.tokenize_many(new), strict=True))
        out = []
        for doc_id, f in contexts:
            text = texts.get(doc_id)
            if text is None:  # indexed before the pool kept whole documents: its best chunk
                self.stats["contexts_without_document"] += 1
                text = max(f.leading_chunks(), key=lambda chunk: chunk[1])[0]
            # cut around the chunks and for the anchors of its first round: later rounds add pairs
            # to a context, never change it (a replay with more rounds measures round 1 anew nowhere)
            if text not in tokens:  # a chunk standing in for its document
                tokens[text] = self.documents.tokenizer.tokenize(text)
            window, spans = self.documents.cut(text, [c for c, _ in f.leading_chunks()], max(f.leading_anchors()),
                                               tokens[text])
            if len(window) < len(text):
                self.stats["contexts_cut"] += 1
            out.append(Candidate(context_id=doc_id, context_doc_id=doc_id, text=window, score=f.score,
                                 anchor_indices=f.anchors, spans=spans, anchor_rounds=f.anchor_rounds()))
        return out


@dataclass
class _Found:
    """One context of a document: the anchors that retrieved it, in which round, and the chunks they
    matched. What the context is (its window, score and place under the cap) is decided by its
    first round alone."""

    doc_id: str
    anchors: list[int] = field(default_factory=list)
    rounds: list[int] = field(default_factory=list)  # the retrieval round of each anchor's pair
    chunks: dict[str, tuple[str, float, int]] = field(default_factory=dict)  # id -> text, best score, first round
    scores: dict[int, float] = field(default_factory=dict)  # round -> its best hit

    def add(self, anchor: int, hit: Hit, round_: int, first: bool) -> None:
        """first: the anchor's first chunk of this context (later ones are more of its text)."""
        if first:
            self.anchors.append(anchor)
            self.rounds.append(round_)
        _, score, seen = self.chunks.get(hit.chunk_id, (hit.text, hit.score, round_))
        self.chunks[hit.chunk_id] = (hit.text, max(score, hit.score), min(seen, round_))
        self.scores[round_] = max(self.scores.get(round_, hit.score), hit.score)

    @property
    def first_round(self) -> int:
        return min(self.rounds)

    @property
    def score(self) -> float:
        return self.scores[self.first_round]

    def leading_anchors(self) -> list[int]:
        return [t for t, r in zip(self.anchors, self.rounds, strict=True) if r == self.first_round]

    def leading_chunks(self) -> list[tuple[str, float]]:
        return [(text, score) for text, score, r in self.chunks.values() if r <= self.first_round]

    def anchor_rounds(self) -> list[int]:
        return self.rounds if any(r > 1 for r in self.rounds) else []  # [] reads as all round 1


def _queried(rec: AnchorsRecord) -> list[Anchor]:
    """The leaders whose query is run: those with at least one anchor of their group not a template."""
    live = {a.index if a.leader is None else a.leader for a in rec.anchors if not a.template}
    return [a for a in rec.anchors if a.leader is None and a.index in live]
