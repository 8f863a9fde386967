"""The whole pipeline as separate processes on the real broker and milvus-lite, against batch mode."""

import json
import time
from pathlib import Path

import pytest
from noise import EXACT_DI
from stack_helpers import (
    free_ports,
    jsonl_rows,
    quiet,
    read_topic,
    scrape_all,
    shard_samples,
    small_config,
    wait_for,
)

from entropylong_streamer import dead_letters as dl
from entropylong_streamer.agents import kafka_clients as kc
from entropylong_streamer.batch import build, dependency_rows
from entropylong_streamer.demo_corpus import write_demo_corpus
from entropylong_streamer.ingest import ingest_paths
from entropylong_streamer.pipeline import Pipeline
from entropylong_streamer.sources import BadRow, read_documents
from entropylong_streamer.stack_control import start_servers, start_workers, stop_all
from entropylong_streamer.status import collect, shard_summary
from entropylong_streamer.topics import ANCHORS, DEAD_LETTER, DEPENDENCIES, DOCS

DOCS_N = 10


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
    cfg = small_config(tmp_path / "stream", model_cache).copy_with({"metrics.port": free_ports(6),
                                                                     "retrieval.rounds": 2})
    (Path(cfg.data_dir) / "models").parent.mkdir(parents=True, exist_ok=True)
    (Path(cfg.data_dir) / "models").symlink_to(model_cache, target_is_directory=True)
    docs = [d for d in read_documents([corpus]) if not isinstance(d, BadRow)]
    expected = {d.doc_id for d in docs}
    assert len(expected) == DOCS_N

    try:
        start_servers(cfg)
        Pipeline(cfg).stage("index").process(docs)  # bootstrap the pool, as `elong index` does
        workers = start_workers(cfg)
        sent, skipped, bad = ingest_paths(cfg, [corpus], console=quiet())
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
        losses = jsonl_rows(Path(cfg.data_dir) / "trainer" / "loss.jsonl")
        assert losses and all(x["steps"] > 0 for x in losses)
        stream_rows = sorted((r["doc_id"], r["context_id"], r["anchor"], r["accepted"])
                             for rec in read_topic(cfg, DEPENDENCIES) for r in dependency_rows(rec))
        stream_dI = {(r["doc_id"], r["context_id"], r["anchor"]): r["dI"]
                     for rec in read_topic(cfg, DEPENDENCIES) for r in dependency_rows(rec)}
        # The entropy worker's Prometheus counter: every document's tokens, run through the LM once.
        scraped = scrape_all(cfg.metrics.port, len(workers))
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
        while scrape_all(cfg.metrics.port, len(workers)).get(("elong_trainer_shards_total", "", ""), 0) < s["shards"]:
            assert time.monotonic() < deadline, "the trainer's metrics never caught up"
            time.sleep(0.5)
        scraped = scrape_all(cfg.metrics.port, len(workers))
        losses = jsonl_rows(Path(cfg.data_dir) / "trainer" / "loss.jsonl")  # written before the metrics
        assert scraped[("elong_trainer_shards_total", "", "")] == s["shards"] == len(losses)
        assert scraped[("elong_trainer_tokens_total", "", "")] == sum(x["tokens"] for x in losses) > 0
        assert scraped[("elong_trainer_loss_by_position", "", "0")] > 0
        # `elong dead-letters --redrive --stage entropy`: the junk record goes back to the docs topic, and the
        # entropy worker dead-letters it again; ingest's bad row has no record to send back
        letters = dl.from_topic(cfg)
        chosen, stuck = dl.redrivable(cfg, letters, "entropy", None)
        assert [(x.kind, x.payload) for x in chosen] == [("decode", b"\xc1 not msgpack")] and stuck == 0
        assert dl.redrivable(cfg, letters, "ingest", None) == ([], 1)
        dl.redrive(cfg, chosen)
        wait_for("the redriven record dead-lettered again",
                 lambda: dl.by_reason(dl.from_topic(cfg))[("entropy", "decode")] == 2, workers)
    finally:
        stop_all(cfg)
    for w in workers:
        assert not w.alive()

    bcfg = cfg.copy_with({"data_dir": str(tmp_path / "batch")})
    (tmp_path / "batch").mkdir()
    (tmp_path / "batch" / "models").symlink_to(model_cache, target_is_directory=True)
    report = build(bcfg, [corpus], [corpus], tmp_path / "batch" / "out", show_progress=False)
    rows = jsonl_rows(tmp_path / "batch" / "out" / "dependencies.jsonl")
    assert sorted((r["doc_id"], r["context_id"], r["anchor"], r["accepted"]) for r in rows) == stream_rows
    for r in rows:
        # the float64 tiny model: the two runs' dI differ by their scores' fp32 rounding (tests/noise.py)
        assert abs(r["dI"] - stream_dI[(r["doc_id"], r["context_id"], r["anchor"])]) <= EXACT_DI
    assert report.documents == DOCS_N and rows
    assert shard_samples(bcfg.copy_with({"data_dir": str(tmp_path / "batch" / "out")})) == packed


