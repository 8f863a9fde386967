"""Adding a stage is an entry in the registry and the stage's own code: a toy stage, registered
by a test, runs in batch mode (`build`) and as a streaming worker with nothing else changed, and
its topic, consumer group, status row, dead letters and stats come from the registry."""

import json
import sys
from pathlib import Path

import pytest
import toy_stage
from stack_helpers import quiet, read_topic, small_config, wait_for

from entropylong_streamer import registry
from entropylong_streamer.batch import build
from entropylong_streamer.ingest import ingest_paths
from entropylong_streamer.services import processes, stack
from entropylong_streamer.stack_control import run_dir, stop_all, write_worker_config
from entropylong_streamer.status import collect, ensure_pipeline_topics
from entropylong_streamer.topics import DEAD_LETTER

TEXTS = ["one two three", *(" ".join(f"word{j}" for j in range(5 + 3 * i)) for i in range(6))]


@pytest.fixture
def toy_registered(monkeypatch):
    monkeypatch.setattr(registry, "STAGES", registry.STAGES)  # restored after the test
    toy_stage.register()


def corpus(path: Path) -> Path:
    path.write_text("".join(json.dumps({"id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(TEXTS)))
    return path


def expected_words() -> list[int]:
    return sorted(len(t.split()) for t in TEXTS if len(t.split()) >= toy_stage.MIN_WORDS)


def test_a_registered_toy_stage_runs_in_batch_mode(tmp_path, model_cache, toy_registered):
    cfg = small_config(tmp_path / "data", model_cache).copy_with({
        "model.engine": "null", "retrieval.embedder": "null", "data_dir": str(tmp_path / "data")})
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "models").symlink_to(model_cache, target_is_directory=True)
    report = build(cfg, [corpus(tmp_path / "docs.jsonl")], [], tmp_path / "out", show_progress=False)
    assert [s.name for s in registry.active(cfg)][:2] == ["entropy", "wordcount"]
    stats = report.stats["wordcount"]
    assert stats["forwarded"] == len(expected_words()) and stats["dropped_too_short"] == 1
    assert report.records["doc_words"] == len(expected_words())
    assert [(d["stage"], d["reason"]) for d in report.dead_letters if d["stage"] == "wordcount"] == [
        ("wordcount", "wordcount: too_short: 3 words")]


def test_a_registered_toy_stage_runs_as_a_streaming_worker(tmp_path, model_cache, toy_registered):
    cfg = small_config(tmp_path / "data", model_cache)
    Path(cfg.data_dir).mkdir(parents=True)
    port = int(cfg.kafka.bootstrap_servers.rsplit(":", 1)[1])
    stack.start_broker(Path(cfg.data_dir) / "broker", port, run_dir(cfg))
    try:
        ensure_pipeline_topics(cfg)  # the toy's topic too: its sink is in the registry
        conf = write_worker_config(cfg)
        # the worker process registers the toy before the CLI runs, as a plugin's import would
        code = ("import sys; sys.path.insert(0, sys.argv[1]); import toy_stage; toy_stage.register(); "
                "from entropylong_streamer.cli import app; app(sys.argv[2:])")
        worker = processes.ManagedProcess("worker-wordcount-0", [
            sys.executable, "-c", code, str(Path(__file__).parent), "worker", "wordcount", "--config", str(conf)],
            run_dir(cfg))
        assert ingest_paths(cfg, [corpus(tmp_path / "docs.jsonl")], console=quiet())[0] == len(TEXTS)
        got = wait_for("word counts", lambda: (w := read_topic(cfg, toy_stage.WORDS)) and
                       len(w) >= len(expected_words()) and w, [worker])
        assert sorted(w.words for w in got) == expected_words()
        assert {w.config_version for w in got} == {toy_stage.TOY.version(cfg)}  # derived by the registry
        dead = wait_for("the short document's dead letter",
                        lambda: [d for d in read_topic(cfg, DEAD_LETTER) if d.stage == "wordcount"], [worker])
        assert [d.reason for d in dead] == ["wordcount: too_short: 3 words"]
        row = wait_for("its group committed", lambda: (r := {r.stage: r for r in collect(cfg)}["wordcount"]).lag == 0
                       and r, [worker])
        assert row.group == toy_stage.TOY.group(cfg) and row.produced == len(TEXTS)
    finally:
        stop_all(cfg)
