"""An outage is not bad input: the vector store SIGKILLed while documents flow, or an engine out of memory,
sends nothing to the dead letters; the stages wait, uncommitted, with elong_stage_blocked set, and once the
outage is over every document goes on."""

import contextlib
import os
import signal
import subprocess
from pathlib import Path
from urllib.parse import urlparse

import pytest
import torch
from prometheus_client import REGISTRY
from stack_helpers import (
    free_ports,
    quiet,
    read_topic,
    run_loop,
    scrape_all,
    shard_samples,
    small_config,
    wait_for,
)

from entropylong_streamer.agents import kafka_clients as kc
from entropylong_streamer.agents import worker
from entropylong_streamer.agents.faults import EngineLost
from entropylong_streamer.demo_corpus import write_demo_corpus
from entropylong_streamer.ingest import ingest_paths
from entropylong_streamer.pipeline import Pipeline
from entropylong_streamer.services import stack
from entropylong_streamer.services.lm import EngineStateLost
from entropylong_streamer.services.shards import read_manifest
from entropylong_streamer.services.transformers_engine import TransformersEngine
from entropylong_streamer.sources import BadRow, read_documents
from entropylong_streamer.stack_control import run_dir, start_servers, start_workers, stop_all
from entropylong_streamer.status import (
    collect,
    dead_letter_counts,
    end_offsets,
    ensure_pipeline_topics,
    outages,
    shard_summary,
)
from entropylong_streamer.topics import ANCHORS, DEAD_LETTER, DEPENDENCIES, DOCS, SHARD_READY, DependenciesRecord

DOCS_N = 12


def test_a_killed_vector_store_is_waited_out_and_dead_letters_nothing(tmp_path, model_cache):
    cfg = small_config(tmp_path / "data", model_cache).copy_with({
        "metrics.port": free_ports(6), "retrieval.index_live_docs": True, "agents.outage_backoff_max_s": 1.0})
    Path(cfg.data_dir).mkdir(parents=True)
    (Path(cfg.data_dir) / "models").symlink_to(model_cache, target_is_directory=True)
    corpus, bootstrap = tmp_path / "docs.jsonl", tmp_path / "pool.jsonl"
    write_demo_corpus(corpus, DOCS_N, min_chars=300, max_chars=900)
    write_demo_corpus(bootstrap, DOCS_N + 8, min_chars=300, max_chars=900)
    expected = {d.doc_id for d in read_documents([corpus]) if not isinstance(d, BadRow)}
    uri = urlparse(cfg.milvus.uri)
    try:
        servers = {p.name: p for p in start_servers(cfg)}
        pool = [d for d in read_documents([bootstrap]) if not isinstance(d, BadRow)][DOCS_N:]
        Pipeline(cfg).stage("index").process(pool)
        workers = start_workers(cfg)
        ready = lambda: sum(v for (name, _, _), v in scrape_all(cfg.metrics.port, len(workers)).items()  # noqa: E731
                            if name == "elong_worker_ready")
        wait_for("the workers ready", lambda: ready() >= len(workers), workers)
        os.killpg(servers["milvus"].pid, signal.SIGKILL)  # the server and whatever it started
        servers["milvus"].popen.wait()
        assert ingest_paths(cfg, [corpus], console=quiet())[0] == DOCS_N

        def blocked() -> set[str]:
            scraped = scrape_all(cfg.metrics.port, len(workers))
            return {stage for (name, stage, reason), v in scraped.items()
                    if name == "elong_stage_blocked" and reason == "vector_store" and v == 1}

        # the stages that read or write the pool wait while the documents are there to process
        wait_for("retrieval and index waiting on the vector store", lambda: {"retrieval", "index"} <= blocked(),
                 workers)
        assert {o["stage"] for o in outages(cfg) if o["reason"] == "vector_store"} >= {"retrieval", "index"}
        stack.start_milvus(cfg.paths.milvus, uri.port, run_dir(cfg), host=uri.hostname)

        def done() -> bool:
            s = shard_summary(cfg)
            return s["samples"] >= DOCS_N and not any(row.lag for row in collect(cfg))

        wait_for("every document packed after the store came back", done, workers, timeout=600)
        assert set(shard_samples(cfg)) == expected  # each once: shard_samples asserts no doubles
        assert read_topic(cfg, DEAD_LETTER) == [] and not dead_letter_counts(cfg)
        assert outages(cfg) == []  # `elong status` no longer says anyone waits
        scraped = scrape_all(cfg.metrics.port, len(workers))
        assert scraped[("elong_outage_retries_total", "retrieval", "vector_store")] >= 1
        assert not blocked()  # the gauge fell back once the batches went through
    finally:
        stop_all(cfg)


def entropy_loop_with(exc: BaseException, calls: int, broker, tmp_path, model_cache, monkeypatch):
    """The entropy worker's loop (agents/worker.py, in-process) on the real broker and tiny model, whose
    forwards raise exc for their first `calls` calls (fault injection), until every document has its anchors
    or the loop ends: (the loop's error, the documents, the calls that raised, the engine's outage retries)."""
    cfg = small_config(tmp_path / "data", model_cache).copy_with({
        "kafka.bootstrap_servers": broker, "agents.outage_backoff_s": 0.05, "agents.outage_backoff_max_s": 0.2,
        "agents.measurement_cache": False, "agents.max_batch": {"entropy": 4}, "metrics.port": 0})
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "models").symlink_to(model_cache, target_is_directory=True)
    ensure_pipeline_topics(cfg)
    corpus = tmp_path / "docs.jsonl"
    write_demo_corpus(corpus, 8, min_chars=300, max_chars=900)
    docs = [d for d in read_documents([corpus]) if not isinstance(d, BadRow)]
    prod = kc.producer(cfg)
    kc.send_all(prod, cfg.kafka.topic_prefix, [kc.Produced.of(DOCS, d) for d in docs])
    prod.close()
    real, raised = TransformersEngine.score_charged, []

    def failing_first(self, requests):
        if len(raised) < calls:
            raised.append(len(requests))
            raise exc
        return real(self, requests)

    monkeypatch.setattr(TransformersEngine, "score_charged", failing_first)

    def retries() -> float:
        return REGISTRY.get_sample_value("elong_outage_retries_total", {"stage": "entropy", "reason": "engine"}) or 0

    before = retries()
    anchors = ANCHORS.full_name(cfg.kafka.topic_prefix)
    error = run_loop(lambda c, stop: worker.run(c, "entropy", stop), cfg,
                     until=lambda: end_offsets(cfg, [anchors])[anchors] >= len(docs), timeout=300)
    return cfg, error, docs, raised, retries() - before


def test_an_engine_out_of_memory_for_several_batches_is_waited_out_and_dead_letters_nothing(
        broker, tmp_path, model_cache, monkeypatch):
    oom = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (injected)")
    cfg, error, docs, raised, retries = entropy_loop_with(oom, 4, broker, tmp_path, model_cache, monkeypatch)
    assert error is None, error
    assert len(raised) == 4 and retries >= 4
    assert sorted(a.doc_id for a in read_topic(cfg, ANCHORS)) == sorted(d.doc_id for d in docs)
    assert read_topic(cfg, DEAD_LETTER) == []


def test_an_engine_that_lost_its_state_ends_the_worker_uncommitted(broker, tmp_path, model_cache, monkeypatch):
    lost = EngineStateLost("loading the new weights failed and so did restoring the old ones (injected)")
    cfg, error, docs, raised, _ = entropy_loop_with(lost, 1, broker, tmp_path, model_cache, monkeypatch)
    assert isinstance(error, EngineLost) and len(raised) == 1  # the process exits non-zero: its supervisor
    assert read_topic(cfg, ANCHORS) == [] and read_topic(cfg, DEAD_LETTER) == []  # restarts it
    assert sum(row.lag for row in collect(cfg, {"entropy"})) == len(docs)  # nothing committed


def test_a_full_disk_under_the_shard_set_commits_nothing_shows_no_partial_shard_and_resumes(
        broker, tmp_path, model_cache):
    """The packer's loop (in-process) on the real broker, its shard set on a 1 MiB tmpfs filled with ballast."""
    if os.geteuid() != 0:
        pytest.skip("a small tmpfs needs root to mount (CI runs as root)")
    cfg = small_config(tmp_path / "data", model_cache).copy_with({
        "kafka.bootstrap_servers": broker, "metrics.port": 0, "pack.max_wait_s": 0.5,
        "agents.outage_backoff_s": 0.05, "agents.outage_backoff_max_s": 0.2})
    root = cfg.paths.shards
    root.mkdir(parents=True)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(root)]).returncode:
        pytest.skip("mount -t tmpfs is not permitted here")
    try:
        ballast = root / "ballast"
        with open(ballast, "wb") as fh, contextlib.suppress(OSError):  # until the disk is full
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        ensure_pipeline_topics(cfg)
        records = [DependenciesRecord(doc_id=f"doc-{i}", text=f"document {i}", token_ids=list(range(1, 150 + i)),
                                      contexts=[], pairs=[], config_version=cfg.version("verify")) for i in range(6)]
        prod = kc.producer(cfg)
        kc.send_all(prod, cfg.kafka.topic_prefix,
                    [kc.Produced.of(DEPENDENCIES, r) for r in records])
        prod.close()
        shard_set = cfg.paths.shard_set(cfg.version("pack"))
        seen_blocked = []

        def lag() -> int:
            return sum(row.lag for row in collect(cfg, {"pack"}))

        def progress() -> bool:
            if not seen_blocked:
                if REGISTRY.get_sample_value("elong_stage_blocked", {"stage": "pack", "reason": "filesystem"}):
                    visible = [p.name for p in shard_set.iterdir() if p.is_dir() and not p.name.startswith(".")]
                    manifest = (shard_set / "manifest.jsonl").read_text() if (shard_set / "manifest.jsonl").exists() \
                        else ""
                    seen_blocked.append((visible, manifest, lag()))
                    ballast.unlink()  # space again
                return False
            return bool(read_manifest(shard_set)) and lag() == 0

        error = run_loop(lambda c, stop: worker.run(c, "pack", stop), cfg, until=progress, timeout=300)
        assert error is None, error
        assert seen_blocked == [([], "", len(records))]  # while full: no shard, no manifest line, nothing committed
        (entry,) = read_manifest(shard_set)
        assert sorted(entry["doc_ids"]) == sorted(r.doc_id for r in records)
        assert not [p for p in shard_set.iterdir() if p.name.startswith(".tmp")]
        assert read_topic(cfg, DEAD_LETTER) == []
        assert [r.shard_id for r in read_topic(cfg, SHARD_READY)] == [entry["shard_id"]]
    finally:
        subprocess.run(["umount", "-l", str(root)])
