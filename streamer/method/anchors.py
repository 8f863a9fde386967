"""Anchor selection: the positions where the model is most uncertain about the next token.

Every position above tau is an anchor and every anchor is measured. Nearby anchors share one
retrieval query (their windows would largely coincide), but sharing a query never drops an
anchor: facts a few tokens apart (a name, a year, a town on consecutive lines) are separate
dependencies, each verified at its own position.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AnchorParams:
    alpha: float = 2.0
    min_position: int = 8
    max_anchors: int = 512
    merge_distance: int = 16  # anchors closer than this to a higher-entropy one share its query


@dataclass(frozen=True)
class Selection:
    """Anchors in document order; leaders[i] is the anchor whose query anchors[i] uses (itself for a
    leader). capped: anchors above tau left out by max_anchors (the lowest-entropy ones); layout:
    positions above tau left out because their token is layout (is_layout)."""

    anchors: list[int]
    leaders: list[int]
    capped: int = 0
    layout: int = 0


def is_layout(token_text: str) -> bool:
    """A token with no letter or digit: whitespace, punctuation, symbols, markup. Its entropy is layout
    (a tab after a navigation bar, the newline that ends a list item, a closing bracket), which no
    distant context resolves: it is never an anchor."""
    return not any(c.isalnum() for c in token_text)


def threshold(entropy: np.ndarray, alpha: float) -> float:
    """tau = mean(H) + alpha * std(H) over the document."""
    return float(entropy.mean() + alpha * entropy.std())


def select_anchors(entropy: np.ndarray, params: AnchorParams, layout: np.ndarray | None = None) -> Selection:
    """Token indices t with H_t > tau, t >= min_position, not layout[t]; tau over positions >= min_position.

    The first positions are excluded from the statistics too: with almost no context their entropy
    is high in every document, and would lift tau above every later uncertainty in a short one.
    Layout tokens stay in the statistics (tau is the paper's, over the whole document); they are
    only never anchors.

    At most max_anchors of the highest entropy are kept. Taken in decreasing entropy, an anchor
    closer than merge_distance to an earlier leader shares that leader's query; otherwise it leads.
    """
    h = np.asarray(entropy, dtype=np.float64)
    if h.size <= params.min_position:
        return Selection([], [])
    tau = threshold(h[params.min_position :], params.alpha)
    above = np.flatnonzero(h[params.min_position :] > tau) + params.min_position
    skipped = 0
    if layout is not None:
        content = ~np.asarray(layout, dtype=bool)[above]
        skipped = int(above.size - content.sum())
        above = above[content]
    ranked = sorted(above.tolist(), key=lambda i: (-h[i], i))
    kept = ranked[: params.max_anchors]
    leader_of: dict[int, int] = {}
    leaders: list[int] = []
    for t in kept:
        near = next((k for k in leaders if abs(t - k) < params.merge_distance), None)
        if near is None:
            leaders.append(t)
            near = t
        leader_of[t] = near
    anchors = sorted(kept)
    return Selection(anchors, [leader_of[t] for t in anchors], len(ranked) - len(kept), skipped)


def query_span(t: int, window: int, n_tokens: int) -> tuple[int, int]:
    """Token slice [t - w, t + w] clipped to the document, end exclusive."""
    return max(0, t - window), min(n_tokens, t + window + 1)
