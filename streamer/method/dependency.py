"""The verification criterion: does a context measurably reduce the model's uncertainty at an anchor?"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


def relative_reduction(before: float, after: float) -> float:
    """(before - after) / before; 0 where there was nothing to reduce."""
    return (before - after) / before if before > 0 else 0.0


@dataclass(frozen=True)
class Criterion:
    epsilon: float = 0.4
    kind: Literal["entropy", "entropy+loss"] = "entropy"
    nll_threshold: float = 0.2

    def accepts(self, h: float, h_ctx: float, nll: float, nll_ctx: float) -> bool:
        """The paper's dI > epsilon; with "entropy+loss" the true next token must also get likelier."""
        if relative_reduction(h, h_ctx) <= self.epsilon:
            return False
        return self.kind == "entropy" or relative_reduction(nll, nll_ctx) > self.nll_threshold
