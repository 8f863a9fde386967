"""The measurement cache: H' and NLL' of a (model, document, context, anchor) pair, measured once.

A replay after a change of alpha, w or K re-plans verification; every pair it has measured before
is read from here and only the new ones go through the LM. A key names exactly what H' depends
on: the model (path, dtype, separator), the document's tokens, the context's tokens (after the
length cap) and the anchor index. Keys start with the doc id, so a cache split by the candidates
topic's partitions (streaming: agents/measurement_table.py) holds every pair of its documents.

Batch mode keeps the cache in memory and saves it as one msgpack file beside its output.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

import msgpack
import numpy as np

Measurement = tuple[float, float]  # (H', NLL') at the anchor with the context prepended


def token_digest(ids: Sequence[int]) -> bytes:
    return hashlib.blake2b(np.asarray(ids, dtype="<u4").tobytes(), digest_size=12).digest()


def pair_key(model: str, doc_id: str, doc_digest: bytes, ctx_digest: bytes, anchor: int) -> bytes:
    return msgpack.packb([doc_id, model, doc_digest, ctx_digest, anchor], use_bin_type=True)


def key_doc_id(key: bytes) -> str:
    return msgpack.unpackb(key, raw=False)[0]


class MeasurementCache(Protocol):
    def get(self, key: bytes) -> Measurement | None: ...

    def put(self, items: Iterable[tuple[bytes, Measurement]]) -> None: ...


class MemoryCache:
    """A dict of measurements; save()/load() keep it in one msgpack file between batch runs."""

    def __init__(self) -> None:
        self.data: dict[bytes, Measurement] = {}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self.data)

    def get(self, key: bytes) -> Measurement | None:
        found = self.data.get(key)
        if found is None:
            self.misses += 1
        else:
            self.hits += 1
        return found

    def put(self, items: Iterable[tuple[bytes, Measurement]]) -> None:
        self.data.update(items)

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
            cache.data = {bytes(k): (float(v[0]), float(v[1])) for k, v in rows}
        return cache
