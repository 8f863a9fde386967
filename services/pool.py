"""The retrieval pool in Milvus: chunks with doc_id and text, searched by retrieval.mode: "dense"
(cosine top-K over the embedder's vectors), "lexical" (Milvus's BM25 function over the chunk text:
no embedder at all) or "hybrid" (both, fused by reciprocal rank, Milvus's hybrid_search).

The same code serves milvus-lite (a local file or its server) and a real Milvus by URI.
"""

from __future__ import annotations

import time

import numpy as np
from prometheus_client import Counter, Gauge, Histogram

from entropylong_streamer.stages.index import Chunk
from entropylong_streamer.stages.retrieve import Embedder, Hit

from .milvus_collections import create_unless_exists, reloading

# Characters of chunk text stored; the field holds 65,535 bytes (Milvus's VARCHAR limit), so even
# 4-byte UTF-8 characters fit.
MAX_TEXT = 16383

SEARCH_SECONDS = Histogram("elong_pool_search_seconds", "Latency of one pool search (a document's anchors)",
                           buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
SEARCH_QUERIES = Counter("elong_pool_search_queries_total", "Query vectors searched in the pool")
POOL_CHUNKS = Gauge("elong_pool_chunks", "Chunks in the pool, as the collection's statistics last said")
UPSERTED = Counter("elong_pool_upserted_chunks_total", "Chunks upserted into the pool (replays included)")


# Build and search parameters when the configuration gives none.
INDEX_DEFAULTS: dict[str, dict] = {"HNSW": {"M": 16, "efConstruction": 200}, "IVF_FLAT": {"nlist": 128}}
SEARCH_DEFAULTS: dict[str, dict] = {"HNSW": {"ef": 64}, "IVF_FLAT": {"nprobe": 16}}
MODES = ("dense", "lexical", "hybrid")
LEXICAL_SINCE = (2, 5)  # Milvus servers with the BM25 function (milvus-lite 3.x has it too)


def check_lexical_support(client) -> None:
    """Refuse, in one line, a server older than Milvus 2.5: it has no BM25 function."""
    version = str(client.get_server_version())
    if version.startswith("milvus_lite"):
        return
    try:
        major_minor = tuple(int(x) for x in version.lstrip("vV").split(".")[:2])
    except ValueError:
        return  # a build that names itself otherwise: let Milvus say what it lacks
    if major_minor < LEXICAL_SINCE:
        raise ValueError(f"retrieval.mode lexical and hybrid need Milvus 2.5 or later (BM25 full-text search); "
                         f"this server is {version}: use retrieval.mode=dense or a newer server")


class MilvusPool:
    def __init__(self, uri: str, collection: str, embedder: Embedder | None, dim: int, token: str | None = None,
                 index_type: str = "HNSW", index_params: dict | None = None,
                 search_params: dict | None = None, signature_length: int = 128, mode: str = "dense",
                 rrf_k: int = 60) -> None:
        from pymilvus import DataType, Function, FunctionType, MilvusClient

        if mode not in MODES:
            raise ValueError(f"retrieval.mode must be one of {MODES}, not {mode!r}")
        self.client = MilvusClient(uri=uri, token=token or "",
                                   grpc_options={"grpc.keepalive_time_ms": 600000})
        self.collection = collection
        self.embedder = embedder
        self.mode = mode
        self.dense, self.lexical = mode in ("dense", "hybrid"), mode in ("lexical", "hybrid")
        self.rrf_k = rrf_k
        self.index_type = index_type
        self.index_params = dict(INDEX_DEFAULTS.get(index_type, {}) if index_params is None else index_params)
        self.search_params = dict(SEARCH_DEFAULTS.get(index_type, {}) if search_params is None
                                  else search_params)
        if self.lexical:
            check_lexical_support(self.client)
        if not self.client.has_collection(collection):
            schema = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("chunk_id", DataType.VARCHAR, is_primary=True, max_length=512)
            schema.add_field("doc_id", DataType.VARCHAR, max_length=256)
            schema.add_field("text", DataType.VARCHAR, max_length=65535, enable_analyzer=self.lexical)
            # The whole document's MinHash (uint32 values): retrieval's leakage guard, the door's rule.
            schema.add_field("doc_signature", DataType.ARRAY, element_type=DataType.INT64,
                             max_capacity=signature_length)
            index = self.client.prepare_index_params()
            if self.dense:
                schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
                index.add_index(field_name="vector", index_type=index_type, metric_type="COSINE",
                                params=self.index_params)
            if self.lexical:  # Milvus computes each chunk's BM25 terms from its text
                schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
                schema.add_function(Function(name="text_bm25", function_type=FunctionType.BM25,
                                             input_field_names=["text"], output_field_names=["sparse"]))
                index.add_index(field_name="sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
            create_unless_exists(self.client, collection, schema, index)
        else:
            fields = {f["name"] for f in self.client.describe_collection(collection)["fields"]}
            if "doc_signature" not in fields:
                raise ValueError(f"collection {collection!r} was built by an earlier version (its chunks carry no "
                                 "document signature for the leakage guard): use another milvus.collection or drop it")
            for needed, field_name, what in ((self.dense, "vector", "dense vectors"),
                                             (self.lexical, "sparse", "BM25 terms")):
                if needed and field_name not in fields:
                    raise ValueError(f"collection {collection!r} holds no {what}, which retrieval.mode {mode!r} "
                                     "searches: use another milvus.collection for this mode, or drop it")
            if self.dense and (built := self.client.describe_index(collection, "vector").get("index_type")) \
                    != index_type:
                raise ValueError(f"collection {collection!r} has a {built} index, the configuration asks "
                                 f"for {index_type}: use another milvus.collection or drop it")
        self.client.load_collection(collection)

    @property
    def needs_vectors(self) -> bool:
        """Whether search() wants the queries' dense vectors (lexical mode runs no embedder)."""
        return self.dense

    def upsert(self, chunks: list[Chunk]) -> None:
        """Idempotent by chunk_id: a replayed document never duplicates a chunk."""
        rows = [{"chunk_id": c.chunk_id, "doc_id": c.doc_id, "text": c.text[:MAX_TEXT],
                 "doc_signature": list(c.doc_signature)} for c in chunks]
        if self.dense:
            for row, v in zip(rows, self.embedder.embed([c.text for c in chunks]), strict=True):
                row["vector"] = v.tolist()
        self.client.upsert(self.collection, rows)
        UPSERTED.inc(len(rows))
        POOL_CHUNKS.set(self.size())

    def search(self, queries: list[str], vectors: np.ndarray | None, k: int, exclude_doc_id: str) -> list[list[Hit]]:
        """Each query's top k chunks outside the document: by its vector, its words (BM25), or both
        fused by reciprocal rank; a higher score is a better hit in every mode."""
        from pymilvus import AnnSearchRequest, RRFRanker

        escaped = exclude_doc_id.replace("\\", "\\\\").replace('"', '\\"')
        where = f'doc_id != "{escaped}"'
        outputs = ["chunk_id", "doc_id", "text", "doc_signature"]
        params = dict(self.search_params)
        if "ef" in params:  # HNSW returns at most ef results
            params["ef"] = max(int(params["ef"]), k)
        dense = {"metric_type": "COSINE", "params": params}
        lexical = {"metric_type": "BM25"}
        if self.dense and vectors is None:
            raise ValueError(f"retrieval.mode {self.mode!r} searches by vector: embed the queries")
        t0 = time.perf_counter()
        by_vector = ([v.tolist() for v in vectors], "vector", dense) if self.dense else None
        by_words = (list(queries), "sparse", lexical) if self.lexical else None

        def call():
            if self.mode == "hybrid":
                requests = [AnnSearchRequest(data, field, params, k, expr=where) for data, field, params in
                            (by_vector, by_words)]
                return self.client.hybrid_search(self.collection, requests, RRFRanker(self.rrf_k), limit=k,
                                                 output_fields=outputs)
            data, field, params = by_vector or by_words
            return self.client.search(self.collection, data=data, anns_field=field, limit=k, filter=where,
                                      output_fields=outputs, search_params=params)

        res = reloading(self.client, self.collection, call)
        SEARCH_SECONDS.observe(time.perf_counter() - t0)
        SEARCH_QUERIES.inc(len(queries))
        return [[Hit(e["chunk_id"], e["doc_id"], e["text"], float(h["distance"]), tuple(e["doc_signature"] or ()))
                 for h in hits for e in (h["entity"],)] for hits in res]

    def sample(self, n: int, seed: int) -> list[Hit]:
        """Up to n chunks drawn uniformly at random (ids first, a reservoir over the whole pool,
        then the texts of the chosen ones only)."""
        import logging
        import random

        # milvus-lite has no MVCC timestamp for iterators; pymilvus warns and falls back to the
        # client's time, which is what a sample of the pool as it is now wants.
        logging.getLogger("pymilvus.client.iterator.query_iterator").setLevel(logging.ERROR)
        rng = random.Random(seed)
        chosen: list[str] = []
        it = self.client.query_iterator(self.collection, batch_size=1000, output_fields=["chunk_id"])
        seen = 0
        try:
            while batch := it.next():
                for row in batch:
                    seen += 1
                    if len(chosen) < n:
                        chosen.append(row["chunk_id"])
                    elif (j := rng.randrange(seen)) < n:
                        chosen[j] = row["chunk_id"]
        finally:
            it.close()
        rows = self.client.get(self.collection, ids=chosen, output_fields=["chunk_id", "doc_id", "text"])
        by_id = {r["chunk_id"]: r for r in rows}
        return [Hit(c, by_id[c]["doc_id"], by_id[c]["text"], 0.0) for c in sorted(chosen) if c in by_id]

    def size(self) -> int:
        """Live chunks (a count query: a server's row_count also counts rows an upsert replaced)."""
        rows = reloading(self.client, self.collection,
                         lambda: self.client.query(self.collection, filter="", output_fields=["count(*)"]))
        return int(rows[0]["count(*)"]) if rows else 0

    def flush(self) -> None:
        self.client.flush(self.collection)
