"""The Milvus pool on embedded Milvus Lite (a local file): index types, idempotence, exclusion."""

import numpy as np
import pytest

from entropylong_streamer.services.pool import MilvusPool
from entropylong_streamer.stages.index import Chunk


class HashEmbedder:
    dim = 32

    def embed(self, texts):
        out = np.zeros((len(texts), self.dim), np.float32)
        for i, t in enumerate(texts):
            for w in t.lower().split():
                out[i, sum(map(ord, w)) % self.dim] += 1
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def chunks(n):
    words = ["otter", "river", "lake", "kafka", "topic", "milvus", "vector", "den", "fish", "shard"]
    rng = np.random.default_rng(0)
    # each document's signature: 128 uint32 values, the top of the range included
    return [Chunk(chunk_id=f"doc{i % 7}:{i}", doc_id=f"doc{i % 7}", text=" ".join(rng.choice(words, 6)),
                  doc_signature=tuple([2**32 - 1 - i % 7] + [int(x) for x in rng.integers(0, 2**32, 127)]))
            for i in range(n)]


@pytest.mark.parametrize("index_type", ["HNSW", "FLAT", "IVF_FLAT", "AUTOINDEX"])
def test_each_index_type_searches_excludes_and_upserts_idempotently(tmp_path, index_type):
    emb = HashEmbedder()
    pool = MilvusPool(str(tmp_path / "pool.db"), "c", emb, emb.dim, index_type=index_type)
    data = chunks(60)
    pool.upsert(data)
    pool.upsert(data[:30])  # a replay
    pool.flush()
    ids = pool.client.query("c", filter="doc_id != ''", output_fields=["chunk_id"], limit=1000)
    assert len(ids) == 60 == pool.size()
    (hits,) = pool.search(["otter river lake"], emb.embed(["otter river lake"]), 10, exclude_doc_id="doc3")
    assert len(hits) == 10 and all(h.doc_id != "doc3" for h in hits)
    assert hits == sorted(hits, key=lambda h: -h.score)
    by_id = {c.chunk_id: c for c in data}
    assert all(h.doc_signature == by_id[h.chunk_id].doc_signature for h in hits)  # the leakage guard's input


def test_a_collection_built_with_another_index_is_refused(tmp_path):
    emb = HashEmbedder()
    MilvusPool(str(tmp_path / "pool.db"), "c", emb, emb.dim, index_type="FLAT").client.close()
    with pytest.raises(ValueError, match="has a FLAT index"):
        MilvusPool(str(tmp_path / "pool.db"), "c", emb, emb.dim, index_type="HNSW")


def test_a_collection_of_an_earlier_version_without_signatures_is_refused(tmp_path):
    from pymilvus import DataType, MilvusClient

    client = MilvusClient(str(tmp_path / "pool.db"))
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("chunk_id", DataType.VARCHAR, is_primary=True, max_length=512)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=HashEmbedder().dim)
    index = client.prepare_index_params()
    index.add_index(field_name="vector", index_type="FLAT", metric_type="COSINE")
    client.create_collection("c", schema=schema, index_params=index)
    client.close()
    with pytest.raises(ValueError, match="earlier version"):
        MilvusPool(str(tmp_path / "pool.db"), "c", HashEmbedder(), HashEmbedder().dim, index_type="FLAT")


def lexical_chunks():
    texts = {"pg": "the view pg_stat_activity shows one row per server process",
             "wal": "wal_level decides how much information is written to the write ahead log",
             "vac": "autovacuum launches workers that vacuum tables whose dead rows pass a threshold",
             "me": "this page mentions pg_stat_activity and wal_level only in passing"}
    return [Chunk(chunk_id=f"{d}:0", doc_id=d, text=t, doc_signature=(i,)) for i, (d, t) in enumerate(texts.items())]


def test_lexical_mode_finds_identifiers_by_their_words_with_no_embedder(tmp_path):
    pool = MilvusPool(str(tmp_path / "pool.db"), "c", None, 0, mode="lexical")
    assert not pool.needs_vectors
    pool.upsert(lexical_chunks())
    pool.flush()
    found = pool.search(["what does pg_stat_activity show", "raise wal_level"], None, 3, exclude_doc_id="me")
    assert [hits[0].doc_id for hits in found] == ["pg", "wal"]
    assert all(h.doc_id != "me" for hits in found for h in hits)
    assert all(hits == sorted(hits, key=lambda h: -h.score) for hits in found)


def test_hybrid_mode_fuses_dense_and_lexical_ranks(tmp_path):
    emb = HashEmbedder()
    pool = MilvusPool(str(tmp_path / "pool.db"), "c", emb, emb.dim, mode="hybrid", rrf_k=60)
    assert pool.needs_vectors
    pool.upsert(lexical_chunks())
    pool.flush()
    queries = ["what does pg_stat_activity show", "vacuum dead rows"]
    found = pool.search(queries, emb.embed(queries), 3, exclude_doc_id="me")
    assert [hits[0].doc_id for hits in found] == ["pg", "vac"]
    # reciprocal-rank scores: at most 2 / (k + 1), a first place in both searches
    assert all(0 < h.score <= 2 / 61 + 1e-9 for hits in found for h in hits)


def test_a_pool_built_for_another_mode_is_refused_in_one_line(tmp_path):
    emb = HashEmbedder()
    MilvusPool(str(tmp_path / "pool.db"), "c", emb, emb.dim).client.close()  # dense
    with pytest.raises(ValueError, match="holds no BM25 terms, which retrieval.mode 'hybrid' searches"):
        MilvusPool(str(tmp_path / "pool.db"), "c", emb, emb.dim, mode="hybrid")
    MilvusPool(str(tmp_path / "pool.db"), "lex", None, 0, mode="lexical").client.close()
    with pytest.raises(ValueError, match="holds no dense vectors"):
        MilvusPool(str(tmp_path / "pool.db"), "lex", emb, emb.dim, mode="dense")
