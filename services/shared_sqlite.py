"""One SQLite file that several worker processes share (the pool's count stores beside it)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def connect(path: Path | str) -> sqlite3.Connection:
    """Autocommit connection; transactions are explicit (write_transaction). A rollback journal, not
    WAL: WAL's shared memory needs every process on one host, and workers may share the file over a
    network volume (POSIX locks suffice)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(str(path), timeout=120, isolation_level=None)
    db.execute("PRAGMA journal_mode=DELETE")
    return db


@contextmanager
def write_transaction(db: sqlite3.Connection) -> Iterator[None]:
    """Read, change and write back under SQLite's one writer: no lost update between processes."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
