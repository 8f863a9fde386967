"""The embedded stack's real servers: a noida-db broker and a milvus-lite server, on free ports."""

from __future__ import annotations

from pathlib import Path

import pytest

from entropylong_streamer.services.processes import free_port, pid_alive, start_time, stop_pidfile
from entropylong_streamer.services.stack import (
    BROKER_MATCH,
    MILVUS_GRPC_OPTIONS,
    MILVUS_MATCH,
    ensure_topics,
    start_broker,
    start_milvus,
)


def test_broker_topics_produce_consume_commit_stop(tmp_path: Path) -> None:
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.errors import MessageSizeTooLargeError
    from kafka.structs import OffsetAndMetadata

    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    run_dir = tmp_path / "run"
    proc = start_broker(tmp_path / "broker", port, run_dir)
    try:
        assert proc.alive() and (run_dir / "broker.pid").read_text().split()[0] == str(proc.pid)
        want = {"t1": 1, "t2": 2, "t4": 4}
        ensure_topics(bootstrap, want)
        ensure_topics(bootstrap, want)  # idempotent
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        try:
            got = {t["name"]: len(t["partitions"]) for t in admin.describe_topics(list(want))}
        finally:
            admin.close()
        assert got == want

        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
        meta = producer.send("t4", key=b"k", value=b"hello", partition=3).get(timeout=10)
        producer.close()
        assert (meta.partition, meta.offset) == (3, 0)

        consumer = KafkaConsumer("t4", bootstrap_servers=bootstrap, group_id="g-test",
                                 enable_auto_commit=False, auto_offset_reset="earliest",
                                 consumer_timeout_ms=15000)
        try:
            record = next(iter(consumer))
            assert (record.partition, record.value) == (3, b"hello")
            tp = TopicPartition("t4", 3)
            consumer.commit({tp: OffsetAndMetadata(record.offset + 1, "", -1)})
            assert consumer.committed(tp) == 1
        finally:
            consumer.close()

        # a record with its document contexts reaches megabytes: topics made with max_message_bytes take it
        ensure_topics(bootstrap, {"small": 1})
        ensure_topics(bootstrap, {"big": 1}, max_message_bytes=8 << 20)
        big = KafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=8 << 20)
        try:
            assert big.send("big", value=b"x" * (3 << 20)).get(timeout=30).offset == 0
            with pytest.raises(MessageSizeTooLargeError):  # the broker's default limit
                big.send("small", value=b"x" * (3 << 20)).get(timeout=30)
        finally:
            big.close()
        reader = KafkaConsumer("big", bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                               max_partition_fetch_bytes=8 << 20, consumer_timeout_ms=15000)
        try:
            assert len(next(iter(reader)).value) == 3 << 20
        finally:
            reader.close()
    finally:
        stopped = stop_pidfile(run_dir / "broker.pid", BROKER_MATCH)
        proc.popen.wait(10)  # reap the zombie: the test is the server's parent
        proc.stop()
    assert stopped
    assert not proc.alive() and not pid_alive(proc.pid)
    assert not (run_dir / "broker.pid").exists()
    assert not stop_pidfile(run_dir / "broker.pid", BROKER_MATCH)  # nothing left to stop


def test_a_broker_stopped_under_load_keeps_every_acked_record(tmp_path: Path) -> None:
    """noida-db saves on SIGTERM while still acknowledging writes; the stop stops its Kafka service
    first (save_broker), so a restart finds every record a producer was told is written."""
    import threading

    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    run_dir = tmp_path / "run"
    proc = start_broker(tmp_path / "broker", port, run_dir)
    ensure_topics(bootstrap, {"t": 2})
    acked: dict[int, int] = {}  # partition -> highest acknowledged offset
    enough, stop = threading.Event(), threading.Event()

    def produce() -> None:
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", retries=0, linger_ms=0)
        i = 0
        while not stop.is_set():
            try:
                meta = producer.send("t", value=b"x" * 200, partition=i % 2).get(timeout=5)
            except Exception:  # the broker is going away: what was acked is what counts
                break
            acked[meta.partition] = max(acked.get(meta.partition, -1), meta.offset)
            i += 1
            if i >= 3000:
                enough.set()
        producer.close(timeout=1)

    writer = threading.Thread(target=produce)
    try:
        writer.start()
        assert enough.wait(120)
        proc.stop()  # while the producer is writing
        stop.set()
        writer.join(30)
        proc = start_broker(tmp_path / "broker", port, run_dir)
        consumer = KafkaConsumer(bootstrap_servers=bootstrap)
        try:
            end = consumer.end_offsets([TopicPartition("t", p) for p in (0, 1)])
        finally:
            consumer.close()
        kept = {tp.partition: n for tp, n in end.items()}
        assert all(kept[p] >= acked[p] + 1 for p in (0, 1)), f"acked up to {acked}, kept {kept}"
    finally:
        stop.set()
        proc.stop()


def test_stale_pidfile_kills_nobody(tmp_path: Path) -> None:
    import os

    pid_file = tmp_path / "broker.pid"
    pid_file.write_text(f"{os.getpid()}\n")  # a live process that is not a broker
    assert not stop_pidfile(pid_file, BROKER_MATCH)
    assert not pid_file.exists() and pid_alive(os.getpid())
    pid_file.write_text(f"{os.getpid()} 1.00\n")  # this PID, but another process's start time
    assert not stop_pidfile(pid_file, BROKER_MATCH)
    assert not pid_file.exists() and pid_alive(os.getpid())
    pid_file.write_text(f"{os.getpid()} {start_time(os.getpid())}\n")  # this very process: not a broker
    assert not stop_pidfile(pid_file, BROKER_MATCH)
    assert not pid_file.exists() and pid_alive(os.getpid())
    assert start_time(os.getpid()) and start_time(os.getpid()) == start_time(os.getpid())


def test_milvus_server_insert_search_stop(tmp_path: Path) -> None:
    from pymilvus import DataType, MilvusClient

    port = free_port()
    run_dir = tmp_path / "run"
    proc = start_milvus(tmp_path / "milvus", port, run_dir)
    try:
        client = MilvusClient(uri=f"http://127.0.0.1:{port}", grpc_options=MILVUS_GRPC_OPTIONS)
        schema = client.create_schema(auto_id=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vec", DataType.FLOAT_VECTOR, dim=4)
        index = client.prepare_index_params()
        index.add_index("vec", index_type="FLAT", metric_type="COSINE")
        client.create_collection("c", schema=schema, index_params=index)
        client.insert("c", [{"id": 1, "vec": [1.0, 0.0, 0.0, 0.0]},
                            {"id": 2, "vec": [0.0, 1.0, 0.0, 0.0]},
                            {"id": 3, "vec": [0.0, 0.0, 1.0, 1.0]}])
        client.load_collection("c")
        hits = client.search("c", data=[[0.1, 0.2, 0.9, 0.8]], anns_field="vec", limit=2,
                             search_params={"metric_type": "COSINE"})[0]
        assert [h["id"] for h in hits] == [3, 2]
        assert hits[0]["distance"] > 0.9
        client.close()
    finally:
        stopped = stop_pidfile(run_dir / "milvus.pid", MILVUS_MATCH)
        proc.popen.wait(10)
        proc.stop()
    assert stopped
    assert proc.popen.returncode == 0  # SIGTERM became a clean shutdown, not a kill
    assert not pid_alive(proc.pid) and not (run_dir / "milvus.pid").exists()
    assert "Shutting down" in proc.log_tail()
