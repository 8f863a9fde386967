"""The verification criterion: does a context measurably reduce the model's uncertainty at an anchor?"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Measured = tuple[float, float, float, float]  # (H, H', NLL, NLL') of one (context, anchor) pair


def relative_reduction(before: float, after: float) -> float:
    """(before - after) / before; 0 where there was nothing to reduce."""
    return (before - after) / before if before > 0 else 0.0


@dataclass(frozen=True)
class Criterion:
    epsilon: float = 0.4
    kind: Literal["entropy", "entropy+loss"] = "entropy"
    nll_threshold: float = 0.2
    # A context that makes the model confidently wrong at any anchor it is measured at (entropy
    # down by more than epsilon, the true token's NLL up by more than this, relative) is accepted
    # at none of the document's anchors: a lookalike (same template, other facts) resolves the
    # template's tokens and misleads at the facts. None: no veto (the paper).
    veto_nll_rise: float | None = None

    def accepts(self, h: float, h_ctx: float, nll: float, nll_ctx: float) -> bool:
        """The paper's dI > epsilon; with "entropy+loss" the true next token must also get likelier."""
        if relative_reduction(h, h_ctx) <= self.epsilon:
            return False
        return self.kind == "entropy" or relative_reduction(nll, nll_ctx) > self.nll_threshold

    def misleads(self, h: float, h_ctx: float, nll: float, nll_ctx: float) -> bool:
        """Confidently wrong: the context lowered the entropy and raised the true token's NLL."""
        return (self.veto_nll_rise is not None and relative_reduction(h, h_ctx) > self.epsilon
                and relative_reduction(nll, nll_ctx) < -self.veto_nll_rise)

    def decide(self, pairs: Sequence[Measured]) -> list[bool]:
        """Accept or reject every measured pair of one context in one document."""
        if any(self.misleads(*m) for m in pairs):
            return [False] * len(pairs)
        return [self.accepts(*m) for m in pairs]
