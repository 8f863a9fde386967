"""The verification criterion: does a context measurably inform the model at an anchor?"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

Measured = tuple[int, float, float, float, float]  # (anchor, H, H', NLL, NLL') of one (context, anchor) pair


def relative_reduction(before: float, after: float) -> float:
    """(before - after) / before; 0 where there was nothing to reduce."""
    return (before - after) / before if before > 0 else 0.0


@dataclass(frozen=True)
class Criterion:
    """
    - "entropy": the paper's dI = (H - H') / H > epsilon.
    - "entropy+loss": and the true next token's NLL falls by more than nll_threshold (relative):
      entropy also falls when a lookalike makes the model confidently wrong.
    - "loss": that NLL fall alone, whatever the entropy does (a small model that becomes likelier
      to copy the right name often stays as uncertain as before).
    - "specific": the NLL fall beyond what the other contexts measured at the same anchor achieve:
      (gain - gain of the max_sources-th best other context) / NLL > nll_threshold, gain = NLL - NLL'
      (a rival that made it worse counts as no gain).
      Format and template knowledge (the leading digits of a year, a label every same-template
      document has) lowers the loss with many contexts and is accepted from none; a fact is
      accepted from the at most max_sources contexts that state it.
    - "shared": the NLL fall beyond what the typical other context achieves at the same anchor:
      (gain - the rival_quantile quantile of the other contexts' gains) / NLL > nll_threshold. A fact
      that several pages state is accepted from each of them as long as they are fewer than
      (1 - rival_quantile) of the contexts measured there; what most contexts share is not. And the
      gain must be at least best_share of the best context's there: the pages that state a fact each
      lower its loss about as much as the best of them, a page that shares only its first pieces (another
      name that starts the same way) does not.
    Under verify.span_tokens > 1, NLL and NLL' are sums over the anchor's span (method/spans.py).
    """

    epsilon: float = 0.4
    kind: Literal["entropy", "entropy+loss", "loss", "specific", "shared"] = "entropy"
    nll_threshold: float = 0.2
    max_sources: int = 1
    rival_quantile: float = 0.75
    best_share: float = 0.0

    @property
    def uses_rivals(self) -> bool:
        """Does a pair's verdict depend on the other contexts measured at its anchor?"""
        return self.kind in ("specific", "shared")

    def accepts(self, h: float, h_ctx: float, nll: float, nll_ctx: float, rival_gain: float = 0.0) -> bool:
        """One pair; rival_gain: for "specific", the gain of the max_sources-th best other context; for
        "shared", the rival_quantile quantile of the other contexts' gains."""
        if self.uses_rivals:
            return nll > 0 and (nll - nll_ctx - max(rival_gain, 0.0)) / nll > self.nll_threshold
        likelier = relative_reduction(nll, nll_ctx) > self.nll_threshold
        if self.kind == "loss":
            return likelier
        return relative_reduction(h, h_ctx) > self.epsilon and (self.kind == "entropy" or likelier)

    def decide(self, pairs: Sequence[Measured]) -> list[bool]:
        """Every measured pair of one document, all its contexts: accepted or not."""
        if not self.uses_rivals:
            return [self.accepts(h, hc, nll, nc) for _, h, hc, nll, nc in pairs]
        out = []
        for (_, h, hc, nll, nc), others in zip(pairs, others_at([(t, nll - nc) for t, _, _, nll, nc in pairs]),
                                              strict=True):
            near_best = self.kind != "shared" or nll - nc >= self.best_share * max([nll - nc, *others[:1]])
            out.append(near_best and self.accepts(h, hc, nll, nc, self.rival(others)))
        return out

    def rival(self, others: Sequence[float]) -> float:
        """The gain a pair must beat, from the other contexts' gains at its anchor, best first (0: none)."""
        if self.kind == "specific":
            return others[self.max_sources - 1] if len(others) >= self.max_sources else 0.0
        return float(np.quantile(others, self.rival_quantile)) if others else 0.0


def others_at(gains: Sequence[tuple[int, float]]) -> list[list[float]]:
    """For each (anchor, gain) of one document: the gains of the OTHER entries at the same anchor, best
    first (its own place skipped once): what a rival is taken from, by the criterion and by the screen."""
    ranked: dict[int, list[float]] = defaultdict(list)
    for t, g in gains:
        ranked[t].append(g)
    for g in ranked.values():
        g.sort(reverse=True)
    out = []
    for t, g in gains:
        best = ranked[t]
        mine = best.index(g)
        out.append(best[:mine] + best[mine + 1 :])
    return out
