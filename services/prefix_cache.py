"""Keys and values of shared prompt prefixes kept across engine calls, least recently used out first.

Verification starts every document's forward with [sep C]: documents of different batches that
retrieved the same context C would each run it again. Within a byte budget, the engine keeps the
prefix's keys and values and a later batch continues from them, so C is read once while it stays.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any


def cache_bytes(cache: Any) -> int:
    """The bytes a transformers cache's key and value tensors hold."""
    return sum(t.numel() * t.element_size() for layer in cache.layers
               for t in (getattr(layer, "keys", None), getattr(layer, "values", None)) if t is not None)


class PrefixCache:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[tuple[int, ...], tuple[Any, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: tuple[int, ...]) -> Any | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry[0]

    def put(self, key: tuple[int, ...], cache: Any, nbytes: int) -> None:
        """Keep it unless it alone exceeds the budget; evict the least recently used to make room."""
        if nbytes > self.max_bytes or key in self._entries:
            return
        while self.bytes + nbytes > self.max_bytes:
            _, (_, freed) = self._entries.popitem(last=False)
            self.bytes -= freed
        self._entries[key] = (cache, nbytes)
        self.bytes += nbytes
