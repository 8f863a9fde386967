"""The LM's measurements, made once: a replay after a threshold change reads them back.

Two kinds, each keyed by exactly what it depends on, never by a threshold:
- scores: a document's per-token (H, NLL) without context (the entropy stage). Key: the model
  (path, dtype, separator, window layout) and the document's tokens. A new alpha, w or anchor
  cap re-selects anchors from these and runs no LM token.
- pair measurements: H' and NLL' of a (document, context, anchor) pair (the verify stage). Key:
  the model, the document's tokens, the context's tokens (after the length cap) and the anchor.
  A new epsilon runs no LM token; a new alpha, w or K measures only the pairs never measured.
Keys start with the doc id, so a cache split by the input topic's partitions (streaming:
agents/changelog_cache.py) holds every measurement of its documents.

Batch mode keeps the caches in memory and saves each as one msgpack file beside its output.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

import msgpack
import numpy as np

Measurement = tuple[float, float]  # (H', NLL') at the anchor with the context prepended
TokenScores = tuple[bytes, bytes]  # a document's H and NLL per token, little-endian float32


def token_digest(ids: Sequence[int]) -> bytes:
    return hashlib.blake2b(np.asarray(ids, dtype="<u4").tobytes(), digest_size=12).digest()


def pair_key(model: str, doc_id: str, doc_digest: bytes, ctx_digest: bytes, anchor: int) -> bytes:
    return msgpack.packb([doc_id, model, doc_digest, ctx_digest, anchor], use_bin_type=True)


def scores_key(model: str, doc_id: str, doc_digest: bytes) -> bytes:
    return msgpack.packb([doc_id, model, doc_digest], use_bin_type=True)


def pack_scores(h: np.ndarray, nll: np.ndarray) -> TokenScores:
    return np.asarray(h, "<f4").tobytes(), np.asarray(nll, "<f4").tobytes()


def unpack_scores(value: TokenScores) -> tuple[np.ndarray, np.ndarray]:
    return np.frombuffer(value[0], "<f4").astype(np.float32), np.frombuffer(value[1], "<f4").astype(np.float32)


def key_doc_id(key: bytes) -> str:
    return msgpack.unpackb(key, raw=False)[0]


class MeasurementCache(Protocol):
    def get(self, key: bytes) -> Any: ...

    def put(self, items: Iterable[tuple[bytes, Any]]) -> None: ...


class MemoryCache:
    """A dict of measurements (tuples of floats or bytes); save()/load() keep it in one msgpack
    file between batch runs."""

    def __init__(self) -> None:
        self.data: dict[bytes, tuple] = {}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self.data)

    def get(self, key: bytes) -> Any:
        found = self.data.get(key)
        if found is None:
            self.misses += 1
        else:
            self.hits += 1
        return found

    def put(self, items: Iterable[tuple[bytes, tuple]]) -> None:
        self.data.update(items)

    # A worker's cache reads up before a batch and makes the batch's measurements durable after it
    # (agents/changelog_cache.py); in one process the dict is all there is, saved at the end.
    def catch_up(self, partitions: set[int]) -> int:
        return 0

    def flush(self, partition_of: dict[str, int]) -> None:
        pass

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as fh:
            msgpack.pack([[k, list(v)] for k, v in self.data.items()], fh, use_bin_type=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> MemoryCache:
        cache = cls()
        if path.exists():
            with open(path, "rb") as fh:
                rows = msgpack.unpack(fh, raw=False)
            cache.data = {bytes(k): tuple(v) for k, v in rows}
        return cache
