"""Stand-ins for the LM and the embedder (model.engine = "null", retrieval.embedder = "null"): no
weights, almost no compute, deterministic output. They measure the plumbing's own ceiling (topics,
workers, pool, shards) with the model out of the way; they decide nothing about data (a context
never changes a null H, so nothing is accepted)."""

from __future__ import annotations

import hashlib
import re

import numpy as np

from .engine_base import EngineBase, Piece
from .lm import Scores


class NullEngine(EngineBase):
    """The model's tokenizer, and H, NLL from a hash of each (token, next token) pair: 0 to 5 nats."""

    dtype = "null"  # part of every measurement's key: null scores never meet a real model's

    def __init__(self, tokenizer, max_tokens: int, overlap: int | None) -> None:
        super().__init__(tokenizer, "null", max_tokens, overlap)
        self.vocab_size = len(tokenizer)

    def _score_pieces(self, pieces: list[Piece]) -> tuple[list[Scores], int]:
        out = []
        for p in pieces:
            here = np.asarray([p.ids[i] for i in p.positions], np.uint64)
            mixed = (here * np.uint64(2654435761) + np.asarray(p.targets, np.uint64) * np.uint64(40503)) % 1000
            h = (mixed / 200.0).astype(np.float32)
            out.append((h, h + np.float32(0.5)))
        return out, sum(len(p.ids) for p in pieces)


class NullEmbedder:
    """A bag of hashed words, normalised: similar texts get similar vectors, at hashing speed."""

    def __init__(self, dim: int = 384) -> None:
        self.dim = dim
        self.texts_embedded = 0

    def embed(self, texts: list[str]) -> np.ndarray:
        self.texts_embedded += len(texts)
        out = np.zeros((len(texts), self.dim), np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                out[i, int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "little") % self.dim] += 1
        out[:, 0] += 1e-3  # an empty text still has a direction
        return out / np.linalg.norm(out, axis=1, keepdims=True)
