"""The retrieval pool in Milvus: chunk vectors with doc_id and text; cosine top-K search.

The same code serves milvus-lite (a local file or its server) and a real Milvus by URI.
"""

from __future__ import annotations

import numpy as np

from entropylong_streamer.stages.index import Chunk
from entropylong_streamer.stages.retrieve import Embedder, Hit

MAX_TEXT = 16384


class MilvusPool:
    def __init__(self, uri: str, collection: str, embedder: Embedder, dim: int, token: str | None = None,
                 search_params: dict | None = None) -> None:
        from pymilvus import DataType, MilvusClient

        self.client = MilvusClient(uri=uri, token=token or "",
                                   grpc_options={"grpc.keepalive_time_ms": 600000})
        self.collection = collection
        self.embedder = embedder
        self.search_params = search_params or {}
        if not self.client.has_collection(collection):
            schema = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("chunk_id", DataType.VARCHAR, is_primary=True, max_length=512)
            schema.add_field("doc_id", DataType.VARCHAR, max_length=256)
            schema.add_field("text", DataType.VARCHAR, max_length=MAX_TEXT * 4)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
            index = self.client.prepare_index_params()
            index.add_index(field_name="vector", index_type="AUTOINDEX", metric_type="COSINE")
            self.client.create_collection(collection, schema=schema, index_params=index)
        self.client.load_collection(collection)

    def upsert(self, chunks: list[Chunk]) -> None:
        """Idempotent by chunk_id: a replayed document never duplicates a chunk."""
        vectors = self.embedder.embed([c.text for c in chunks])
        rows = [{"chunk_id": c.chunk_id, "doc_id": c.doc_id, "text": c.text[:MAX_TEXT], "vector": v.tolist()}
                for c, v in zip(chunks, vectors, strict=True)]
        self.client.upsert(self.collection, rows)

    def search(self, vectors: np.ndarray, k: int, exclude_doc_id: str) -> list[list[Hit]]:
        escaped = exclude_doc_id.replace("\\", "\\\\").replace('"', '\\"')
        res = self.client.search(
            self.collection, data=[v.tolist() for v in vectors], limit=k,
            filter=f'doc_id != "{escaped}"', output_fields=["chunk_id", "doc_id", "text"],
            search_params={"metric_type": "COSINE", "params": self.search_params},
        )
        return [[Hit(e["chunk_id"], e["doc_id"], e["text"], float(h["distance"]))
                 for h in hits for e in (h["entity"],)] for hits in res]

    def size(self) -> int:
        stats = self.client.get_collection_stats(self.collection)
        return int(stats.get("row_count", 0))

    def flush(self) -> None:
        self.client.flush(self.collection)
