import os
import random
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# the constructed corpora the benches measure with (bench/corpora), importable as bench.corpora.*
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Hypothesis, one verdict per commit. "ci" (CI=true, as .ci/run runs): derandomized, so every run of
# a commit draws the same cases, and any failure prints the blob that replays it
# (@reproduce_failure). "dev" (elsewhere): random draws, the same printed blob, and the example
# database in the checkout's .hypothesis/, so a developer's rerun tries every failing case first.
# HYPOTHESIS_PROFILE=ci runs CI's exact cases here. A case that once failed on noise is pinned
# with @example in its test.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", print_blob=True, database=DirectoryBasedExampleDatabase(
    str(Path(__file__).resolve().parents[1] / ".hypothesis" / "examples")))
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))

MODEL_CACHE_ENV = "ENTROPYLONG_TEST_MODEL_CACHE"
# The fast tier (`bash deploy/dev.sh test fast`) leaves out what starts servers and worker processes
# (tests/integration) and what loads a real model or engine.
REAL_MODEL_FILES = {"test_vllm_engine.py", "test_models.py", "test_report.py"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        path = Path(str(item.fspath))
        if "integration" in path.parts:
            item.add_marker(pytest.mark.integration)
        if path.name in REAL_MODEL_FILES or "smollm2" in item.fixturenames or any(
                word in item.name for word in ("smollm2", "real_small_model")):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory) -> Path:
    """One model cache for the whole run (the SmolLM2 conversion and the tiny model are made once)."""
    cached = os.environ.get(MODEL_CACHE_ENV)
    return Path(cached) if cached else tmp_path_factory.mktemp("models")


@pytest.fixture
def make_shards():
    """make_shards(root, count) -> [(shard_id, path)]: shards of two 128-token packed sequences of
    random samples (each starting with the separator 0), written by the real ShardSet."""
    from entropylong_streamer.method.packing import Sequence
    from entropylong_streamer.method.samples import Sample
    from entropylong_streamer.services.shards import ShardSet

    def write(root, count, seed=0, seq_len=128):
        rng = random.Random(seed)
        shards = ShardSet(root, "v")
        out = []
        for s in range(count):
            sequences = []
            for q in range(2):
                seq = Sequence(seq_len)
                while True:
                    n = rng.randint(8, 40)
                    if seq.used + n > seq_len:
                        break
                    ids = (0, *(rng.randrange(1, 49152) for _ in range(n - 1)))
                    seq.samples.append(Sample(f"d{s}-{q}-{len(seq.samples)}", ids, ()))
                    seq.used += n
                sequences.append(seq)
            entry = shards.write(sequences, "test")
            out.append((entry["shard_id"], entry["path"]))
        return out

    return write
