"""Batches of sequences with little padding: sorted by length, split where padding would cost most."""

from __future__ import annotations

from collections.abc import Sequence

# A forward has a fixed cost (Python, kernel launches, small-matrix inefficiency); counted in
# tokens so fewer, slightly padded batches win over many tight ones when padding is cheap.
FORWARD_OVERHEAD_TOKENS = 64


def length_batches(lengths: Sequence[int], budget: int,
                   overhead: int = FORWARD_OVERHEAD_TOKENS) -> list[list[int]]:
    """Indices grouped so that len(batch) * max length <= budget (a longer sequence goes alone),
    minimising padded tokens + overhead per batch.

    In length order the best grouping is contiguous, so a dynamic programme over the sorted
    lengths finds it exactly (O(n * batch size)). Batches come longest first, each led by its
    longest sequence.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    n = len(order)
    best = [0] + [None] * n  # best[k]: cost of batching the k longest
    cut = [0] * (n + 1)
    for end in range(1, n + 1):
        for start in range(end - 1, -1, -1):
            width = lengths[order[start]]
            size = end - start
            if size > 1 and size * width > budget:
                break  # starting earlier only widens the batch
            cost = best[start] + size * width + overhead
            if best[end] is None or cost < best[end]:
                best[end], cut[end] = cost, start
    batches = []
    end = n
    while end:
        batches.append(order[cut[end]:end])
        end = cut[end]
    return batches[::-1]


def padded_tokens(lengths: Sequence[int], batches: list[list[int]]) -> int:
    return sum(len(b) * max(lengths[i] for i in b) for b in batches)
