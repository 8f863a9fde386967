"""Line counts in Milvus Lite equal the in-memory ones; a replay adds nothing; the cap bounds rows."""

import random

from pymilvus import MilvusClient

from entropylong_streamer.services.line_store import MemoryLineStore, MilvusLineStore


def test_milvus_counts_equal_memory_counts_and_replays_add_nothing(tmp_path):
    client = MilvusClient(uri=str(tmp_path / "pool.db"))
    stores = [MemoryLineStore(cap=5), MilvusLineStore(client, "pool_lines", cap=5)]
    rng = random.Random(0)
    hashes = [rng.randrange(-2**63, 2**63) for _ in range(40)]
    docs = {f"doc{i}": rng.sample(hashes, rng.randint(1, 12)) for i in range(30)}
    for store in stores:
        for doc_id, hs in docs.items():
            store.add(doc_id, hs)
        store.add("doc0", docs["doc0"])  # a replayed document
    memory, milvus = (s.counts(hashes + [1, 2]) for s in stores)
    assert memory == milvus
    every = {h: sum(h in hs for hs in docs.values()) for h in hashes}
    assert all(memory[h] == min(n, 5) for h, n in every.items() if n)
    rows = client.query("pool_lines", filter="", output_fields=["count(*)"])[0]["count(*)"]
    assert rows == sum(min(n, 5) for n in every.values())  # never more than the cap a line


class LateClient:
    """A real client whose first has_collection answers as it did before another process created
    the collection: the window in which the index and retrieval workers both start."""

    def __init__(self, client):
        self.client, self.asked = client, 0

    def has_collection(self, name):
        self.asked += 1
        return False if self.asked == 1 else self.client.has_collection(name)

    def __getattr__(self, name):
        return getattr(self.client, name)


def test_workers_that_start_together_share_the_collections_one_of_them_created(tmp_path):
    from entropylong_streamer.services.doc_store import MilvusDocStore

    client = MilvusClient(uri=str(tmp_path / "pool.db"))
    first = MilvusLineStore(client, "pool_lines")
    first.add("doc0", [7, 8])
    MilvusDocStore(client, "pool_docs").put({"d": "text"})
    late = MilvusLineStore(LateClient(client), "pool_lines")  # its create fails: the collection exists
    assert late.counts([7, 8, 9]) == {7: 1, 8: 1}
    assert MilvusDocStore(LateClient(client), "pool_docs").get(["d"]) == {"d": "text"}
