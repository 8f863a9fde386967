"""The n-gram sketch: never below the truth, replays add nothing, shared by processes through its file."""

import multiprocessing
import random

from hypothesis import given, settings
from hypothesis import strategies as st
from memory_stores import MemoryNgramStore

from entropylong_streamer.services.ngram_sketch import CountMinSketch, SqliteNgramStore

docs = st.dictionaries(st.text("abcdef", min_size=1, max_size=3), st.sets(st.integers(-2**63, 2**63 - 1),
                                                                          max_size=30), max_size=12)


@settings(max_examples=100, deadline=None)
@given(docs, st.integers(1, 4), st.integers(1, 64))
def test_a_count_is_never_below_the_documents_that_hold_it_and_exact_without_collisions(batch, depth, width):
    store = MemoryNgramStore(depth, width)
    store.add_many(batch)
    truth: dict[int, int] = {}
    for hashes in batch.values():
        for h in hashes:
            truth[h] = truth.get(h, 0) + 1
    counts = store.counts(truth)
    assert all(counts.get(h, 0) >= min(n, 255) for h, n in truth.items())
    wide = MemoryNgramStore(4, 1 << 22)
    wide.add_many(batch)
    assert wide.counts(truth) == {h: min(n, 255) for h, n in truth.items()}  # 4 x 4M counters: no collision here


def test_a_replayed_document_adds_nothing_and_counts_saturate(tmp_path):
    store = SqliteNgramStore(tmp_path / "n.sqlite", 4, 1 << 16)
    store.add_many({"a": [1, 2, 3], "b": [2, 3]})
    store.add_many({"a": [1, 2, 3], "c": [3]})  # "a" again: a replay
    assert store.counts([1, 2, 3, 4]) == {1: 1, 2: 2, 3: 3}
    assert store.documents() == 3
    many = MemoryNgramStore(2, 1 << 10)
    many.add_many({f"d{i}": [7] for i in range(300)})
    assert many.counts([7]) == {7: 255}
    assert CountMinSketch(2, 8).counts([]) == {}


def _index(path, start, n):
    store = SqliteNgramStore(path, 4, 1 << 16)
    rng = random.Random(start)
    for i in range(start, start + n):
        store.add_many({f"d{i}": [1, rng.randrange(10, 10**9)]})


def test_writers_in_several_processes_lose_no_document_and_readers_see_their_counts(tmp_path):
    path = tmp_path / "n.sqlite"
    reader = SqliteNgramStore(path, 4, 1 << 16)
    assert reader.counts([1]) == {}
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_index, args=(path, k * 100, 40)) for k in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    assert reader.counts([1]) == {1: 120} and reader.documents() == 120


def test_the_pipeline_keeps_the_sketch_beside_a_milvus_lite_file_else_in_the_data_dir(tmp_path):
    from entropylong_streamer.config import Config
    from entropylong_streamer.pipeline import Pipeline

    cfg = Config().copy_with({"data_dir": str(tmp_path), "retrieval.template_ngram_words": 6})
    assert Pipeline(cfg, milvus_uri=str(tmp_path / "pool.db")).ngram_store.path == tmp_path / "pool.db.ngrams.sqlite"
    served = Pipeline(cfg, milvus_uri="http://127.0.0.1:19530").ngram_store.path
    assert served == tmp_path / "pool-ngrams" / f"{cfg.milvus.collection}.sqlite"
    assert cfg.version("index") != Config().copy_with({"data_dir": str(tmp_path)}).version("index")
