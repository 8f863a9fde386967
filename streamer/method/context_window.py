"""Which part of a long pool document is the context: the tokens around what retrieval found.

A context is the document a retrieved chunk belongs to, capped at the room [sep C sep D[:anchor]]
leaves in the verifier. When the document is longer than that, the window keeps as many of the
retrieved spans as it can hold, centred on them, not the document's head: the head of a long
manual page is navigation, the retrieved chunk is what the anchor's query matched.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class PairLayout:
    """[sep C sep D[:t + 1]]: a context, then the document up to an anchor t, each after the separator, in
    one forward of max_tokens. Retrieval cuts C to the room this leaves; verification measures every pair
    in it; a sample (method/samples.py, max_tokens pack.sample_tokens) lays its contexts and document out
    as the same pieces, [sep C_1 ... sep C_m sep D]."""

    separator: tuple[int, ...]
    max_tokens: int

    def piece(self, ids: Sequence[int]) -> list[int]:
        """[sep ids]: how every context and the document enter a forward or a sample."""
        return [*self.separator, *ids]

    def cost(self, n: int) -> int:
        """The tokens a piece of n tokens takes."""
        return len(self.separator) + n

    def room(self, last_anchor: int) -> int:
        """Tokens of C that fit beside D[:last_anchor + 1] (0 when none do)."""
        return max(0, self.max_tokens - (last_anchor + 1) - 2 * len(self.separator))

    def last_anchor(self, context_tokens: int) -> int:
        """The last anchor of D a forward with a context of context_tokens holds."""
        return self.max_tokens - 2 * len(self.separator) - context_tokens - 1

    def last_alone(self) -> int:
        """The last position of D that [sep D[:u + 1]], the document without context, holds."""
        return self.max_tokens - len(self.separator) - 1

    def forward(self, context: Sequence[int], doc: Sequence[int], last: int) -> list[int]:
        """[sep C sep D[:last + 1]]."""
        return self.piece(context) + self.piece(doc[: last + 1])

    def doc_logit(self, context_tokens: int) -> int:
        """Where in the forward the logits that predict document token 0 are (token t: this + t)."""
        return 2 * len(self.separator) + context_tokens - 1

    def prefix(self, context_tokens: int) -> int:
        """[sep C]: what every document that retrieved C shares."""
        return len(self.separator) + context_tokens


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
