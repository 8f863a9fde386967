"""The broker restarts in the middle of a run, twice killed outright (SIGKILL) and once stopped: the
pipeline recovers and loses nothing; what is done twice, the packer removes. A worker that exits
while the broker is away is restarted, as a supervisor (Kubernetes, systemd) would.

noida-db keeps acknowledged writes only once its snapshot (about a second later) holds them, so a
SIGKILL takes back the last second: records and committed offsets together, as one consistent
earlier state. The stages then redo that second's work. The door's own sends are seconds older
than each kill here (each waits on work downstream of them); Kafka itself keeps a write once acked."""

import os
import signal
import time
from collections import Counter
from pathlib import Path

from stack_helpers import quiet, read_topic, shard_samples, small_config

from entropylong_streamer.demo_corpus import write_demo_corpus
from entropylong_streamer.ingest import ingest_paths
from entropylong_streamer.pipeline import Pipeline
from entropylong_streamer.services import stack
from entropylong_streamer.sources import BadRow, read_documents
from entropylong_streamer.stack_control import (
    run_dir,
    start_servers,
    start_worker,
    start_workers,
    stop_all,
    worker_stage,
)
from entropylong_streamer.status import collect, end_offsets, shard_summary, topic_partitions
from entropylong_streamer.topics import ANCHORS, CANDIDATES, DEAD_LETTER, DEPENDENCIES, DOCS


def test_a_broker_restart_mid_run_loses_nothing(tmp_path, model_cache):
    cfg = small_config(tmp_path / "data", model_cache).copy_with({"agents.session_timeout_s": 6.0,
                                                                  "pack.max_wait_s": 1.0})
    Path(cfg.data_dir).mkdir(parents=True)
    (Path(cfg.data_dir) / "models").symlink_to(model_cache, target_is_directory=True)
    corpus = tmp_path / "all.jsonl"
    write_demo_corpus(corpus, 90, min_chars=150, max_chars=400)
    lines = corpus.read_text().splitlines(keepends=True)
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    first.write_text("".join(lines[::2]))
    second.write_text("".join(lines[1::2]))
    docs = [d for d in read_documents([corpus]) if not isinstance(d, BadRow)]
    expected = {d.doc_id for d in docs}
    port = int(cfg.kafka.bootstrap_servers.rsplit(":", 1)[1])
    p = cfg.kafka.topic_prefix
    anchors, deps = ANCHORS.full_name(p), DEPENDENCIES.full_name(p)
    worker_restarts, kept = 0, []
    try:
        servers = start_servers(cfg)
        broker = next(s for s in servers if s.name == "broker")
        Pipeline(cfg).stage("index").process(docs)
        workers = {w.name: w for w in start_workers(cfg)}

        def supervise_until(what, done, timeout):
            nonlocal worker_restarts
            deadline = time.monotonic() + timeout
            while not done():
                for name, w in list(workers.items()):
                    if not w.alive():  # a supervisor's job (Kubernetes, systemd): start it again
                        worker_restarts += 1
                        workers[name] = start_worker(cfg, worker_stage(name), name)
                if time.monotonic() > deadline:
                    raise AssertionError(f"{what}: not reached in {timeout} s; acked records kept at each "
                                         f"restart: {kept}\n{_diagnosis(cfg, expected)}")
                time.sleep(0.5)  # polling an observable outcome of other processes

        def restart_broker(kill: bool = False):
            nonlocal broker
            before = end_offsets(cfg, list(topic_partitions(cfg)))
            if kill:
                os.killpg(broker.pid, signal.SIGKILL)
                broker.popen.wait(10)
            else:
                broker.stop()  # noida-db stops taking writes, saves its snapshot, exits
            broker = stack.start_broker(Path(cfg.data_dir) / "broker", port, run_dir(cfg))
            after = end_offsets(cfg, list(topic_partitions(cfg)))
            kept.append(all(after[t] >= n for t, n in before.items()))

        ingest_paths(cfg, [first], console=quiet())
        # 1: SIGKILL while the entropy stage is writing anchors and nothing later has committed
        supervise_until("anchors", lambda: end_offsets(cfg, [anchors])[anchors] >= 10, 300)
        restart_broker(kill=True)
        # 2: SIGKILL while dependencies flow and the packer holds records of an open shard
        supervise_until("a shard", lambda: shard_summary(cfg)["shards"] >= 1
                        and end_offsets(cfg, [deps])[deps] >= 20, 300)
        restart_broker(kill=True)
        ingest_paths(cfg, [second], console=quiet())
        # 3: with the trainer consuming shards and the second half entering
        supervise_until("the trainer", lambda: shard_summary(cfg)["trained_shards"] >= 1, 300)
        restart_broker()

        supervise_until("every document packed", lambda: shard_summary(cfg)["samples"] >= len(expected)
                        and not any(r.lag for r in collect(cfg)), 300)
        packed = shard_samples(cfg)  # asserts that no document is packed twice
        assert set(packed) == expected
        redone = Counter(r.doc_id for r in read_topic(cfg, DEPENDENCIES))
        redone = sum(1 for n in redone.values() if n > 1)
    finally:
        stop_all(cfg)
    print(f"broker restarted 3 times, twice by SIGKILL (acked records all kept: {kept}); "
          f"{worker_restarts} worker restarts; {len(expected)} documents, 0 lost, 0 doubled; "
          f"{redone} documents' dependencies sent twice, removed by the packer")


def _diagnosis(cfg, expected: set[str]) -> str:
    """Which hop lost documents: each topic's documents and each group's committed offsets."""
    lines = [f"{r.stage}: produced {r.produced}, committed {r.committed}" for r in collect(cfg)]
    packed = set(shard_samples(cfg))
    for spec in (DOCS, ANCHORS, CANDIDATES, DEPENDENCIES):
        ids = {r.doc_id for r in read_topic(cfg, spec)}
        lines.append(f"{spec.name}: {len(ids)} documents, {len(expected - ids)} missing")
    lines.append(f"shards: {len(packed)} documents, missing {sorted(expected - packed)[:10]}")
    dead = Counter(f"{d.stage}: {d.reason[:80]}" for d in read_topic(cfg, DEAD_LETTER))
    lines += [f"dead letters: {n} x {reason}" for reason, n in dead.most_common(10)]
    return "\n".join(lines)
