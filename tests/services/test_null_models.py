"""The null LM and embedder: deterministic, cheap, and never mistaken for a real model."""

import numpy as np

from entropylong_streamer.config import Config
from entropylong_streamer.pipeline import Pipeline
from entropylong_streamer.services.lm import ScoreRequest
from entropylong_streamer.services.null_models import NullEmbedder


def test_the_null_engine_scores_every_position_through_windows_and_enters_the_versions(tmp_path, model_cache):
    cfg = Config().copy_with({"data_dir": str(tmp_path), "model.path": "tiny", "model.engine": "null",
                              "model.max_tokens": 64})
    (tmp_path / "models").symlink_to(model_cache, target_is_directory=True)
    pipe = Pipeline(cfg)
    ids = pipe.engine.tokenize("the otter eats fish " * 40).ids
    assert len(ids) > 64
    (h, nll), = pipe.engine.score_many([ScoreRequest(ids)])
    assert h.shape == (len(ids) - 1,) and np.all((h >= 0) & (h <= 5)) and np.allclose(nll, h + 0.5)
    (again, _), = pipe.engine.score_many([ScoreRequest(ids)])
    assert np.array_equal(h, again) and pipe.engine.lm_tokens > len(ids)  # windows overlap
    real = cfg.copy_with({"model.engine": "transformers"})
    assert cfg.version("entropy") != real.version("entropy") and cfg.version("verify") != real.version("verify")
    assert ":null:" in pipe.model_key  # the measurement caches' key: a real model's never matches


def test_the_null_embedder_is_normalised_and_puts_shared_words_closer():
    vecs = NullEmbedder().embed(["otter den by the lake", "the lake otter den", "vectors in milvus", ""])
    assert vecs.shape == (4, 384) and np.allclose(np.linalg.norm(vecs, axis=1), 1.0)
    assert vecs[0] @ vecs[1] > vecs[0] @ vecs[2]
