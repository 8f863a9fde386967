"""The whole pipeline as separate processes on the real broker and milvus-lite, against batch mode."""

import json
import time
import uuid
from pathlib import Path

import pytest

from entropylong_streamer.agents import kafka_clients as kc
from entropylong_streamer.batch import build, dependency_rows
from entropylong_streamer.config import Config
from entropylong_streamer.demo_corpus import write_demo_corpus
from entropylong_streamer.ingest_cmd import ingest_paths
from entropylong_streamer.pipeline import Pipeline
from entropylong_streamer.services import stack
from entropylong_streamer.services.shards import read_shard
from entropylong_streamer.stack_control import start_servers, start_workers, stop_all
from entropylong_streamer.stages.ingest import BadRow, read_documents
from entropylong_streamer.status import collect, shard_summary
from entropylong_streamer.topics import ANCHORS, DEAD_LETTER, DEPENDENCIES, DOCS

DOCS_N = 10


def small_config(data_dir: Path, model_cache: Path) -> Config:
    return Config().copy_with({
        "data_dir": str(data_dir),
        "kafka.bootstrap_servers": f"127.0.0.1:{stack.free_port()}",
        "kafka.topic_prefix": f"t{uuid.uuid4().hex[:8]}.",
        "kafka.partitions": 2,
        "kafka.idle_fetch_backoff_ms": 200,
        "milvus.uri": f"http://127.0.0.1:{stack.free_port()}",
        "model.path": "tiny",
        "model.max_tokens": 1024,
        "entropy.alpha": 1.0,
        "entropy.max_anchors": 3,
        "retrieval.top_k": 2,
        "retrieval.chunk_tokens": 48,
        "retrieval.chunk_overlap": 8,
        "retrieval.index_live_docs": False,
        "verify.epsilon": 0.1,
        "verify.max_context_tokens": 48,
        "pack.seq_len": 2048,
        "pack.sequences_per_shard": 1,
        "pack.max_wait_s": 2.0,
        "trainer.passes_per_shard": 2,
        # the demo corpus is documentation, not web prose (as in deploy/demo.toml)
        "door.min_words": 1,
        "door.max_mean_word_length": 40.0,
        "door.max_duplicate_line_ratio": 1.0,
    })


def shard_samples(cfg: Config) -> dict[str, list[int]]:
    """doc_id -> the sample's token ids, from every shard through StreamingDataset; asserts no doubles."""
    root = Path(cfg.data_dir) / "shards" / cfg.pack_version()
    out: dict[str, list[int]] = {}
    separator = Pipeline(cfg).separator
    for line in (root / "manifest.jsonl").read_text().splitlines():
        for seq in read_shard(Path(json.loads(line)["path"])):
            ids = seq["input_ids"].tolist()
            assert seq["length"] == len(ids) <= cfg.pack.seq_len
            for doc_id, (start, end) in zip(seq["doc_ids"], seq["indices"].reshape(-1, 2), strict=True):
                assert doc_id not in out, f"{doc_id} packed twice"
                assert tuple(ids[start : start + len(separator)]) == separator
                out[doc_id] = ids[start:end]
    return out


def read_topic(cfg: Config, spec) -> list:
    from kafka import KafkaConsumer

    cons = KafkaConsumer(spec.full_name(cfg.kafka.topic_prefix), auto_offset_reset="earliest",
                         consumer_timeout_ms=3000, **kc.client_kwargs(cfg))
    try:
        return [spec.decode(m.value) for m in cons]
    finally:
        cons.close()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "docs.jsonl"
    write_demo_corpus(path, DOCS_N, min_chars=400, max_chars=1200)
    with open(path, "a") as fh:
        fh.write(json.dumps({"text": "   "}) + "\n")  # bad: empty text
        fh.write(path.read_text().splitlines()[0] + "\n")  # an identical document, again
    return path


def test_streaming_delivers_every_document_once_and_matches_batch(tmp_path, corpus, model_cache):
    # two retrieval rounds: the loop inside verify must give the same pairs in both modes too
    cfg = small_config(tmp_path / "stream", model_cache).copy_with({"metrics.port": _free_ports(6),
                                                                     "retrieval.rounds": 2})
    (Path(cfg.data_dir) / "models").parent.mkdir(parents=True, exist_ok=True)
    (Path(cfg.data_dir) / "models").symlink_to(model_cache, target_is_directory=True)
    docs = [d for d in read_documents([corpus]) if not isinstance(d, BadRow)]
    expected = {d.doc_id for d in docs}
    assert len(expected) == DOCS_N

    try:
        start_servers(cfg)
        Pipeline(cfg).index().process(docs)  # bootstrap the pool, as `elong index` does
        workers = start_workers(cfg)
        sent, skipped, bad = ingest_paths(cfg, [corpus], console=_quiet())
        assert (sent, skipped, bad) == (DOCS_N, 1, 1)
        prod = kc.producer(cfg)
        prod.send(DOCS.full_name(cfg.kafka.topic_prefix), key=b"junk", value=b"\xc1 not msgpack")
        prod.flush()
        prod.close()

        deadline = time.monotonic() + 600
        while True:
            s = shard_summary(cfg)
            if s["samples"] >= DOCS_N and s["trained_shards"] >= s["shards"] > 0:
                lags = {row.stage: row.lag for row in collect(cfg)}
                if not any(lags.values()):  # `elong status` agrees: every stage committed everything
                    break
            dead = [w for w in workers if not w.alive()]
            assert not dead, f"worker died: {dead[0].name}\n{dead[0].log_tail()}"
            assert time.monotonic() < deadline, f"pipeline incomplete: {s}"
            time.sleep(1)  # polling an observable outcome of separate processes

        packed = shard_samples(cfg)
        assert set(packed) == expected
        dead_letters = read_topic(cfg, DEAD_LETTER)
        reasons = {(d.stage, d.reason.split(":")[0]) for d in dead_letters}
        assert ("entropy", "decode") in reasons and ("ingest", "empty text") in reasons
        losses = _jsonl(Path(cfg.data_dir) / "trainer" / "loss.jsonl")
        assert losses and all(x["steps"] > 0 for x in losses)
        stream_rows = sorted((r["doc_id"], r["context_id"], r["anchor"], r["accepted"])
                             for rec in read_topic(cfg, DEPENDENCIES) for r in dependency_rows(rec))
        stream_dI = {(r["doc_id"], r["context_id"], r["anchor"]): r["dI"]
                     for rec in read_topic(cfg, DEPENDENCIES) for r in dependency_rows(rec)}
        # The entropy worker's Prometheus counter: every document's tokens, run through the LM once.
        scraped = _scrape_all(cfg.metrics.port, len(workers))
        lm_tokens = sum(len(a.token_ids) for a in read_topic(cfg, ANCHORS))
        assert scraped[("elong_lm_tokens_total", "entropy", "")] == lm_tokens
        records = {o: scraped[("elong_records_total", "entropy", o)] for o in ("in", "out", "dead_lettered")}
        assert records == {"in": DOCS_N + 1, "out": DOCS_N, "dead_lettered": 1}  # the junk record
        anchors = sum(len(a.anchors) for a in read_topic(cfg, ANCHORS))
        leaders = sum(a.leader is None for rec in read_topic(cfg, ANCHORS) for a in rec.anchors)
        assert scraped[("elong_stage_events_total", "retrieval", "queries")] == leaders > 0  # followers share
        assert scraped[("elong_stage_events_total", "entropy", "anchors")] == anchors
        assert scraped[("elong_anchors_per_document_sum", "entropy", "")] == anchors
        assert scraped[("elong_candidates_per_anchor_count", "retrieval", "")] == anchors
        pairs = [p for rec in read_topic(cfg, DEPENDENCIES) for p in rec.pairs]
        assert scraped[("elong_verify_di_count", "verify", "")] == len(pairs) > 0
        assert scraped.get(("elong_stage_events_total", "verify", "accepted"), 0) == sum(p.accepted for p in pairs)
        late = sum(p.round == 2 for p in pairs)
        assert scraped.get(("elong_stage_events_total", "verify", "round_2_pairs"), 0) == late > 0
        # The trainer's endpoint: every shard trained once, its tokens, and loss by position bucket.
        while _scrape_all(cfg.metrics.port, len(workers)).get(("elong_trainer_shards_total", "", ""), 0) < s["shards"]:
            assert time.monotonic() < deadline, "the trainer's metrics never caught up"
            time.sleep(0.5)
        scraped = _scrape_all(cfg.metrics.port, len(workers))
        losses = _jsonl(Path(cfg.data_dir) / "trainer" / "loss.jsonl")  # written before the metrics
        assert scraped[("elong_trainer_shards_total", "", "")] == s["shards"] == len(losses)
        assert scraped[("elong_trainer_tokens_total", "", "")] == sum(x["tokens"] for x in losses) > 0
        assert scraped[("elong_trainer_loss_by_position", "", "0")] > 0
    finally:
        stop_all(cfg)
    for w in workers:
        assert not w.alive()

    bcfg = cfg.copy_with({"data_dir": str(tmp_path / "batch")})
    (tmp_path / "batch").mkdir()
    (tmp_path / "batch" / "models").symlink_to(model_cache, target_is_directory=True)
    report = build(bcfg, [corpus], [corpus], tmp_path / "batch" / "out", show_progress=False)
    rows = _jsonl(tmp_path / "batch" / "out" / "dependencies.jsonl")
    assert sorted((r["doc_id"], r["context_id"], r["anchor"], r["accepted"]) for r in rows) == stream_rows
    for r in rows:
        assert abs(r["dI"] - stream_dI[(r["doc_id"], r["context_id"], r["anchor"])]) <= 1e-4
    assert report.documents == DOCS_N and rows
    assert shard_samples(bcfg.copy_with({"data_dir": str(tmp_path / "batch" / "out")})) == packed


def wait_for(what, check, workers, timeout=300):
    """Poll check() until it returns something truthy (and return it); fail if a worker exits or
    the time runs out, with the worker's log tail."""
    deadline = time.monotonic() + timeout
    while not (got := check()):
        for w in workers:
            assert w.alive(), f"{w.name} exited: {w.log_tail()}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {workers[0].log_tail(60)}"
        time.sleep(0.5)  # polling an observable outcome of separate processes
    return got


def _quiet():
    from rich.console import Console

    return Console(quiet=True)


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def _free_ports(n: int) -> int:
    """A base port with the n ports from it free (workers serve metrics on base, base + 1, ...)."""
    for _ in range(50):
        base = stack.free_port()
        if base + n < 65535 and all(_port_free(base + i) for i in range(n)):
            return base
    raise RuntimeError("no run of free ports")


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _scrape_all(base: int, n: int) -> dict[tuple[str, str, str], float]:
    """(sample name, stage, outcome or event) -> value summed over every worker's endpoint that answers."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    out: dict[tuple[str, str, str], float] = {}
    for port in range(base, base + n):
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        except OSError:
            continue  # the packer serves no endpoint yet
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if "stage" in sample.labels or sample.name.startswith("elong_trainer"):
                    kind = (sample.labels.get("outcome") or sample.labels.get("event")
                            or sample.labels.get("bucket") or "")
                    key = (sample.name, sample.labels.get("stage", ""), kind)
                    out[key] = out.get(key, 0.0) + sample.value
    return out
