"""In-memory stand-ins for the pool's stores, the reference the SQLite and Milvus stores are checked against."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from entropylong_streamer.services.line_store import CAP, rows_to_add
from entropylong_streamer.services.ngram_sketch import CountMinSketch


class MemoryLineStore:
    def __init__(self, cap: int = CAP) -> None:
        self.cap = cap
        self.docs: dict[int, set[str]] = defaultdict(set)

    def add(self, doc_id: str, hashes: Iterable[int]) -> None:
        self.add_many({doc_id: hashes})

    def add_many(self, docs: dict[str, Iterable[int]]) -> None:
        lines = {d: set(hs) for d, hs in docs.items()}
        present = {(h, d) for d, hs in lines.items() for h in hs if d in self.docs.get(h, ())}
        for h, doc_id in rows_to_add(lines, self.counts(h for hs in lines.values() for h in hs), present, self.cap):
            self.docs[h].add(doc_id)

    def counts(self, hashes: Iterable[int]) -> dict[int, int]:
        return {h: len(self.docs[h]) for h in set(hashes) if h in self.docs}


class MemoryNgramStore:
    """The sketch and the counted documents in memory."""

    def __init__(self, depth: int = 4, width: int = 1 << 22) -> None:
        self.sketch = CountMinSketch(depth, width)
        self.counted: set[str] = set()

    def add_many(self, docs: dict[str, Iterable[int]]) -> None:
        for doc_id, hashes in docs.items():
            if doc_id not in self.counted:
                self.sketch.add(hashes)
                self.counted.add(doc_id)

    def counts(self, hashes: Iterable[int]) -> dict[int, int]:
        return self.sketch.counts(hashes)


class MemoryDocStore:
    def __init__(self) -> None:
        self.docs: dict[str, str] = {}

    def put(self, docs: dict[str, str]) -> None:
        self.docs.update(docs)

    def get(self, doc_ids: Iterable[str]) -> dict[str, str]:
        return {d: self.docs[d] for d in set(doc_ids) if d in self.docs}
