"""What is known of the documents verification finished, by document: the packer's durable state for
samples of more than one hop (pack.depth > 1, method/hops.py).

One SQLite table beside a shard set (one set per pack version, so one table per verify version): the
packer adds every record it packs, and the records its peers packed (agents/packer_loop.py), before
it builds a batch's samples; what is known then is used, nothing is waited for.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import msgpack
import numpy as np

from entropylong_streamer.method.hops import Verified
from entropylong_streamer.method.samples import Piece

from .shared_sqlite import connect, write_transaction

FILE = "verified.sqlite"


def _ids(tokens: tuple[int, ...]) -> bytes:
    return np.asarray(tokens, "<u4").tobytes()


def _tokens(blob: bytes) -> tuple[int, ...]:
    return tuple(np.frombuffer(blob, "<u4").tolist())


def encode(v: Verified) -> bytes:
    return msgpack.packb([_ids(v.token_ids), [[p.piece_id, p.doc_id, _ids(p.token_ids), p.score, list(p.anchors)]
                                              for p in v.contexts]])


def decode(doc_id: str, blob: bytes) -> Verified:
    tokens, contexts = msgpack.unpackb(blob)
    return Verified(doc_id, _tokens(tokens), tuple(Piece(pid, _tokens(ids), score, tuple(anchors), doc)
                                                   for pid, doc, ids, score, anchors in contexts))


class VerifiedStore:
    def __init__(self, path: Path | str = ":memory:") -> None:
        self.db = connect(path)
        self.db.execute("CREATE TABLE IF NOT EXISTS verified (doc_id TEXT PRIMARY KEY, value BLOB NOT NULL)")

    def add(self, items: Iterable[Verified]) -> int:
        rows = [(v.doc_id, encode(v)) for v in items]
        with write_transaction(self.db):
            self.db.executemany("INSERT OR REPLACE INTO verified VALUES (?, ?)", rows)
        return len(rows)

    def get(self, doc_id: str) -> Verified | None:
        row = self.db.execute("SELECT value FROM verified WHERE doc_id = ?", (doc_id,)).fetchone()
        return None if row is None else decode(doc_id, row[0])

    def __len__(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM verified").fetchone()[0]

    def close(self) -> None:
        self.db.close()

