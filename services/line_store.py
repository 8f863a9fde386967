"""How many pool documents hold each line: the counts behind template detection (method/templates.py).

One row per (line, document) up to `cap` documents a line: a line is a template once min_docs
documents hold it, so nothing beyond the cap is ever needed, and one query over a document's lines
returns at most cap rows a line however common its lines are. Rows are keyed by (line, document):
a replayed document adds nothing. Two indexers adding the same line at once may store a few rows
past the cap; the count only says "at least".
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Protocol

from prometheus_client import Counter

from .milvus_collections import create_unless_exists

CAP = 64  # documents counted per line: the largest retrieval.template_min_docs

LINES_ADDED = Counter("elong_pool_line_rows_total", "(line, document) rows added to the pool's line counts")


class LineStore(Protocol):
    def add(self, doc_id: str, hashes: Iterable[int]) -> None: ...

    def counts(self, hashes: Iterable[int]) -> dict[int, int]: ...


class MemoryLineStore:
    def __init__(self, cap: int = CAP) -> None:
        self.cap = cap
        self.docs: dict[int, set[str]] = defaultdict(set)

    def add(self, doc_id: str, hashes: Iterable[int]) -> None:
        for h in set(hashes):
            if len(self.docs[h]) < self.cap:
                self.docs[h].add(doc_id)

    def counts(self, hashes: Iterable[int]) -> dict[int, int]:
        return {h: len(self.docs[h]) for h in set(hashes) if h in self.docs}


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
        distinct = set(hashes)
        full = {h for h, n in self.counts(distinct).items() if n >= self.cap}
        rows = [{"key": f"{h}:{doc_id}"[:300], "line_hash": h, "unused": [0.0, 0.0]} for h in distinct - full]
        if rows:
            self.client.upsert(self.collection, rows)
            LINES_ADDED.inc(len(rows))

    def counts(self, hashes: Iterable[int]) -> dict[int, int]:
        distinct = sorted(set(hashes))
        out: dict[int, int] = {}
        step = max(1, 8192 // self.cap)  # Milvus returns at most 16,384 rows a query
        for i in range(0, len(distinct), step):
            part = distinct[i : i + step]
            rows = self.client.query(self.collection, filter=f"line_hash in {part}", output_fields=["line_hash"],
                                     limit=16384)
            for row in rows:
                out[row["line_hash"]] = out.get(row["line_hash"], 0) + 1
        return out
