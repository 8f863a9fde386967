"""A worker whose stage cannot start exits non-zero (Faust would keep a process with a dead agent)."""

import json
import sys
from pathlib import Path

from test_pipeline import small_config

from entropylong_streamer.services import stack
from entropylong_streamer.stack_control import start_servers, stop_all


def test_a_worker_that_cannot_build_its_stage_exits_with_status_1(tmp_path, model_cache):
    cfg = small_config(tmp_path / "fail", model_cache)
    Path(cfg.data_dir).mkdir(parents=True)
    (Path(cfg.data_dir) / "models").symlink_to(model_cache, target_is_directory=True)
    conf = tmp_path / "config.json"
    conf.write_text(json.dumps(cfg.model_dump(mode="json")))
    try:
        start_servers(cfg)
        from pymilvus import DataType, MilvusClient

        client = MilvusClient(uri=cfg.milvus.uri)  # a pool built with another index type
        schema = client.create_schema(auto_id=False)
        schema.add_field("chunk_id", DataType.VARCHAR, is_primary=True, max_length=64)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=8)
        index = client.prepare_index_params()
        index.add_index(field_name="vector", index_type="FLAT", metric_type="COSINE")
        client.create_collection(cfg.milvus.collection, schema=schema, index_params=index)
        worker = stack.ManagedProcess("worker-retrieval-0", [sys.executable, "-m", "entropylong_streamer.cli",
                                                             "worker", "retrieval", "--config", str(conf)],
                                      Path(cfg.data_dir) / "run")
        assert worker.popen.wait(timeout=180) == 1
        log = worker.log_path.read_text()
        assert "retrieval worker stops" in log and "has a FLAT index" in log
    finally:
        stop_all(cfg)
