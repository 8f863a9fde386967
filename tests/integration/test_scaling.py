"""Two workers of one stage share its partitions: every document's output once, both did work."""

from pathlib import Path

from stack_helpers import free_ports, quiet, read_topic, scrape_all, small_config, wait_for

from entropylong_streamer.demo_corpus import write_demo_corpus
from entropylong_streamer.ingest import ingest_paths
from entropylong_streamer.services import stack
from entropylong_streamer.stack_control import run_dir, start_worker, stop_all, write_worker_config
from entropylong_streamer.status import collect, ensure_pipeline_topics
from entropylong_streamer.topics import ANCHORS

DOCS_N = 12


def test_two_entropy_workers_split_the_partitions_and_nothing_is_doubled(tmp_path, model_cache):
    cfg = small_config(tmp_path / "data", model_cache).copy_with({"agents.max_batch": {"entropy": 2}})
    Path(cfg.data_dir).mkdir(parents=True)
    (Path(cfg.data_dir) / "models").symlink_to(model_cache, target_is_directory=True)
    port = int(cfg.kafka.bootstrap_servers.rsplit(":", 1)[1])
    stack.start_broker(Path(cfg.data_dir) / "broker", port, run_dir(cfg))
    metrics = free_ports(2)
    try:
        ensure_pipeline_topics(cfg)
        write_worker_config(cfg)
        workers = [start_worker(cfg, "entropy", f"worker-entropy-{i}", ["--set", f"metrics.port={metrics + i}"])
                   for i in range(2)]
        # Both members in the group before any record, so no rebalance moves work mid-flight.
        wait_for("two consumers", lambda: {r.stage: r.consumers for r in collect(cfg)}["entropy"] == 2, workers)
        wait_for("both holding partitions, the group stable", lambda: both_assigned(cfg), workers)
        corpus = tmp_path / "docs.jsonl"
        write_demo_corpus(corpus, DOCS_N, min_chars=300, max_chars=700)
        assert ingest_paths(cfg, [corpus], console=quiet())[0] == DOCS_N
        anchors = wait_for("anchors", lambda: (a := read_topic(cfg, ANCHORS)) and len(a) >= DOCS_N and a, workers)
        assert sorted(a.doc_id for a in anchors) == sorted({a.doc_id for a in anchors})  # none doubled
        assert len(anchors) == DOCS_N
        per_worker = [scrape_all(metrics + i, 1).get(("elong_records_total", "entropy", "in"), 0) for i in range(2)]
        assert sum(per_worker) == DOCS_N and all(n > 0 for n in per_worker), per_worker
    finally:
        stop_all(cfg)


def test_raising_the_partition_count_keeps_every_document_once(tmp_path, model_cache):
    from typer.testing import CliRunner

    from entropylong_streamer.cli import app
    from entropylong_streamer.topics import DOCS

    cfg = small_config(tmp_path / "data", model_cache)  # 2 partitions
    Path(cfg.data_dir).mkdir(parents=True)
    (Path(cfg.data_dir) / "models").symlink_to(model_cache, target_is_directory=True)
    port = int(cfg.kafka.bootstrap_servers.rsplit(":", 1)[1])
    stack.start_broker(Path(cfg.data_dir) / "broker", port, run_dir(cfg))
    corpus = tmp_path / "all.jsonl"
    write_demo_corpus(corpus, DOCS_N, min_chars=300, max_chars=700)
    lines = corpus.read_text().splitlines(keepends=True)
    halves = [tmp_path / "first.jsonl", tmp_path / "second.jsonl"]
    halves[0].write_text("".join(lines[: DOCS_N // 2]))
    halves[1].write_text("".join(lines[DOCS_N // 2 :]))
    try:
        ensure_pipeline_topics(cfg)
        conf = write_worker_config(cfg)
        worker = start_worker(cfg, "entropy", "worker-entropy-0")
        assert ingest_paths(cfg, [halves[0]], console=quiet())[0] == DOCS_N // 2
        wait_for("first half", lambda: len(read_topic(cfg, ANCHORS)) >= DOCS_N // 2, [worker])
        worker.stop()

        res = CliRunner().invoke(app, ["topics", "-c", str(conf), "--set", "kafka.partitions=4"])
        assert res.exit_code == 0, res.output
        grown = cfg.copy_with({"kafka.partitions": 4})
        conf = write_worker_config(grown)
        worker = start_worker(grown, "entropy", "worker-entropy-0")
        assert ingest_paths(grown, [halves[1]], console=quiet())[0] == DOCS_N - DOCS_N // 2
        anchors = wait_for("second half", lambda: (a := read_topic(cfg, ANCHORS)) and len(a) >= DOCS_N and a, [worker])
        assert sorted(a.doc_id for a in anchors) == sorted({a.doc_id for a in anchors}) and len(anchors) == DOCS_N
        # the anchors are sent before the worker commits its input offsets
        def committed():
            row = {r.stage: r for r in collect(grown)}["entropy"]
            return row.lag == 0 and row

        row = wait_for("offsets committed", committed, [worker])
        assert row.partitions == 4
        from kafka import KafkaConsumer

        cons = KafkaConsumer(DOCS.full_name(cfg.kafka.topic_prefix), auto_offset_reset="earliest",
                             consumer_timeout_ms=3000, bootstrap_servers=cfg.kafka.bootstrap_servers)
        used = {m.partition for m in cons}
        cons.close()
        assert used & {2, 3}, used  # the new partitions carried documents, and they were consumed
    finally:
        stop_all(cfg)


def both_assigned(cfg) -> bool:
    """The entropy group is Stable and each of its members holds a partition: the rebalance that the
    second member's join started is over."""
    from kafka import KafkaAdminClient

    from entropylong_streamer import registry
    from entropylong_streamer.agents.kafka_clients import client_kwargs

    group = registry.stage("entropy").group(cfg)
    admin = KafkaAdminClient(**client_kwargs(cfg))
    try:
        described = admin.describe_groups([group])[group]
    finally:
        admin.close()
    members = described.get("members") or []
    held = [sum(len(t["partitions"]) for t in (m.get("member_assignment") or {}).get("assigned_partitions", []))
            for m in members]
    return described.get("group_state") == "Stable" and len(held) == 2 and all(held)
