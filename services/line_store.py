"""How many pool documents hold each line: the counts behind template detection (method/templates.py).

One row per (line, document) up to `cap` documents a line: a line is a template once min_docs
documents hold it, so nothing beyond the cap is ever needed, and one query over a document's lines
returns at most cap rows a line however common its lines are. Rows are keyed by (line, document):
a replayed document adds nothing. Two indexers adding the same line at once may store a few rows
past the cap; the count only says "at least".
"""

from __future__ import annotations

import collections
import json
from collections.abc import Iterable
from typing import Protocol

from prometheus_client import Counter

from .milvus_collections import create_unless_exists, reloading
from .shared_sqlite import connect, write_transaction

CAP = 64  # documents counted per line: the largest retrieval.template_min_docs

LINES_ADDED = Counter("elong_pool_line_rows_total", "(line, document) rows added to the pool's line counts")


class LineStore(Protocol):
    def add_many(self, docs: dict[str, Iterable[int]]) -> None: ...

    def counts(self, hashes: Iterable[int]) -> dict[int, int]: ...


def rows_to_add(docs: dict[str, set[int]], counts: dict[int, int], present: set[tuple[int, str]],
                cap: int) -> list[tuple[int, str]]:
    """The (line, document) rows a batch adds, documents in order: each line up to the cap, counting
    the rows stored before the batch and the batch's earlier documents; a row already stored (a
    replayed document) adds nothing."""
    seen = dict(counts)
    out = []
    for doc_id, hashes in docs.items():
        for h in sorted(hashes):
            if (h, doc_id) not in present and seen.get(h, 0) < cap:
                seen[h] = seen.get(h, 0) + 1
                out.append((h, doc_id))
    return out


class MilvusLineStore:
    """A collection beside the pool's chunks ({collection}_lines). Milvus wants a vector field in
    every collection: a constant 2-d one, never searched."""

    def __init__(self, client, collection: str, cap: int = CAP) -> None:
        from pymilvus import DataType

        self.client = client
        self.collection = collection
        self.cap = cap
        if not client.has_collection(collection):
            schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("key", DataType.VARCHAR, is_primary=True, max_length=300)
            schema.add_field("line_hash", DataType.INT64)
            schema.add_field("unused", DataType.FLOAT_VECTOR, dim=2)
            index = client.prepare_index_params()
            index.add_index(field_name="unused", index_type="FLAT", metric_type="L2")
            create_unless_exists(client, collection, schema, index)
        client.load_collection(collection)

    def add(self, doc_id: str, hashes: Iterable[int]) -> None:
        self.add_many({doc_id: hashes})

    def add_many(self, docs: dict[str, Iterable[int]]) -> None:
        """A batch of documents in one count query, one query for rows already there and one upsert
        (per document, two round trips each were most of the indexer's time)."""
        lines = {d: set(hs) for d, hs in docs.items()}
        keys = {_key(h, d): (h, d) for d, hs in lines.items() for h in hs}
        present = {keys[r["key"]] for r in self._query_in("key", sorted(keys), ["key"])}
        counts = self.counts(h for hs in lines.values() for h in hs)
        rows = [{"key": _key(h, d), "line_hash": h, "unused": [0.0, 0.0]}
                for h, d in rows_to_add(lines, counts, present, self.cap)]
        if rows:
            self.client.upsert(self.collection, rows)
            LINES_ADDED.inc(len(rows))

    def counts(self, hashes: Iterable[int]) -> dict[int, int]:
        out: dict[int, int] = {}
        # at most cap rows a line, and Milvus returns at most 16,384 rows a query
        for row in self._query_in("line_hash", sorted(set(hashes)), ["line_hash"], max(1, 8192 // self.cap)):
            out[row["line_hash"]] = out.get(row["line_hash"], 0) + 1
        return out

    def _query_in(self, fld: str, values: list, output: list[str], step: int = 4096) -> list[dict]:
        rows: list[dict] = []
        for i in range(0, len(values), step):
            part = json.dumps(values[i : i + step])  # a JSON list is a Milvus list literal, strings escaped
            rows += reloading(self.client, self.collection, lambda part=part: self.client.query(
                self.collection, filter=f"{fld} in {part}", output_fields=output, limit=16384))
        return rows


def _key(line_hash: int, doc_id: str) -> str:
    return f"{line_hash}:{doc_id}"[:300]


class SqliteLineStore:
    """The same rows in one SQLite file beside a local pool (a milvus-lite file): milvus-lite filters
    a collection in Python, so its line counts were most of the indexer's time on a growing pool;
    here one indexed lookup per batch. Shared by the index and retrieval workers like the n-gram
    sketch; the cap is exact, since a batch adds its rows under SQLite's one writer."""

    VARIABLES = 900  # SQLite's host-parameter limit is 999 on older builds

    def __init__(self, path, cap: int = CAP) -> None:
        self.cap = cap
        self.db = connect(path)
        self.db.execute("CREATE TABLE IF NOT EXISTS lines (line_hash INTEGER, doc_id TEXT, "
                        "PRIMARY KEY (line_hash, doc_id)) WITHOUT ROWID")

    def add_many(self, docs: dict[str, Iterable[int]]) -> None:
        lines = {d: {_signed(h) for h in hs} for d, hs in docs.items()}
        wanted = sorted({h for hs in lines.values() for h in hs})
        with write_transaction(self.db):
            # a line's rows stop at the cap, so its stored rows are both its count and what is there
            stored = self._select("SELECT line_hash, doc_id FROM lines WHERE line_hash IN ({})", wanted)
            rows = rows_to_add(lines, collections.Counter(h for h, _ in stored), set(stored), self.cap)
            self.db.executemany("INSERT OR IGNORE INTO lines VALUES (?, ?)", rows)
        LINES_ADDED.inc(len(rows))

    def counts(self, hashes: Iterable[int]) -> dict[int, int]:
        wanted = sorted({_signed(h): h for h in hashes}.items())
        found = dict(self._select("SELECT line_hash, COUNT(*) FROM lines WHERE line_hash IN ({}) GROUP BY line_hash",
                                  [s for s, _ in wanted]))
        return {h: found[s] for s, h in wanted if s in found}

    def _select(self, sql: str, values: list) -> list[tuple]:
        out: list[tuple] = []
        for i in range(0, len(values), self.VARIABLES):
            part = values[i : i + self.VARIABLES]
            out += self.db.execute(sql.format(",".join("?" * len(part))), part).fetchall()
        return out


def _signed(h: int) -> int:
    """SQLite integers are signed 64-bit; line hashes may use the whole unsigned range."""
    return h - (1 << 64) if h >= 1 << 63 else h
