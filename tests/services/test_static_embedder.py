"""MiniLM distilled once into a static embedder (retrieval.embedder = "minilm-static"): built offline in
the models cache, reused after, and it still ranks a text's paraphrase above unrelated text."""

import time

import numpy as np
import pytest

from entropylong_streamer.services.embedder import STATIC, STATIC_DIMS, StaticEmbedder


@pytest.mark.slow
def test_the_static_embedder_is_distilled_once_and_ranks_related_text_first(model_cache):
    first = StaticEmbedder(model_cache)  # distils MiniLM (about 2 minutes on 2 cores) unless cached
    assert (model_cache / f"{STATIC}-{STATIC_DIMS}").is_dir()
    t0 = time.perf_counter()
    again = StaticEmbedder(model_cache)  # from the cache: no second distillation
    assert time.perf_counter() - t0 < 30
    texts = ["the view pg_stat_activity shows one row per server process",
             "pg_stat_activity has a row for each server process",
             "otters build a den near the river and eat fish"]
    v = again.embed(texts)
    assert v.shape == (3, STATIC_DIMS) == (3, first.dim) and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.1
    np.testing.assert_allclose(first.embed(texts), v, rtol=1e-6)
