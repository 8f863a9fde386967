import os
import random
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

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
