"""Whole pool documents in Milvus Lite read back as written: long ones across parts, odd ids, rewrites."""

from hypothesis import given, settings
from hypothesis import strategies as st
from memory_stores import MemoryDocStore
from pymilvus import MilvusClient

from entropylong_streamer.services.doc_store import PART_CHARS, MilvusDocStore


def test_documents_read_back_whole_and_a_shorter_rewrite_leaves_no_stale_tail(tmp_path):
    store = MilvusDocStore(MilvusClient(uri=str(tmp_path / "pool.db")), "pool_docs")
    docs = {"short": "a few words", "long": "".join(chr(0x1F600 + i % 50) for i in range(3 * PART_CHARS + 7)),
            'odd "id" \\ with quotes': "text", "empty": ""}
    store.put(docs)
    assert store.get([*docs, "absent"]) == docs
    store.put({"long": "now short"})
    assert store.get(["long"]) == {"long": "now short"}
    assert MilvusDocStore(MilvusClient(uri=str(tmp_path / "pool.db")), "pool_docs").get(["short"]) == {
        "short": "a few words"}  # reopened


def test_memory_and_milvus_agree_on_any_ids_and_texts(tmp_path):
    client = MilvusClient(uri=str(tmp_path / "pool.db"))
    examples = iter(range(1000))

    @settings(max_examples=15, deadline=None)
    @given(st.dictionaries(st.text(min_size=1, max_size=20), st.text(max_size=200), max_size=20))
    def agree(docs):
        stores = [MemoryDocStore(), MilvusDocStore(client, f"docs_{next(examples)}")]
        for s in stores:
            s.put(docs)
        memory, milvus = (s.get([*docs, "x-absent"]) for s in stores)
        assert memory == milvus == docs

    agree()
