"""What every stage shares: a result that keeps every reject with its reason, and stats."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from entropylong_streamer.services.lm import Charge, LMEngine, ScoreRequest, Scores
from entropylong_streamer.topics import LMCost

In = TypeVar("In")
Out = TypeVar("Out")


@dataclass
class Reject(Generic[In]):
    record: In
    reason: str
    doc_id: str = ""


@dataclass
class StageResult(Generic[In, Out]):
    outputs: list[Out] = field(default_factory=list)
    rejects: list[Reject[In]] = field(default_factory=list)


class Stats(Counter):
    """total / forwarded / dropped / dropped_<reason>, plus stage-specific counts (lm_tokens, ...)."""

    def forwarded(self, n: int = 1) -> None:
        self["total"] += n
        self["forwarded"] += n

    def dropped(self, reason: str, n: int = 1) -> None:
        self["total"] += n
        self["dropped"] += n
        self[f"dropped_{reason.split(':')[0].replace(' ', '_')}"] += n


class StageError(ValueError):
    """A per-record failure with a short machine-friendly reason ("too_long: 9000 tokens")."""


def run_batch(stage_name: str, items: list[In], fn, stats: Stats) -> StageResult[In, Out]:
    """Apply fn to each item; a StageError becomes a reject with its reason, anything else raises."""
    result: StageResult[In, Out] = StageResult()
    for item in items:
        try:
            out = fn(item)
        except StageError as exc:
            stats.dropped(str(exc))
            result.rejects.append(Reject(item, f"{stage_name}: {exc}", getattr(item, "doc_id", "")))
            continue
        stats.forwarded()
        if out is not None:
            result.outputs.append(out)
    return result


def score_counted(engine: LMEngine, requests: list[ScoreRequest], stats: Stats) -> tuple[list[Scores], list[Charge]]:
    """engine.score_charged, adding the LM tokens it ran to stats["lm_tokens"]."""
    before = engine.lm_tokens
    scores, charges = engine.score_charged(requests)
    stats["lm_tokens"] += engine.lm_tokens - before
    return scores, charges


def cost_of(charges: list[Charge], reused: int = 0) -> LMCost:
    """A document's LMCost: the charges of its requests, and the measurements it read from the cache."""
    return LMCost(lm_tokens=sum(c.lm_tokens for c in charges), flops=sum(c.flops for c in charges),
                  seconds=sum(c.seconds for c in charges), reused=reused)
