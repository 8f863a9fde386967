"""`elong status` fits an 80-column terminal: no header, stage or topic name is cut."""

from rich.console import Console

from entropylong_streamer import status
from entropylong_streamer.cli import status_table
from entropylong_streamer.config import Config
from entropylong_streamer.status import StageStatus

STAGES = ("entropy", "index", "retrieval", "verify", "pack", "trainer")
TOPICS = ("docs", "docs", "anchors", "candidates", "dependencies", "shard-ready")


def test_the_status_table_fits_80_columns_with_large_counts(monkeypatch):
    cfg = Config()
    rows = [StageStatus(stage, cfg.kafka.topic_prefix + topic, "g", 12_345_678, 12_000_000, partitions=64,
                        consumers=16, rate=1234.5) for stage, topic in zip(STAGES, TOPICS, strict=True)]
    monkeypatch.setattr(status, "collect", lambda cfg: rows)
    monkeypatch.setattr(status, "shard_summary", lambda cfg: {
        "shards": 3, "samples": 24, "contexts": 10, "tokens": 9060, "trained_shards": 3, "loss_first": 10.8,
        "loss_last": 7.1, "sample_tokens": {"median": 378.0, "p90": 600.0, "max": 895},
        "dependency_distance": {"median": 245.0, "p90": 372.0, "max": 415}})
    monkeypatch.setattr(status, "outages", lambda cfg: [])
    monkeypatch.setattr(status, "dead_letter_counts", lambda cfg: {})
    console = Console(width=80, record=True, force_terminal=False)
    table, _ = status_table(cfg)
    console.print(table)
    out = console.export_text()
    assert "…" not in out and max(len(line) for line in out.splitlines()) <= 80
    for word in (*STAGES, *TOPICS, "workers", "committed", "12,000,000", "345,678", "1234.5"):
        assert word in out
    assert "sample tokens median 378" in " ".join(out.split())


def test_status_says_which_stage_waits_on_an_outage_and_counts_dead_letters_by_stage_and_reason(monkeypatch):
    import time

    cfg = Config()
    rows = [StageStatus("retrieval", cfg.kafka.topic_prefix + "anchors", "g", 40, 16, partitions=2, consumers=1)]
    monkeypatch.setattr(status, "collect", lambda cfg: rows)
    monkeypatch.setattr(status, "outages", lambda cfg: [{
        "stage": "retrieval", "reason": "vector_store", "since": time.time() - 42, "tries": 7, "pid": 1,
        "error": "vector_store: MilvusException: Fail connecting to server"}])
    monkeypatch.setattr(status, "dead_letter_counts",
                        lambda cfg: {("ingest", "empty text"): 2, ("entropy", "decode"): 1})
    console = Console(width=80, record=True, force_terminal=False)
    console.print(status_table(cfg)[0])
    out = " ".join(console.export_text().split())
    assert "waiting: retrieval on its vector store for 42 s (7 tries)" in out
    assert "dead letters 3: entropy decode 1, ingest empty text 2" in out
