"""A worker whose stage cannot start exits non-zero, saying why."""

from pathlib import Path

from stack_helpers import small_config

from entropylong_streamer.stack_control import start_servers, start_worker, stop_all, write_worker_config


def test_a_worker_that_cannot_build_its_stage_exits_with_status_1(tmp_path, model_cache):
    # a dense pool built with another index type (the lexical default refuses it for its missing BM25 terms)
    cfg = small_config(tmp_path / "fail", model_cache).copy_with({"retrieval.mode": "dense"})
    Path(cfg.data_dir).mkdir(parents=True)
    (Path(cfg.data_dir) / "models").symlink_to(model_cache, target_is_directory=True)
    write_worker_config(cfg)
    try:
        start_servers(cfg)
        from pymilvus import DataType, MilvusClient

        client = MilvusClient(uri=cfg.milvus.uri)
        schema = client.create_schema(auto_id=False)
        schema.add_field("chunk_id", DataType.VARCHAR, is_primary=True, max_length=64)
        schema.add_field("doc_signature", DataType.ARRAY, element_type=DataType.INT64, max_capacity=128)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=8)
        index = client.prepare_index_params()
        index.add_index(field_name="vector", index_type="FLAT", metric_type="COSINE")
        client.create_collection(cfg.milvus.collection, schema=schema, index_params=index)
        worker = start_worker(cfg, "retrieval", "worker-retrieval-0")
        assert worker.popen.wait(timeout=180) == 1
        log = worker.log_path.read_text()
        assert "retrieval worker stops" in log and "has a FLAT index" in log
    finally:
        stop_all(cfg)
