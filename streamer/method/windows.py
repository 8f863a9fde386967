"""Scoring documents longer than the model's context: overlapping windows, each position once.

The rule: windows of at most max_tokens tokens; the first scores every position it holds, each
later window starts `overlap` tokens before the first position it scores. So position p (whose
score is the model's distribution over token p + 1) is scored exactly once, with its whole prefix
when p < max_tokens - 1, and otherwise with at least overlap + 1 tokens of left context (itself
and the overlap tokens before it). Nothing is truncated; the cost is about
max_tokens / (max_tokens - 1 - overlap) forwards per max_tokens tokens.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Window:
    start: int  # first token the window sees
    end: int  # one past the last token it sees
    first: int  # first position it scores; it scores positions first .. end - 2

    @property
    def scored(self) -> range:
        return range(self.first, self.end - 1)


def default_overlap(max_tokens: int) -> int:
    """The overlap when the configuration gives none: a quarter of the window."""
    return max_tokens // 4


def plan_windows(n_tokens: int, max_tokens: int, overlap: int) -> list[Window]:
    if max_tokens < 2 or not 0 <= overlap < max_tokens - 1:
        raise ValueError(f"need max_tokens >= 2 and 0 <= overlap < max_tokens - 1, got {max_tokens}, {overlap}")
    if n_tokens <= max_tokens:
        return [Window(0, n_tokens, 0)]
    windows = []
    start = first = 0
    while True:
        end = min(start + max_tokens, n_tokens)
        windows.append(Window(start, end, first))
        if end == n_tokens:
            return windows
        first = end - 1
        start = first - overlap
