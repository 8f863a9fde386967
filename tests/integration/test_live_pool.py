"""The pool grows while the pipeline runs: a document ingested now is context for a later one."""

import json
import time
from pathlib import Path

from stack_helpers import quiet, read_topic, small_config

from entropylong_streamer.ingest import ingest_paths
from entropylong_streamer.sources import read_documents
from entropylong_streamer.stack_control import start_servers, start_workers, stop_all
from entropylong_streamer.topics import CANDIDATES

FIRST = ("The Quixe lake otters were first counted in 1911 by Marta Vellin, who found forty-two "
         "animals living in eleven holts along the northern shore near the old mill. ") * 3
LATER = ("Visitors to the northern shore ask how many otters Marta Vellin counted at Quixe lake, and "
         "the guides tell them about the holts near the old mill and the long census of 1911. ") * 3


def _wait(predicate, what: str, workers, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        dead = [w for w in workers if not w.alive()]
        assert not dead, f"worker died: {dead[0].name}\n{dead[0].log_tail()}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(1)  # polling an observable outcome of separate processes


def test_a_document_indexed_live_serves_a_later_one(tmp_path, model_cache):
    cfg = small_config(tmp_path / "live", model_cache).copy_with({
        "retrieval.index_live_docs": True, "entropy.alpha": 0.0, "retrieval.chunk_tokens": 24,
        "retrieval.chunk_overlap": 4})
    (Path(cfg.data_dir)).mkdir(parents=True)
    (Path(cfg.data_dir) / "models").symlink_to(model_cache, target_is_directory=True)
    first, later = tmp_path / "first.jsonl", tmp_path / "later.jsonl"
    first.write_text(json.dumps({"id": "first", "text": FIRST}) + "\n")
    later.write_text(json.dumps({"id": "later", "text": LATER}) + "\n")
    (first_doc,), (later_doc,) = list(read_documents([first])), list(read_documents([later]))
    from pymilvus import MilvusClient

    try:
        start_servers(cfg)
        workers = start_workers(cfg)  # no bootstrap: the pool starts empty
        assert ingest_paths(cfg, [first], console=quiet())[0] == 1
        client = MilvusClient(uri=cfg.milvus.uri)

        def first_indexed() -> bool:
            if not client.has_collection(cfg.milvus.collection):
                return False
            rows = client.query(cfg.milvus.collection, filter=f'doc_id == "{first_doc.doc_id}"',
                                output_fields=["count(*)"])
            return bool(rows) and rows[0]["count(*)"] > 0

        _wait(first_indexed, "the first document's chunks in the pool", workers)
        assert ingest_paths(cfg, [later], console=quiet())[0] == 1

        def later_candidates() -> list:
            return [c for c in read_topic(cfg, CANDIDATES) if c.anchors.doc_id == later_doc.doc_id]

        _wait(lambda: bool(later_candidates()), "the later document's candidates", workers)
        (rec,) = later_candidates()
        assert rec.anchors.anchors and rec.candidates
        assert {c.context_doc_id for c in rec.candidates} == {first_doc.doc_id}
    finally:
        stop_all(cfg)
