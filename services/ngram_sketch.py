"""How many pool documents hold each word n-gram, in bounded memory: a count-min sketch.

Chrome below the line level (a navigation bar whose title changes per chapter, "modules | next |")
recurs as n-grams, not as whole lines. The pool's distinct n-grams grow with it (one per word), so
they are counted in a count-min sketch of fixed size: `depth` rows of `width` saturating 8-bit
counters, each n-gram counted once per document in every row at its hash's column; its count is the
smallest of its counters. A count is never below the truth; above it only where every row collides
(with the default 4 x 4M counters and a pool of 3,000 pages of ~1,500 words, the chance that an
n-gram of one page reads as 10 is below 1e-20).

Replay-safe: the documents counted are kept (their ids), and a document counted before adds
nothing. Shared by processes: the sketch lives in one SQLite file (SQLite serialises writers),
written in one transaction per batch, which readers load again only when it changed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .shared_sqlite import connect, write_transaction

SATURATE = 255

SCHEMA = """
CREATE TABLE IF NOT EXISTS shape (depth INTEGER, width INTEGER);
CREATE TABLE IF NOT EXISTS rows (row INTEGER PRIMARY KEY, counters BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS counted (doc_id TEXT PRIMARY KEY) WITHOUT ROWID;
"""


def columns(hashes: np.ndarray, depth: int, width: int) -> np.ndarray:
    """[depth, len(hashes)] column of each hash in each row (independent mixes of the 64-bit hash)."""
    h = hashes.astype(np.uint64)
    out = np.empty((depth, h.size), np.int64)
    for r in range(depth):
        seed = np.uint64(int.from_bytes(hashlib.blake2b(bytes([r]), digest_size=8).digest(), "little") | 1)
        with np.errstate(over="ignore"):
            mixed = (h ^ (h >> np.uint64(29))) * seed
            mixed ^= mixed >> np.uint64(32)
        out[r] = (mixed % np.uint64(width)).astype(np.int64)
    return out


class CountMinSketch:
    """The sketch in memory: add each document's distinct hashes once, read counts."""

    def __init__(self, depth: int = 4, width: int = 1 << 22) -> None:
        self.depth, self.width = depth, width
        self.counters = np.zeros((depth, width), np.uint8)

    def add(self, hashes: Iterable[int]) -> None:
        distinct = np.fromiter(set(hashes), np.int64)
        if distinct.size == 0:
            return
        cols = columns(distinct, self.depth, self.width)
        for r in range(self.depth):
            row = self.counters[r]
            # a column two hashes of one document share is still one more document
            at = np.unique(cols[r])
            row[at] = np.minimum(row[at].astype(np.int16) + 1, SATURATE).astype(np.uint8)

    def counts(self, hashes: Iterable[int]) -> dict[int, int]:
        keys = list(set(hashes))
        if not keys:
            return {}
        cols = columns(np.asarray(keys, np.int64), self.depth, self.width)
        found = np.min(np.stack([self.counters[r, cols[r]] for r in range(self.depth)]), axis=0)
        return {k: int(n) for k, n in zip(keys, found, strict=True) if n}


class SqliteNgramStore:
    """The sketch in one SQLite file beside the pool, shared by the index and retrieval workers."""

    def __init__(self, path: Path | str, depth: int = 4, width: int = 1 << 22) -> None:
        self.path = Path(path)
        self.db = connect(path)
        self.db.executescript(SCHEMA)
        with write_transaction(self.db):
            shape = self.db.execute("SELECT depth, width FROM shape").fetchone()
            if shape is None:
                self.db.execute("INSERT INTO shape VALUES (?, ?)", (depth, width))
                shape = (depth, width)
        self.sketch = CountMinSketch(*shape)
        self._version = -1

    def add_many(self, docs: dict[str, Iterable[int]]) -> None:
        ids = list(docs)
        if not ids:
            return
        with write_transaction(self.db):
            self._load(force=True)
            marks = ",".join("?" * len(ids))
            seen = {r[0] for r in self.db.execute(f"SELECT doc_id FROM counted WHERE doc_id IN ({marks})", ids)}
            fresh = [d for d in ids if d not in seen]
            for doc_id in fresh:
                self.sketch.add(docs[doc_id])
            if fresh:
                self.db.executemany("INSERT OR REPLACE INTO rows VALUES (?, ?)",
                                    [(r, self.sketch.counters[r].tobytes()) for r in range(self.sketch.depth)])
                self.db.executemany("INSERT INTO counted VALUES (?)", [(d,) for d in fresh])

    def counts(self, hashes: Iterable[int]) -> dict[int, int]:
        self._load()
        return self.sketch.counts(hashes)

    def documents(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM counted").fetchone()[0]

    def _load(self, force: bool = False) -> None:
        """Read the rows again if another connection (or process) wrote since they were read."""
        version = self.db.execute("PRAGMA data_version").fetchone()[0]
        if version == self._version and not force:
            return
        for row, blob in self.db.execute("SELECT row, counters FROM rows"):
            self.sketch.counters[row] = np.frombuffer(blob, np.uint8)
        self._version = version
