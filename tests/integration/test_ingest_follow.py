"""`ingest --follow DIR` on the real broker: files present at start and files that land later are
ingested once each, duplicates across files are dropped with their rule, and after a SIGKILL the
next run neither skips a document nor sends more than the batch in flight again."""

import json
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from prometheus_client import REGISTRY
from stack_helpers import quiet, read_topic, small_config

from entropylong_streamer.demo_corpus import write_demo_corpus
from entropylong_streamer.ingest import follow
from entropylong_streamer.services import stack
from entropylong_streamer.sources import BadRow, read_documents
from entropylong_streamer.stack_control import run_dir
from entropylong_streamer.status import end_offsets, ensure_pipeline_topics
from entropylong_streamer.topics import DOCS, DROPPED


def _broker(cfg):
    port = int(cfg.kafka.bootstrap_servers.rsplit(":", 1)[1])
    broker = stack.start_broker(Path(cfg.data_dir) / "broker", port, run_dir(cfg))
    ensure_pipeline_topics(cfg)
    return broker


def _until(what, check, timeout=120):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.1)  # polling an observable outcome of another thread or process


def _count(cfg, spec):
    name = spec.full_name(cfg.kafka.topic_prefix)
    return end_offsets(cfg, [name])[name]


def test_files_present_and_landing_later_are_each_ingested_once(tmp_path, model_cache):
    cfg = small_config(tmp_path / "data", model_cache)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    corpus = tmp_path / "all.jsonl"
    write_demo_corpus(corpus, 30, min_chars=300, max_chars=800)
    lines = corpus.read_text().splitlines(keepends=True)
    (inbox / "a.jsonl").write_text("".join(lines[:20]))
    broker = _broker(cfg)
    counted = {k: REGISTRY.get_sample_value("elong_door_documents_total", {"outcome": k}) or 0
               for k in ("admitted", "exact_duplicate")}
    stop = threading.Event()
    thread = threading.Thread(target=follow, args=(cfg, inbox, quiet(), stop, 300))
    try:
        thread.start()
        _until("the first file", lambda: _count(cfg, DOCS) == 20)
        partial = inbox / "b.jsonl.part"  # written under a name the follower ignores, then renamed
        partial.write_text("".join(lines[20:]) + lines[0])  # 10 new documents and one seen before
        partial.rename(inbox / "b.jsonl")
        _until("the landed file", lambda: _count(cfg, DOCS) == 30 and _count(cfg, DROPPED) == 1)
    finally:
        stop.set()
        thread.join(timeout=60)
        broker.stop()
    assert not thread.is_alive()
    expected = {d.doc_id for d in read_documents([corpus]) if not isinstance(d, BadRow)}
    broker = _broker(cfg)
    try:
        docs = [d.doc_id for d in read_topic(cfg, DOCS)]
        (dropped,) = read_topic(cfg, DROPPED)
    finally:
        broker.stop()
    assert sorted(docs) == sorted(expected)
    assert dropped.rule == "exact_duplicate" and dropped.source.endswith("b.jsonl:11")
    # every decision counted in the metrics the follower serves
    assert REGISTRY.get_sample_value("elong_door_documents_total", {"outcome": "admitted"}) - counted["admitted"] == 30
    assert REGISTRY.get_sample_value("elong_door_documents_total", {"outcome": "exact_duplicate"}) \
        - counted["exact_duplicate"] == 1


def test_a_killed_follower_resumes_where_it_committed(tmp_path, model_cache):
    cfg = small_config(tmp_path / "data", model_cache).copy_with({"door.batch_records": 5})
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    rng = random.Random(0)
    words = [f"{a}{b}" for a in ("ka", "lo", "mi", "su", "te", "ra") for b in ("n", "r", "s", "t", "l")]
    n = 3000  # enough that the kill lands mid-way on any machine: 600 acknowledged batches
    (inbox / "docs.jsonl").write_text("".join(json.dumps({"text": " ".join(rng.choice(words) for _ in range(40))})
                                              + "\n" for _ in range(n)))
    expected = {d.doc_id for d in read_documents([inbox / "docs.jsonl"]) if not isinstance(d, BadRow)}
    conf = tmp_path / "elong.json"
    conf.write_text(json.dumps(cfg.model_dump(mode="json")))
    argv = [sys.executable, "-m", "entropylong_streamer.cli", "ingest", "--follow", str(inbox), "--config", str(conf)]
    broker = _broker(cfg)
    try:
        first = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _until("the first batches", lambda: _count(cfg, DOCS) >= 50)
        first.send_signal(signal.SIGKILL)
        first.wait()
        at_kill = _count(cfg, DOCS)
        assert at_kill < len(expected), "the follower finished before the kill: nothing to resume"
        second = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _until("every document", lambda: len({d.doc_id for d in read_topic(cfg, DOCS)}) == len(expected), 180)
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=60) == 0
        docs = [d.doc_id for d in read_topic(cfg, DOCS)]
    finally:
        broker.stop()
    assert set(docs) == expected  # nothing skipped
    again = len(docs) - len(expected)
    assert again <= cfg.door.batch_records  # at most the batch that was in flight at the kill
    print(f"{len(expected)} documents, killed after {at_kill}; sent again after the restart: {again}")
