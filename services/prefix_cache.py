"""Keys and values of shared prompt prefixes kept across engine calls, least recently used out first.

Verification starts every document's forward with [sep C]: documents of different batches that
retrieved the same context C would each run it again. Within a byte budget, the engine keeps the
prefix's keys and values and a later batch continues from them, so C is read once while it stays.
"""

from __future__ import annotations

from typing import Any

from cachetools import LRUCache


def cache_bytes(cache: Any) -> int:
    """The bytes a transformers cache's key and value tensors hold."""
    return sum(t.numel() * t.element_size() for layer in cache.layers
               for t in (getattr(layer, "keys", None), getattr(layer, "values", None)) if t is not None)


class PrefixCache:
    """Prefix token ids -> a transformers cache, within max_bytes (cachetools' LRU, sized in bytes)."""

    def __init__(self, max_bytes: int) -> None:
        self._lru: LRUCache = LRUCache(maxsize=max_bytes, getsizeof=lambda entry: entry[1])

    def __len__(self) -> int:
        return len(self._lru)

    def __contains__(self, key: tuple[int, ...]) -> bool:
        return key in self._lru

    @property
    def bytes(self) -> int:
        return int(self._lru.currsize)

    def get(self, key: tuple[int, ...]) -> Any | None:
        entry = self._lru.get(key)  # a hit becomes the most recent
        return None if entry is None else entry[0]

    def put(self, key: tuple[int, ...], cache: Any, nbytes: int) -> None:
        """Keep it unless it alone exceeds the budget; the least recently used make room."""
        if nbytes > self._lru.maxsize or key in self._lru:
            return
        self._lru[key] = (cache, nbytes)
