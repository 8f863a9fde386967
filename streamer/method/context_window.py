"""Which part of a long pool document is the context: the tokens around what retrieval found.

A context is the document a retrieved chunk belongs to, capped at the room [sep C sep D[:anchor]]
leaves in the verifier. When the document is longer than that, the window keeps as many of the
retrieved spans as it can hold, centred on them, not the document's head: the head of a long
manual page is navigation, the retrieved chunk is what the anchor's query matched.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence


def context_window(n: int, spans: Sequence[tuple[int, int]], size: int) -> tuple[int, int]:
    """[start, end) of at most `size` of n tokens covering the most spans [a, b) whole (the earliest
    such group on a tie), with the room left split evenly around them; without spans, the head."""
    if size <= 0:
        return 0, 0
    if n <= size:
        return 0, n
    spans = sorted((max(0, a), min(n, b)) for a, b in spans if a < b and a < n and b > 0)
    if not spans:
        return 0, size
    best: list[tuple[int, int]] = []
    for first, _ in spans:  # a best window can always start at some span's start
        held = [s for s in spans if s[0] >= first and s[1] <= first + size]
        if len(held) > len(best):
            best = held
    if not best:  # every span alone is longer than the window: the start of the first one
        start = spans[0][0]
        return min(start, n - size), min(start, n - size) + size
    lo, hi = best[0][0], max(b for _, b in best)
    start = lo - (size - (hi - lo)) // 2
    start = max(0, min(start, n - size))
    return start, start + size


def char_window(offsets: Sequence[tuple[int, int]], window: tuple[int, int]) -> tuple[int, int]:
    """The characters of a token window (offsets: each token's [start, end) in the text)."""
    start, end = window
    if end <= start:
        return 0, 0
    return offsets[start][0], offsets[end - 1][1]


def token_spans(offsets: Sequence[tuple[int, int]], char_spans: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Character spans as token spans: every token that overlaps the span (offsets in text order)."""
    starts = [s for s, _ in offsets]
    ends = [e for _, e in offsets]
    out = []
    for a, b in char_spans:
        first, last = bisect.bisect_right(ends, a), bisect.bisect_left(starts, b)
        if first < last:
            out.append((first, last))
    return out
