"""A batch build survives its own interruption: `elong build` SIGKILLed mid-verify and run again spends only
the LM work left (its measurements were durable per batch, its pool documents indexed) and writes the
dependencies and samples a build that was never interrupted writes."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from noise import EXACT_DI
from stack_helpers import jsonl_rows, shard_samples, small_config

from entropylong_streamer.batch import build
from entropylong_streamer.demo_corpus import write_demo_corpus
from entropylong_streamer.stack_control import WORKER_MODULE, write_worker_config

DOCS_N = 12


def config(root: Path, model_cache: Path):
    cfg = small_config(root / "data", model_cache).copy_with({"agents.max_batch": {"verify": 1},
                                                               "retrieval.chunk_tokens": 96})
    (root / "data").mkdir(parents=True)
    (root / "data" / "models").symlink_to(model_cache, target_is_directory=True)
    return cfg


def test_a_build_killed_mid_verify_spends_only_what_is_left_and_writes_the_same(tmp_path, model_cache):
    corpus = tmp_path / "docs.jsonl"
    write_demo_corpus(corpus, DOCS_N, min_chars=300, max_chars=900)
    cfg = config(tmp_path / "resumed", model_cache)
    out = tmp_path / "resumed" / "out"
    log = cfg.paths.cache("measurements").with_name(cfg.paths.cache("measurements").name + ".log")
    argv = [sys.executable, "-m", WORKER_MODULE, "build", "--docs", str(corpus), "--corpus", str(corpus),
            "--out", str(out), "--config", str(write_worker_config(cfg))]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 300
    while not (log.exists() and log.stat().st_size):  # the first verify batch's measurements are on disk
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline, "verify never started"
        time.sleep(0.01)  # polling a file another process writes
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "dependencies.jsonl").exists(), "the build ended before the kill: nothing was tested"

    resumed = build(cfg, [corpus], [corpus], out, show_progress=False)
    ref_cfg = config(tmp_path / "clean", model_cache)
    clean = build(ref_cfg, [corpus], [corpus], tmp_path / "clean" / "out", show_progress=False)

    # the work done before the kill is not done again
    assert resumed.stats["entropy"].get("lm_tokens", 0) == 0 < clean.stats["entropy"]["lm_tokens"]
    assert resumed.stats["index"]["done_before"] == DOCS_N  # the corpus, indexed before the kill
    r, c = resumed.stats["verify"], clean.stats["verify"]
    assert 0 < r["pairs_cached"] and r["pairs_measured"] + r["pairs_cached"] == c["pairs_measured"]
    assert 0 < r["lm_tokens"] < c["lm_tokens"]
    # and the output is the same
    rows = {(x["doc_id"], x["context_id"], x["anchor"]): x for x in jsonl_rows(out / "dependencies.jsonl")}
    ref = {(x["doc_id"], x["context_id"], x["anchor"]): x for x in
           jsonl_rows(tmp_path / "clean" / "out" / "dependencies.jsonl")}
    assert rows.keys() == ref.keys() and rows
    assert all(rows[k]["accepted"] == ref[k]["accepted"] and abs(rows[k]["dI"] - ref[k]["dI"]) <= EXACT_DI
               for k in rows)
    assert shard_samples(cfg.copy_with({"data_dir": str(out)})) == shard_samples(
        ref_cfg.copy_with({"data_dir": str(tmp_path / "clean" / "out")}))
