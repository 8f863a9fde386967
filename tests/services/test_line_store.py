"""Line counts in Milvus Lite and in SQLite equal the in-memory ones; a replay adds nothing; the cap
bounds rows."""

import random

from hypothesis import given, settings
from hypothesis import strategies as st
from memory_stores import MemoryLineStore
from pymilvus import MilvusClient

from entropylong_streamer.services.line_store import MilvusLineStore, SqliteLineStore


def test_milvus_and_sqlite_counts_equal_memory_counts_and_replays_add_nothing(tmp_path):
    client = MilvusClient(uri=str(tmp_path / "pool.db"))
    stores = [MemoryLineStore(cap=5), MilvusLineStore(client, "pool_lines", cap=5),
              SqliteLineStore(tmp_path / "pool.db.lines.sqlite", cap=5)]
    rng = random.Random(0)
    hashes = [rng.randrange(-2**63, 2**63) for _ in range(40)]
    docs = {f"doc{i}": rng.sample(hashes, rng.randint(1, 12)) for i in range(30)}
    names = list(docs)
    for store in stores:
        for i in range(0, 30, 7):  # batches, as the indexer adds them
            store.add_many({d: docs[d] for d in names[i : i + 7]})
        store.add_many({"doc0": docs["doc0"]})  # a replayed document
        store.add_many({"doc1": docs["doc1"], "doc2": docs["doc2"]})  # a replayed batch
    memory, milvus, sqlite = (s.counts(hashes + [1, 2]) for s in stores)
    assert memory == milvus == sqlite
    every = {h: sum(h in hs for hs in docs.values()) for h in hashes}
    assert all(memory[h] == min(n, 5) for h, n in every.items() if n)
    rows = client.query("pool_lines", filter="", output_fields=["count(*)"])[0]["count(*)"]
    assert rows == sum(min(n, 5) for n in every.values())  # never more than the cap a line
    assert stores[2].db.execute("SELECT COUNT(*) FROM lines").fetchone()[0] == rows




def test_workers_that_start_together_all_get_the_one_collection(tmp_path):
    """The real race: eight clients create one collection at one instant (16 times) on one milvus-lite
    server. Losers see "already exists", or "[Errno 17] File exists" while has_collection is still
    False, and the winner itself may fail after the collection exists; each must return with the
    collection there, indexed and loaded, none with an error."""
    import threading

    from pymilvus import DataType

    from entropylong_streamer.services.milvus_collections import create_unless_exists

    uri = str(tmp_path / "pool.db")
    server = MilvusClient(uri=uri)
    for round_ in range(16):
        name, start, outcomes = f"lines{round_}", threading.Barrier(8), []

        def create(name=name, start=start, outcomes=outcomes):
            client = MilvusClient(uri=uri)
            schema = client.create_schema(auto_id=False)
            schema.add_field("key", DataType.INT64, is_primary=True)
            schema.add_field("unused", DataType.FLOAT_VECTOR, dim=2)
            index = client.prepare_index_params()
            index.add_index(field_name="unused", index_type="FLAT", metric_type="L2")
            start.wait()
            try:
                outcomes.append(create_unless_exists(client, name, schema, index))
            except Exception as exc:  # noqa: BLE001 - the assertion below names it
                outcomes.append(repr(exc))

        threads = [threading.Thread(target=create) for _ in range(8)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        assert outcomes == [None] * 8, outcomes
        server.insert(name, [{"key": 1, "unused": [0.0, 1.0]}])
        assert server.query(name, filter="key == 1", output_fields=["key"]) == [{"key": 1}]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.tuples(st.integers(0, 9), st.sets(st.integers(0, 6), max_size=5)), max_size=6),
                max_size=5), st.integers(1, 4))
def test_adding_a_batch_counts_as_adding_its_documents_one_by_one(batches, cap):
    """Any batches, replays included: the same (line, document) rows as one add per document."""
    one_by_one, batched = MemoryLineStore(cap=cap), MemoryLineStore(cap=cap)
    for batch in batches:
        docs = {}
        for doc, lines in batch:
            docs[f"d{doc}"] = docs.get(f"d{doc}", set()) | lines
        for doc_id, lines in docs.items():
            one_by_one.add(doc_id, lines)
        batched.add_many(docs)
    assert batched.docs == one_by_one.docs
    assert all(len(ds) <= cap for ds in batched.docs.values())


@settings(max_examples=60, deadline=None)
@given(st.lists(st.dictionaries(st.integers(0, 9), st.sets(st.integers(-2**63, 2**64 - 1), max_size=5), max_size=6),
                max_size=5), st.integers(1, 4))
def test_the_sqlite_store_counts_as_the_memory_store_does(tmp_path_factory, batches, cap):
    """Any batches of documents (replays included), hashes over the whole signed and unsigned 64-bit range."""
    memory = MemoryLineStore(cap=cap)
    sqlite = SqliteLineStore(tmp_path_factory.mktemp("lines") / "lines.sqlite", cap=cap)
    for batch in batches:
        docs = {f"d{d}": lines for d, lines in batch.items()}
        memory.add_many(docs)
        sqlite.add_many(docs)
    every = {h for batch in batches for lines in batch.values() for h in lines}
    assert sqlite.counts(every) == memory.counts(every)


def test_the_pipeline_counts_lines_in_sqlite_beside_a_milvus_lite_pool_and_keeps_an_earlier_pools_counts(tmp_path):
    from entropylong_streamer.config import Config
    from entropylong_streamer.pipeline import Pipeline

    cfg = Config().copy_with({"data_dir": str(tmp_path), "retrieval.embedder": "null"})
    fresh = Pipeline(cfg, milvus_uri=str(tmp_path / "pool.db")).line_store
    assert isinstance(fresh, SqliteLineStore)
    assert (tmp_path / "pool.db.lines.sqlite").exists()
    # a pool built when the counts lived in Milvus: they stay there, not an empty file beside it
    client = MilvusClient(uri=str(tmp_path / "old.db"))
    MilvusLineStore(client, f"{cfg.milvus.collection}_lines").add_many({"d": [1, 2]})
    client.close()
    kept = Pipeline(cfg, milvus_uri=str(tmp_path / "old.db")).line_store
    assert isinstance(kept, MilvusLineStore) and kept.counts([1, 2, 3]) == {1: 1, 2: 1}
