"""Multi-hop samples: the verified contexts of a sample's own contexts, level by level (pack.depth).

A context C of a document D is a window of a pool document. Where that document went through the
pipeline as a document too, its verified contexts are known (Verified); those that resolve an anchor
inside C's window can stand before C in D's sample, and theirs before them: every document in the
sample is joined to D by a chain of verified dependencies, and each edge lies inside the sample.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .samples import Piece


@dataclass(frozen=True)
class Verified:
    """What is known of a document that went through verification."""

    doc_id: str
    token_ids: tuple[int, ...]  # its tokens: where a window of it lies
    contexts: tuple[Piece, ...]  # its verified contexts; their anchors index token_ids


@dataclass(eq=False)
class Node:
    """A piece of a sample and what it resolves: a root resolves anchors of the document (indices in
    the document's tokens); a child, anchors of its parent's piece (indices in the parent's document,
    whose window starts at parent_offset there)."""

    piece: Piece
    depth: int
    parent: Node | None = None
    parent_offset: int = 0


def best_first(piece: Piece) -> tuple:
    """Which context stays when room is short: highest dI, then the most anchors resolved."""
    return -piece.score, -len(piece.anchors), piece.piece_id


def locate(window: tuple[int, ...], tokens: tuple[int, ...]) -> int | None:
    """Where a window's tokens lie in its document's tokens (the first place), or None: the window was
    cut from another version of the document, or tokenised apart from it at its edge."""
    if not window or len(window) > len(tokens):
        return None
    w, t = np.asarray(window, np.uint32).tobytes(), np.asarray(tokens, np.uint32).tobytes()
    at = t.find(w)
    while at % 4 and at >= 0:  # a match must start on a token
        at = t.find(w, at + 1)
    return None if at < 0 else at // 4


def grow(roots: list[Node], doc_id: str, known: Callable[[str], Verified | None], depth: int, budget: int,
         cost: Callable[[int], int]) -> list[list[Node]]:
    """The levels 2 to `depth` (the non-empty ones): the verified contexts of the last level's pieces
    whose anchors lie inside those pieces, best first, while `budget` tokens hold them (a piece of n
    tokens takes cost(n): PairLayout.cost, with its separator); no document twice."""
    used = {doc_id} | {n.piece.source_doc for n in roots}
    level, levels = roots, []
    for d in range(2, depth + 1):
        offers: list[tuple[Piece, Node, int]] = []
        for node in sorted(level, key=lambda n: n.piece.piece_id):
            verified = known(node.piece.source_doc)
            at = None if verified is None else locate(node.piece.token_ids, verified.token_ids)
            if at is None:
                continue
            end = at + len(node.piece.token_ids)
            for c in verified.contexts:
                if inside := tuple(t for t in c.anchors if at <= t < end):
                    offers.append((replace(c, anchors=inside), node, at))
        level = []
        for piece, node, at in sorted(offers, key=lambda o: (*best_first(o[0]), o[1].piece.piece_id)):
            if piece.source_doc in used or cost(len(piece.token_ids)) > budget:
                continue
            level.append(Node(piece, d, node, at))
            used.add(piece.source_doc)
            budget -= cost(len(piece.token_ids))
        if not level:
            break
        levels.append(level)
    return levels
