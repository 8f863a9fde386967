import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

MODEL_CACHE_ENV = "ENTROPYLONG_TEST_MODEL_CACHE"


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory) -> Path:
    """One model cache for the whole run (the SmolLM2 conversion and the tiny model are made once)."""
    cached = os.environ.get(MODEL_CACHE_ENV)
    return Path(cached) if cached else tmp_path_factory.mktemp("models")
