"""What every stage shares: a result that keeps every reject with its reason, and stats."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from entropylong_streamer.services.lm import LMEngine, ScoreRequest, Scores

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


def score_counted(engine: LMEngine, requests: list[ScoreRequest], stats: Stats) -> list[Scores]:
    """engine.score_many, adding the LM tokens it ran to stats["lm_tokens"]."""
    before = engine.lm_tokens
    scores = engine.score_many(requests)
    stats["lm_tokens"] += engine.lm_tokens - before
    return scores
