"""The pool's documents, whole: what a retrieved chunk's context is cut from (method/context_window.py).

The pool searches chunks; verification measures, and samples train, the document a chunk belongs
to. Texts are stored in parts (Milvus's VARCHAR holds 65,535 bytes), keyed by (document, part): a
replayed document rewrites the same rows, and each row says how many parts its document has, so a
shorter text stored later under the same id never reads a stale tail.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Protocol

from prometheus_client import Counter

from .milvus_collections import create_unless_exists, reloading

PART_CHARS = 16383  # 4-byte UTF-8 characters included, a part fits the field
DOCS_STORED = Counter("elong_pool_documents_stored_total", "Pool documents written whole to the document store")


class DocStore(Protocol):
    def put(self, docs: dict[str, str]) -> None: ...

    def get(self, doc_ids: Iterable[str]) -> dict[str, str]: ...


class MilvusDocStore:
    """A collection beside the pool's chunks ({collection}_docs), with the constant 2-d vector Milvus
    wants in every collection (never searched)."""

    def __init__(self, client, collection: str) -> None:
        from pymilvus import DataType

        self.client = client
        self.collection = collection
        if not client.has_collection(collection):
            schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("key", DataType.VARCHAR, is_primary=True, max_length=300)
            schema.add_field("doc_id", DataType.VARCHAR, max_length=256)
            schema.add_field("doc_key", DataType.VARCHAR, max_length=32)  # what queries filter on
            schema.add_field("part", DataType.INT64)
            schema.add_field("parts", DataType.INT64)
            schema.add_field("text", DataType.VARCHAR, max_length=65535)
            schema.add_field("unused", DataType.FLOAT_VECTOR, dim=2)
            index = client.prepare_index_params()
            index.add_index(field_name="unused", index_type="FLAT", metric_type="L2")
            create_unless_exists(client, collection, schema, index)
        client.load_collection(collection)

    def put(self, docs: dict[str, str]) -> None:
        rows = []
        for doc_id, text in docs.items():
            parts = [text[i : i + PART_CHARS] for i in range(0, len(text), PART_CHARS)] or [""]
            key = _key(doc_id)
            rows += [{"key": f"{key}:{i}", "doc_id": doc_id, "doc_key": key, "part": i, "parts": len(parts),
                      "text": part, "unused": [0.0, 0.0]} for i, part in enumerate(parts)]
        for i in range(0, len(rows), 256):
            self.client.upsert(self.collection, rows[i : i + 256])
        DOCS_STORED.inc(len(docs))

    def get(self, doc_ids: Iterable[str]) -> dict[str, str]:
        wanted = sorted(set(doc_ids))
        asked = set(wanted)
        out: dict[str, str] = {}
        for i in range(0, len(wanted), 16):  # at most 16 documents' text in one reply
            # filtered on a hex digest of the id: any id, control characters and quotes included
            expr = f"doc_key in {json.dumps([_key(d) for d in wanted[i : i + 16]])}"
            rows = reloading(self.client, self.collection, lambda expr=expr: self.client.query(
                self.collection, filter=expr, output_fields=["doc_id", "part", "parts", "text"], limit=16384))
            parts: dict[str, dict[int, str]] = {}
            count: dict[str, int] = {}
            for row in rows:
                parts.setdefault(row["doc_id"], {})[row["part"]] = row["text"]
                if row["part"] == 0:
                    count[row["doc_id"]] = row["parts"]
            for doc_id, got in parts.items():
                if doc_id not in asked:  # a digest collision: another document
                    continue
                n = count.get(doc_id)
                if n is not None and all(j in got for j in range(n)):  # a document half written is not there yet
                    out[doc_id] = "".join(got[j] for j in range(n))
        return out


def _key(doc_id: str) -> str:
    return hashlib.sha256(doc_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]
