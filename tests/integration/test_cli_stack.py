"""`elong up --detach`, `ingest`, `status` and `down` as a user types them, on the real processes."""

import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from stack_helpers import read_topic, small_config

from entropylong_streamer.demo_corpus import write_demo_corpus
from entropylong_streamer.services import processes
from entropylong_streamer.sources import doc_id_for
from entropylong_streamer.status import collect, shard_summary, with_rates
from entropylong_streamer.topics import DEPENDENCIES, DROPPED


def elong(*args: str, config: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "entropylong_streamer.cli", *args, "--config", str(config)],
                          capture_output=True, text=True, timeout=300)


def stack_config(tmp_path, model_cache):
    """A small configuration for a stack under tmp_path, and the file `--config` names."""
    cfg = small_config(tmp_path / "data", model_cache).copy_with({"kafka.idle_fetch_backoff_ms": 0})
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "models").symlink_to(model_cache, target_is_directory=True)
    conf = tmp_path / "elong.json"
    conf.write_text(json.dumps(cfg.model_dump(mode="json")))
    return cfg, conf


def test_up_ingest_status_down(tmp_path, model_cache):
    cfg, conf = stack_config(tmp_path, model_cache)
    docs = tmp_path / "docs.jsonl"
    write_demo_corpus(docs, 4, min_chars=400, max_chars=900)
    run_dir = tmp_path / "data" / "run"
    try:
        up = elong("up", "--detach", config=conf)
        assert up.returncode == 0, up.stdout + up.stderr
        pids = {p.stem: int(p.read_text().split()[0]) for p in run_dir.glob("*.pid")}
        assert set(pids) >= {"broker", "milvus", "worker-entropy-0", "worker-pack-0", "worker-trainer-0"}
        written = json.loads((run_dir / "config.json").read_text())
        assert written["kafka"]["idle_fetch_backoff_ms"] > 0  # `up` turns the back-off on for noida-db
        assert (run_dir / "config.json").stat().st_mode & 0o077 == 0
        ingest = elong("ingest", str(docs), config=conf)
        assert ingest.returncode == 0 and "ingested 4 documents" in ingest.stdout, ingest.stdout + ingest.stderr
        again = elong("ingest", str(docs), config=conf)  # the same file: read to its end before, skipped
        assert "ingested 0 documents (0 dropped" in again.stdout and "1 files already ingested" in again.stdout
        copy = tmp_path / "copy.jsonl"
        copy.write_text(docs.read_text())
        copied = elong("ingest", str(copy), config=conf)  # the same texts in another file: exact duplicates
        assert "ingested 0 documents (4 dropped at the door" in copied.stdout, copied.stdout + copied.stderr
        assert "4 exact_duplicate" in copied.stdout
        assert [d.rule for d in read_topic(cfg, DROPPED)] == ["exact_duplicate"] * 4  # each kept, with its rule
        deadline = time.monotonic() + 300
        while shard_summary(cfg)["samples"] < 4:
            assert time.monotonic() < deadline, "documents did not reach a shard"
            time.sleep(1)  # polling an observable outcome of separate processes
        status = elong("status", "--interval", "0.5", config=conf)
        # without --config (as a user types it after `up`): the configuration `up` saved, and it says so
        bare = subprocess.run([sys.executable, "-m", "entropylong_streamer.cli", "status", "--interval", "0",
                               "--set", f"data_dir='{tmp_path / 'data'}'"], capture_output=True, text=True, timeout=120)
        assert bare.returncode == 0, bare.stdout + bare.stderr
        assert "configuration: the running stack's" in " ".join(bare.stdout.split()) and "4 samples" in bare.stdout
        assert status.returncode == 0 and "4 samples" in status.stdout and "entropy" in status.stdout
        manifest = Path(cfg.data_dir) / "shards" / cfg.version("pack") / "manifest.jsonl"
        lengths = [n for line in manifest.read_text().splitlines() for n in json.loads(line)["sample_lengths"]]
        assert f"sample tokens median {statistics.median(lengths):,.0f}" in " ".join(status.stdout.split())
        rows = {r.stage: r for r in collect(cfg)}
        assert rows["entropy"].partitions == 2 and rows["trainer"].partitions == 1
        assert {s: r.consumers for s, r in rows.items()} == dict.fromkeys(rows, 1)  # one worker per stage
        later = with_rates(collect(cfg), list(rows.values()))
        assert all(r.rate is not None and r.rate >= 0 for r in later)
        # every worker's log lines in one format
        record = re.compile(r"^\[\d{4}-\d\d-\d\d [\d:,]+\] \[\d+\] \[[A-Z]+\] \S+: ")
        logs = {p.stem: p.read_text().splitlines() for p in run_dir.glob("worker-*.log")}
        assert set(logs) == {name for name in pids if name.startswith("worker-")}
        for name, lines in logs.items():
            records = [line for line in lines if line.startswith("[")]
            assert records and all(record.match(line) for line in records), (name, records[:3])
            assert any("worker ready" in line for line in records), (name, records[:3])  # each says it started
            stage = name.split("-")[1]
            if stage in ("entropy", "retrieval", "verify"):  # a line per batch, its records counted
                assert any(f"{stage}: " in line and " in, " in line for line in records), (name, records[-3:])
    finally:
        down = elong("down", config=conf)
    assert down.returncode == 0 and "broker" in down.stdout, down.stdout + down.stderr
    assert not list(run_dir.glob("*.pid"))
    assert not [name for name, pid in pids.items() if processes.pid_alive(pid)]


def test_demo_indexes_the_reference_pages_then_builds_each_sheets_sample(tmp_path, model_cache):
    cfg, conf = stack_config(tmp_path, model_cache)
    run_dir = tmp_path / "data" / "run"
    try:
        demo = subprocess.run([sys.executable, "-m", "entropylong_streamer.cli", "demo", "--sheets", "2", "--keep",
                               "--config", str(conf)], capture_output=True, text=True, timeout=600)
        out = " ".join(demo.stdout.split())
        assert demo.returncode == 0, demo.stdout + demo.stderr
        assert "2 quick-reference sheets citing them" in out and "ingested 2 new documents" in out
        pages = [json.loads(line)["text"] for line in
                 (tmp_path / "data" / "corpus" / "reference-pages.jsonl").read_text().splitlines()]
        assert f"chunks from {len(pages)} documents" in out
        assert shard_summary(cfg)["samples"] == 2
        # the pool was indexed before the sheets arrived: what each sheet was measured against is pages
        deps = read_topic(cfg, DEPENDENCIES)
        assert sorted(d.source_id for d in deps) == ["quickref-1", "quickref-2"]
        assert all(c.context_doc_id for d in deps for c in d.contexts)
        measured = {c.context_doc_id for d in deps for c in d.contexts}
        pool_ids = {doc_id_for(p) for p in pages}
        assert measured and measured <= pool_ids | {d.doc_id for d in deps}
        assert measured & pool_ids
    finally:
        down = elong("down", config=conf)
    assert down.returncode == 0, down.stdout + down.stderr
    assert not list(run_dir.glob("*.pid"))
