"""The door's durable memory in one SQLite file: every text seen (its doc_id, a content hash), the MinHash
signature and LSH band keys of every document admitted, and which input files are done.

Decisions of a batch are written in one transaction that the caller commits only after the
broker acknowledged the batch: a crash in between forgets the decisions, so the documents are
read and sent again (downstream stages drop a doc_id they already have), never lost. SQLite
serialises writers, so several ingest processes on one machine can share the file.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np

from entropylong_streamer.method.near_dup import jaccard_estimate

SCHEMA = """
CREATE TABLE IF NOT EXISTS seen (doc_id TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS bands (band INTEGER, key INTEGER, doc_id TEXT, PRIMARY KEY (band, key, doc_id))
    WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS signatures (doc_id TEXT PRIMARY KEY, sig BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, items INTEGER,
    done INTEGER) WITHOUT ROWID;
"""


class DoorIndex:
    def __init__(self, path: Path | str) -> None:
        """path: a file (created with its directory) or ":memory:" (batch mode, tests)."""
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), timeout=60, isolation_level="DEFERRED")
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")  # a committed decision survives a power cut
        self.db.executescript(SCHEMA)
        self.db.commit()

    def seen(self, doc_id: str) -> bool:
        """doc_id is a hash of the text: the same text was seen before, admitted or dropped."""
        return self.db.execute("SELECT 1 FROM seen WHERE doc_id = ?", (doc_id,)).fetchone() is not None

    def add_seen(self, doc_ids: list[str]) -> None:
        self.db.executemany("INSERT OR IGNORE INTO seen VALUES (?)", [(d,) for d in doc_ids])

    def nearest(self, sig: np.ndarray, keys: list[int], threshold: float) -> tuple[str, float] | None:
        """The admitted document most similar to sig among those sharing a band, if >= threshold."""
        found: set[str] = set()
        for band, key in enumerate(keys):
            found.update(r[0] for r in self.db.execute("SELECT doc_id FROM bands WHERE band = ? AND key = ?",
                                                       (band, key)))
        best: tuple[str, float] | None = None
        for doc_id in sorted(found):
            (raw,) = self.db.execute("SELECT sig FROM signatures WHERE doc_id = ?", (doc_id,)).fetchone()
            j = jaccard_estimate(np.frombuffer(raw, dtype=np.uint32), sig)
            if j >= threshold and (best is None or j > best[1]):
                best = (doc_id, j)
        return best

    def add_signature(self, doc_id: str, sig: np.ndarray, keys: list[int]) -> None:
        self.db.execute("INSERT OR REPLACE INTO signatures VALUES (?, ?)", (doc_id, sig.astype(np.uint32).tobytes()))
        self.db.executemany("INSERT OR IGNORE INTO bands VALUES (?, ?, ?)",
                            [(band, key, doc_id) for band, key in enumerate(keys)])

    def file_progress(self, path: Path) -> tuple[int, bool]:
        """(items of this file already decided, whether it was read to its end as it is now: same
        size and modification time). A file that changed since resumes after its decided items
        (crawl output is appended to, not rewritten)."""
        st = path.stat()
        row = self.db.execute("SELECT size, mtime_ns, items, done FROM files WHERE path = ?",
                              (str(path.resolve()),)).fetchone()
        if row is None:
            return 0, False
        return row[2], bool(row[3]) and (row[0], row[1]) == (st.st_size, st.st_mtime_ns)

    def set_file_progress(self, path: Path, size: int, mtime_ns: int, items: int, done: bool) -> None:
        """size and mtime_ns as they were when the reading started."""
        self.db.execute("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?)",
                        (str(path.resolve()), size, mtime_ns, items, int(done)))

    def commit(self) -> None:
        self.db.commit()

    def rollback(self) -> None:
        self.db.rollback()

    def close(self) -> None:
        self.db.close()
