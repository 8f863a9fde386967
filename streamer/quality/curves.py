"""Cross-entropy of a document's tokens as a function of how much preceding context the model sees.

At context length L every document is scored after the last min(L, P, R) tokens of each
condition's prefix (P: the document's verified prefix length, the same budget for all three; R:
what the scoring model's context holds beside [sep D]), so every point averages over the same
documents and the same context tokens per condition. L = 0 (no context) is one forward per
document, shared by the three conditions. A sample longer than R is scored on its last R context
tokens, and the report says how many were.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from entropylong_streamer.services.lm import LMEngine, ScoreRequest

from .contexts import CONDITIONS, Prefixes

FULL = "full"


def length_grid(max_prefix: int, base: int = 16, factor: int = 4) -> list[int | str]:
    """0, then base * factor^k below the longest prefix, then "full" (each document's whole prefix)."""
    grid: list[int | str] = [0]
    n = base
    while n < max_prefix:
        grid.append(n)
        n *= factor
    return [*grid, FULL]


def effective_length(length: int | str, prefix_len: int, room: int | None = None) -> int:
    seen = prefix_len if length == FULL else min(int(length), prefix_len)
    return seen if room is None else max(0, min(seen, room))


def room_beside(doc_len: int, separator: tuple[int, ...], max_tokens: int | None) -> int | None:
    """Context tokens a max_tokens forward holds before [sep D] (None: no limit)."""
    return None if max_tokens is None else max(0, max_tokens - len(separator) - doc_len)


def context_request(prefix: Sequence[int], doc: Sequence[int], separator: tuple[int, ...],
                    length: int) -> ScoreRequest:
    """Score every document token after the last `length` prefix tokens: [ctx sep D]; position
    len(ctx) + len(sep) - 1 + j predicts D[j]."""
    ctx = tuple(prefix[len(prefix) - length:]) if length else ()
    first = len(ctx) + len(separator) - 1
    return ScoreRequest([*ctx, *separator, *doc], positions=range(first, first + len(doc)))


@dataclass
class DocCurves:
    """Per document: NLL of every document token at each (condition, grid length)."""

    prefixes: Prefixes
    room: int | None = None  # context tokens the scoring model holds beside [sep D]
    nll: dict[tuple[str, int | str], np.ndarray] = field(default_factory=dict)
    known: dict[tuple[str, int], np.ndarray] = field(default_factory=dict)  # NLL by (condition, context tokens)

    def seen(self, length: int | str) -> int:
        return effective_length(length, len(self.prefixes.verified), self.room)


def requests_of(dc: DocCurves, grid: Sequence[int | str]) -> list[tuple[str, int]]:
    """The distinct forwards a document's curves need, as (condition, context tokens): no context
    is one forward for all three conditions, and lengths beyond its prefix are its full prefix."""
    keys = {(CONDITIONS[0] if (e := dc.seen(length)) == 0 else cond, e): None
            for cond in CONDITIONS for length in grid}
    return list(keys)


def forward_tokens(dc: DocCurves, key: tuple[str, int], separator: tuple[int, ...]) -> int:
    return key[1] + len(separator) + len(dc.prefixes.doc)


def lm_tokens(dc: DocCurves, grid: Sequence[int | str], separator: tuple[int, ...]) -> int:
    """What measuring the document costs: its forwards' tokens (the known no-context one excluded)."""
    return sum(forward_tokens(dc, k, separator) for k in requests_of(dc, grid) if k not in dc.known)


def measure(engine: LMEngine, docs: Sequence[Prefixes] | Sequence[DocCurves], grid: Sequence[int | str],
            separator: tuple[int, ...], batch_docs: int = 4,
            advance: Callable[[int, int], None] | None = None) -> list[DocCurves]:
    """Every document at every grid length under every condition. Identical inputs run once, and
    what a DocCurves already knows (the no-context scores the entropy stage measured) is not run
    again. Contexts are cut to what the engine's max_tokens holds. advance(documents, LM tokens)
    after each group of batch_docs documents."""
    limit = getattr(engine, "max_tokens", None)
    out = [p if isinstance(p, DocCurves) else DocCurves(p, room_beside(len(p.doc), separator, limit)) for p in docs]
    for start in range(0, len(out), batch_docs):
        group = out[start:start + batch_docs]
        todo = [(dc, key) for dc in group for key in requests_of(dc, grid) if key not in dc.known]
        requests = [context_request(dc.prefixes.of(key[0]), dc.prefixes.doc, separator, key[1]) for dc, key in todo]
        for (dc, key), (_, nll) in zip(todo, engine.score_many(requests) if requests else [], strict=True):
            dc.known[key] = nll
        for dc in group:
            for cond in CONDITIONS:
                for length in grid:
                    e = dc.seen(length)
                    dc.nll[(cond, length)] = dc.known[(CONDITIONS[0] if e == 0 else cond, e)]
        if advance is not None:
            advance(len(group), sum(forward_tokens(dc, key, separator) for dc, key in todo))
    return out


@dataclass
class Plan:
    """The documents and lengths an LM budget allows, and what it left out."""

    curves: list[DocCurves]
    grid: list[int | str]
    lm_tokens: int
    left_out_documents: int = 0
    left_out_lengths: list[int | str] = field(default_factory=list)
    needed: int = 0  # tokens the first document alone needs at the shortest grid (when none fit)


def fit_budget(curves: Sequence[DocCurves], grid: Sequence[int | str], separator: tuple[int, ...],
               budget: int | None) -> Plan:
    """The grid loses its longest fixed lengths (0 and full always stay) until the first document
    fits; then documents are taken in their order (a stable random one) until the next would pass
    the budget. Stopping there, rather than skipping to cheaper documents, keeps short documents
    from being favoured."""
    grid = list(grid)
    if budget is None:
        return Plan(list(curves), grid, sum(lm_tokens(dc, grid, separator) for dc in curves))
    dropped: list[int | str] = []
    while curves and lm_tokens(curves[0], grid, separator) > budget and len(grid) > 2:
        dropped.append(grid.pop(-2))
    kept, total = [], 0
    for dc in curves:
        cost = lm_tokens(dc, grid, separator)
        if total + cost > budget:
            break
        kept.append(dc)
        total += cost
    needed = lm_tokens(curves[0], grid, separator) if curves and not kept else 0
    return Plan(kept, grid, total, len(curves) - len(kept), dropped[::-1], needed)  # shortest first


def _mean(values: list[np.ndarray]) -> float | None:
    total = sum(len(v) for v in values)
    return float(sum(float(v.sum()) for v in values) / total) if total else None


def _at(dc: DocCurves, cond: str, length: int | str, where: str) -> np.ndarray:
    v = dc.nll[(cond, length)]
    return v if where == "all" else v[list(dc.prefixes.anchors)]


def summarize(curves: Sequence[DocCurves], grid: Sequence[int | str]) -> list[dict]:
    """One point per grid length: mean CE (nats per token) over all document tokens and over the
    anchor positions, per condition, and each baseline's gap to verified (baseline minus verified,
    with the standard error over documents of the per-document gap)."""
    points = []
    for length in grid:
        ctx_tokens = [dc.seen(length) for dc in curves]
        point: dict = {"context_tokens": length,
                       "mean_context_tokens": float(np.mean(ctx_tokens)) if ctx_tokens else 0.0}
        for where in ("all", "anchors"):
            ce = {c: _mean([_at(dc, c, length, where) for dc in curves]) for c in CONDITIONS}
            gaps = {}
            for base in CONDITIONS[1:]:
                per_doc = [float(_at(dc, base, length, where).mean() - _at(dc, "verified", length, where).mean())
                           for dc in curves if len(_at(dc, base, length, where))]
                gaps[base] = {
                    "gap": None if ce[base] is None or ce["verified"] is None else ce[base] - ce["verified"],
                    "se": float(np.std(per_doc, ddof=1) / np.sqrt(len(per_doc))) if len(per_doc) > 1 else None,
                }
            point[where] = {"ce": ce, "gap_to_verified": gaps}
        points.append(point)
    return points
