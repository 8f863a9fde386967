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
    """A dict of measurements (tuples of floats or bytes), kept between batch runs in one msgpack file
    (save() writes it whole) and, once loaded from a path, a log beside it (PATH.log) to which flush()
    appends each batch's new measurements, fsynced: a build killed half-way keeps what it measured, and
    the next load reads the file and then the log (a record torn by the kill is cut off)."""

    def __init__(self, path: Path | None = None) -> None:
        self.data: dict[bytes, tuple] = {}
        self.hits = 0
        self.misses = 0
        self.path = path
        self._unlogged: list[tuple[bytes, tuple]] = []

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
        items = list(items)
        self.data.update(items)
        if self.path is not None:
            self._unlogged.extend(items)

    # A worker's cache reads up before a batch and makes the batch's measurements durable after it
    # (agents/changelog_cache.py); in one process the log beside the file does the second.
    def catch_up(self, partitions: set[int]) -> int:
        return 0

    def flush(self, partition_of: dict[str, int] | None = None) -> None:
        if self.path is None or not self._unlogged:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(_log_path(self.path), "ab") as fh:
            for key, value in self._unlogged:
                fh.write(msgpack.packb([key, list(value)], use_bin_type=True))
            fh.flush()
            os.fsync(fh.fileno())
        self._unlogged.clear()

    def save(self, path: Path) -> None:
        """The whole cache in one file, written atomically; the log beside it is then folded in."""
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as fh:
            msgpack.pack([[k, list(v)] for k, v in self.data.items()], fh, use_bin_type=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _log_path(path).unlink(missing_ok=True)
        if path == self.path:
            self._unlogged.clear()

    @classmethod
    def load(cls, path: Path) -> MemoryCache:
        cache = cls(path)
        if path.exists():
            with open(path, "rb") as fh:
                rows = msgpack.unpack(fh, raw=False)
            cache.data = {bytes(k): tuple(v) for k, v in rows}
        log = _log_path(path)
        if log.exists():
            with open(log, "r+b") as fh:
                unpacker = msgpack.Unpacker(fh, raw=False)
                kept = 0
                for row in unpacker:
                    if not (isinstance(row, list) and len(row) == 2 and isinstance(row[0], bytes)):
                        break
                    cache.data[row[0]] = tuple(row[1])
                    kept = unpacker.tell()
                fh.truncate(kept)  # a record torn by a kill: appends go on after the last whole one
        return cache


def _log_path(path: Path) -> Path:
    return path.with_name(path.name + ".log")
