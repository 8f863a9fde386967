"""Index stage: docs -> chunks for the retrieval pool (token windows with overlap), and the
documents whole, which the contexts are cut from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Protocol

from entropylong_streamer.method.near_dup import NearDuplicateRule
from entropylong_streamer.method.templates import NGRAM_WORDS, line_prefixes, split_lines, split_ngrams
from entropylong_streamer.services.doc_store import DocStore
from entropylong_streamer.services.line_store import LineStore
from entropylong_streamer.services.lm import Tokenized, Tokenizer
from entropylong_streamer.topics import Doc

from .base import StageResult, Stats, run_batch


@dataclass(frozen=True)
class Chunk:
    chunk_id: str
    doc_id: str
    text: str
    doc_signature: tuple[int, ...] = ()  # the whole document's MinHash: retrieval's leakage guard


class ChunkSink(Protocol):
    def upsert(self, chunks: list[Chunk]) -> None: ...


def chunk_document(doc_id: str, text: str, tok: Tokenized, size: int, overlap: int,
                   doc_signature: tuple[int, ...] = ()) -> list[Chunk]:
    """Windows of `size` tokens stepping by size - overlap; text is sliced from the original."""
    out: list[Chunk] = []
    step = size - overlap
    n = len(tok.ids)
    for i, start in enumerate(range(0, max(n - overlap, 1), step)):
        end = min(start + size, n)
        if end <= start:
            break
        out.append(Chunk(f"{doc_id}:{i}", doc_id, text[tok.offsets[start][0] : tok.offsets[end - 1][1]],
                         doc_signature))
    return out


@dataclass(eq=False)
class IndexStage:
    """Chunks documents and upserts them into the pool; chunk ids make a replay idempotent."""

    name: ClassVar[str] = "index"
    tokenizer: Tokenizer
    sink: ChunkSink
    size: int
    overlap: int
    rule: NearDuplicateRule = NearDuplicateRule()
    lines: LineStore | None = None  # each pool document's lines, counted for template detection
    documents: DocStore | None = None  # each pool document whole: what a retrieved chunk's context is cut from
    ngrams: LineStore | None = None  # each pool document's word n-grams (services/ngram_sketch.py)
    ngram_words: int = NGRAM_WORDS
    prefix_words: int = 0  # counted with the lines: each line's first 1..prefix_words words (labels); 0: none
    stats: Stats = field(default_factory=Stats, init=False)

    def _line_hashes(self, text: str) -> set[int]:
        hashes = split_lines(text).distinct()
        return hashes | line_prefixes(text, self.prefix_words).distinct() if self.prefix_words else hashes

    def process(self, docs: list[Doc]) -> StageResult[Doc, Chunk]:
        rescored = sum(bool(d.rescore) for d in docs)
        if rescored:  # sent again to be scored by a newer model: its chunks are in the pool already
            self.stats["rescored_skipped"] += rescored
            docs = [d for d in docs if not d.rescore]
        tokens = dict(zip(map(id, docs), self.tokenizer.tokenize_many([d.text for d in docs]), strict=True))

        def one(doc: Doc) -> list[Chunk]:
            sig = tuple(int(x) for x in self.rule.signature(doc.text))
            return chunk_document(doc.doc_id, doc.text, tokens[id(doc)], self.size, self.overlap, sig)

        per_doc = run_batch(self.name, docs, one, self.stats)
        chunks = [c for cs in per_doc.outputs for c in cs]
        indexed = {c.doc_id for c in chunks}
        if self.documents is not None and indexed:  # before the chunks: a chunk found has its document
            self.documents.put({d.doc_id: d.text for d in docs if d.doc_id in indexed})
        if chunks:
            self.sink.upsert(chunks)
        if self.lines is not None:
            self.lines.add_many({d.doc_id: self._line_hashes(d.text) for d in docs if d.doc_id in indexed})
        if self.ngrams is not None:
            self.ngrams.add_many({d.doc_id: split_ngrams(d.text, self.ngram_words).distinct()
                                  for d in docs if d.doc_id in indexed})
        self.stats["chunks"] += len(chunks)
        return StageResult(chunks, per_doc.rejects)
