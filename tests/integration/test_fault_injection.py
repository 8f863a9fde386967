"""Fault injection: several hundred documents flow while workers of every stage, the packer with
records buffered included, are SIGKILLed at random moments and restarted. At the end every document
is in exactly one sample of the shard set or in the dead-letter topic with a reason, no sample is
doubled, and every shard opens and validates."""

import json
import os
import random
import signal
import time
from pathlib import Path

from stack_helpers import quiet, read_topic, shard_samples, small_config, wait_for

from entropylong_streamer.agents import kafka_clients as kc
from entropylong_streamer.demo_corpus import write_demo_corpus
from entropylong_streamer.ingest import ingest_paths
from entropylong_streamer.sources import BadRow, read_documents
from entropylong_streamer.stack_control import start_servers, start_worker, start_workers, stop_all, worker_stage
from entropylong_streamer.status import collect, end_offsets, shard_summary
from entropylong_streamer.topics import ANCHORS, DEAD_LETTER, DOCS

KILLS = 20
REPORT = os.environ.get("ENTROPYLONG_FAULT_REPORT")  # where to write the figures (the README quotes them)


def test_sigkilled_workers_lose_and_double_nothing(tmp_path, model_cache):
    cfg = small_config(tmp_path / "data", model_cache).copy_with({
        "retrieval.index_live_docs": True, "agents.session_timeout_s": 6.0,
        "agents.max_batch": {"entropy": 16, "index": 16, "retrieval": 16, "verify": 4},
        "pack.max_wait_s": 1.0, "trainer.passes_per_shard": 1, "trainer.threads": 1})
    Path(cfg.data_dir).mkdir(parents=True)
    (Path(cfg.data_dir) / "models").symlink_to(model_cache, target_is_directory=True)
    corpus = tmp_path / "all.jsonl"
    write_demo_corpus(corpus, 400, min_chars=150, max_chars=400)
    lines = corpus.read_text().splitlines(keepends=True)
    waves = []
    for i in range(3):  # documents keep arriving while workers die
        waves.append(tmp_path / f"wave{i}.jsonl")
        waves[-1].write_text("".join(lines[i::3]) + ('{"text": ""}\n' if i == 0 else ""))
    expected = {d.doc_id for d in read_documents([corpus]) if not isinstance(d, BadRow)}
    assert len(expected) >= 250
    rng = random.Random(8)
    kills: list[tuple[str, int]] = []  # (stage, that stage's uncommitted input records when killed)
    try:
        start_servers(cfg)
        workers = {w.name: w for w in start_workers(cfg)}
        stages = sorted({worker_stage(name) for name in workers})
        assert stages == ["entropy", "index", "pack", "retrieval", "trainer", "verify"]
        prod = kc.producer(cfg)
        prod.send(DOCS.full_name(cfg.kafka.topic_prefix), key=b"junk", value=b"\xc1 not msgpack")
        prod.flush()
        order = stages + ["pack"] + [rng.choice(stages) for _ in range(KILLS - len(stages) - 1)]
        rng.shuffle(order)
        ingest_paths(cfg, [waves[0]], console=quiet())
        anchors = ANCHORS.full_name(cfg.kafka.topic_prefix)
        wait_for("documents flowing", lambda: end_offsets(cfg, [anchors])[anchors] > 0, list(workers.values()))
        for i, stage in enumerate(order):
            if i in (4, 8):
                ingest_paths(cfg, [waves[i // 4]], console=quiet())
            time.sleep(rng.uniform(0.5, 4.0))  # a random moment: the point of the test, not a wait
            if stage == "pack":  # with records read but not yet in a durable shard, when there are any
                wait_for("the packer's input", lambda: {r.stage: r.lag for r in collect(cfg)}["pack"] > 0
                         or shard_summary(cfg)["samples"] >= len(expected), list(workers.values()), timeout=120)
            name = f"worker-{stage}-0"
            lag = {r.stage: r.lag for r in collect(cfg)}.get(stage, 0)
            os.killpg(workers[name].pid, signal.SIGKILL)
            workers[name].popen.wait(timeout=30)
            kills.append((stage, lag))
            workers[name] = start_worker(cfg, stage, name)

        def complete():
            s = shard_summary(cfg)
            return (s["samples"] >= len(expected) and not any(r.lag for r in collect(cfg))
                    and s["trained_shards"] >= s["shards"])
        wait_for("every document packed after the kills", complete, list(workers.values()), timeout=600)

        packed = shard_samples(cfg)  # every shard opened through StreamingDataset; asserts no doubles
        dead = read_topic(cfg, DEAD_LETTER)
        dead_docs = {d.doc_id for d in dead if d.doc_id}
        assert set(packed) == expected and not dead_docs & expected
        assert all(d.reason for d in dead)
        reasons = {(d.stage, d.reason.split(":")[0]) for d in dead}
        assert ("entropy", "decode") in reasons and ("ingest", "empty text") in reasons
        manifest = Path(cfg.data_dir) / "shards" / cfg.version("pack") / "manifest.jsonl"
        entries = [json.loads(x) for x in manifest.read_text().splitlines()]
        assert sum(e["samples"] for e in entries) == len(expected)  # manifest agrees: nothing twice
        assert len(kills) >= 10 and {s for s, _ in kills} == set(stages)
        assert any(s == "pack" and lag > 0 for s, lag in kills), kills  # killed with records in flight
        if REPORT:
            Path(REPORT).write_text(json.dumps({"documents": len(expected), "kills": kills, "shards": len(entries),
                                                "dead_letters": len(dead), "lost": 0, "doubled": 0}))
    finally:
        stop_all(cfg)
