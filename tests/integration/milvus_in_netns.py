"""Run inside a fresh network namespace (loopback only): start a real Milvus server (the PyPI
package milvus 2.3.5, which listens on every interface, hence the namespace), exercise the
project's MilvusPool against it by URI, print the findings as one JSON line, stop the server.

Started by tests/integration/test_milvus_server.py through `unshare --net --pid --fork
--kill-child`, so nothing it starts outlives it.
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path


def main() -> None:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    links = subprocess.run(["ip", "-o", "link"], check=True, capture_output=True, text=True).stdout
    from milvus import MilvusServer

    server = MilvusServer()
    server.set_base_dir(tempfile.mkdtemp(prefix="milvus-server-"))
    server.start()
    try:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "services"))
        from test_pool import HashEmbedder, chunks

        from entropylong_streamer.services.pool import MilvusPool

        uri = f"http://127.0.0.1:{server.listen_port}"
        emb = HashEmbedder()
        pool = MilvusPool(uri, "pool", emb, emb.dim, index_type="HNSW")
        data = chunks(60)
        pool.upsert(data)
        pool.upsert(data[:30])  # a replay
        pool.flush()
        (hits,) = pool.search(["otter river lake"], emb.embed(["otter river lake"]), 10, exclude_doc_id="doc3")
        try:
            MilvusPool(uri, "pool", emb, emb.dim, index_type="FLAT")
            refused = False
        except ValueError:
            refused = True
        lexical_refusal = ""
        try:
            MilvusPool(uri, "pool_hybrid", emb, emb.dim, mode="hybrid")
        except ValueError as exc:
            lexical_refusal = str(exc)
        print(json.dumps({
            "interfaces": [line.split(":")[1].strip() for line in links.splitlines()],
            "size": pool.size(), "hits": len(hits), "doc_ids": sorted({h.doc_id for h in hits}),
            "sorted": [h.score for h in hits] == sorted((h.score for h in hits), reverse=True),
            "other_index_refused": refused, "lexical_refusal": lexical_refusal,
        }))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
