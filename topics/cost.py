"""What the LM work on one document cost a stage, carried with the document to the report."""

from __future__ import annotations

from pydantic import Field

from .base import Record


class LMCost(Record):
    """One stage's LM work on one document: its share of the engine calls that scored it
    (services/lm.Charge: tokens and wall time split by the tokens its requests held, FLOPs of its
    pieces), and how many of its measurements were read from the cache instead of run."""

    lm_tokens: float = Field(0.0, ge=0)
    flops: float = Field(0.0, ge=0)
    seconds: float = Field(0.0, ge=0)
    reused: int = Field(0, ge=0)

    def __add__(self, other: LMCost) -> LMCost:
        return LMCost(lm_tokens=self.lm_tokens + other.lm_tokens, flops=self.flops + other.flops,
                      seconds=self.seconds + other.seconds, reused=self.reused + other.reused)
