"""Anchor selection: the positions where the model is most uncertain about the next token."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AnchorParams:
    alpha: float = 2.0
    min_position: int = 8
    max_anchors: int = 64
    merge_distance: int = 16


def threshold(entropy: np.ndarray, alpha: float) -> float:
    """tau = mean(H) + alpha * std(H) over the document."""
    return float(entropy.mean() + alpha * entropy.std())


def select_anchors(entropy: np.ndarray, params: AnchorParams) -> list[int]:
    """Token indices t with H_t > tau, t >= min_position; tau over those positions only.

    The first positions are excluded from the statistics too: with almost no context their entropy
    is high in every document, and would lift tau above every later uncertainty in a short one.

    Anchors closer than merge_distance to a higher-entropy anchor are merged into it (their query
    windows would largely coincide), and at most max_anchors of the highest entropy are kept.
    Returned in document order.
    """
    h = np.asarray(entropy, dtype=np.float64)
    if h.size <= params.min_position:
        return []
    tau = threshold(h[params.min_position :], params.alpha)
    above = [t for t in range(params.min_position, h.size) if h[t] > tau]
    kept: list[int] = []
    for t in sorted(above, key=lambda i: (-h[i], i)):
        if all(abs(t - k) >= params.merge_distance for k in kept):
            kept.append(t)
        if len(kept) == params.max_anchors:
            break
    return sorted(kept)


def query_span(t: int, window: int, n_tokens: int) -> tuple[int, int]:
    """Token slice [t - w, t + w] clipped to the document, end exclusive."""
    return max(0, t - window), min(n_tokens, t + window + 1)
