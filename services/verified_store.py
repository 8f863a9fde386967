"""What is known of the documents verification finished, by document: the packer's durable state for
samples of more than one hop (pack.depth > 1, method/hops.py).

One SQLite table beside a shard set (one set per pack version, so one verify version): the packer adds
every record it packs, and those its peers published on the verified topic
(agents/verified_follower.py), before it builds a batch's samples; what is known then is used,
nothing is waited for.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from entropylong_streamer.method.hops import Verified
from entropylong_streamer.method.samples import Piece
from entropylong_streamer.topics import VERIFIED, DependenciesRecord, VerifiedContext, VerifiedRecord

from .shared_sqlite import connect, write_transaction

FILE = "verified.sqlite"


def _ids(tokens) -> bytes:
    return np.asarray(tokens, "<u4").tobytes()


def _tokens(blob: bytes) -> tuple[int, ...]:
    return tuple(np.frombuffer(blob, "<u4").tolist())


def verified_record(rec: DependenciesRecord, contexts: list[Piece]) -> VerifiedRecord:
    """The record's document and its verified contexts (as the packer builds them: pack.pieces_of)."""
    return VerifiedRecord(doc_id=rec.doc_id, config_version=rec.config_version, token_ids=_ids(rec.token_ids),
                          contexts=[VerifiedContext(context_id=p.piece_id, context_doc_id=p.source_doc,
                                                    token_ids=_ids(p.token_ids), score=p.score,
                                                    anchors=list(p.anchors)) for p in contexts])


def as_verified(rec: VerifiedRecord) -> Verified:
    return Verified(rec.doc_id, _tokens(rec.token_ids), tuple(
        Piece(c.context_id, _tokens(c.token_ids), c.score, tuple(c.anchors),
              "" if c.context_doc_id == c.context_id else c.context_doc_id) for c in rec.contexts))


class VerifiedStore:
    def __init__(self, path: Path | str = ":memory:") -> None:
        self.path = path
        self._db = None

    @property
    def db(self):  # opened at first use: a packer starts on a full disk and waits it out with its first batch
        if self._db is None:
            db = connect(self.path)
            db.execute("CREATE TABLE IF NOT EXISTS verified (doc_id TEXT PRIMARY KEY, value BLOB NOT NULL)")
            self._db = db
        return self._db

    def add(self, records: Iterable[VerifiedRecord]) -> int:
        rows = [(r.doc_id, VERIFIED.encode(r)) for r in records]
        with write_transaction(self.db):
            self.db.executemany("INSERT OR REPLACE INTO verified VALUES (?, ?)", rows)
        return len(rows)

    def get(self, doc_id: str) -> Verified | None:
        row = self.db.execute("SELECT value FROM verified WHERE doc_id = ?", (doc_id,)).fetchone()
        return None if row is None else as_verified(VERIFIED.decode(row[0]))

    def __len__(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM verified").fetchone()[0]

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
