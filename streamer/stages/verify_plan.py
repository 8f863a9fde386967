"""What verification keeps per document while it measures (stages/verify.py): its plan, the contexts as
cut and measured, each forward and what it measured."""

from __future__ import annotations

from dataclasses import dataclass, field

from entropylong_streamer.measurements import Measurement
from entropylong_streamer.services.lm import Charge, Scores
from entropylong_streamer.topics import CandidatesRecord, Context, Screened


@dataclass
class Forward:
    """One forward of [sep C sep D[:last missing anchor + 1]], scored at every anchor that retrieved
    C and has no measurement yet (no forward at all when none is missing)."""

    context_id: str
    round: int  # the retrieval round it measures
    anchors: list[int]  # the anchors it measures; it scores their spans' positions (known: by position)
    retrieved: set[int]  # the anchors whose query retrieved C
    known: dict[int, Measurement]
    keys: dict[int, bytes]
    ids: list[int]
    positions: list[int]
    offset: int  # logits at offset + t predict document token t
    prefix: int  # [sep C]: what every document that retrieved C shares
    fresh: dict[bytes, Measurement] = field(default_factory=dict)

    def measure(self, scores: Scores) -> None:
        for pos, h, nll in zip(self.positions, *scores, strict=True):
            t = pos - self.offset
            self.known[t] = (float(h), float(nll))
            self.fresh[self.keys[t]] = self.known[t]


@dataclass(frozen=True)
class SpanNLL:
    """A pair's NLL without and with the context, summed over the positions of its anchor's span."""

    where: tuple[int, int]  # [start, end) in the document's tokens
    nll: float
    nll_ctx: float


@dataclass
class MeasuredContext:
    """A context as measured: cut once, for the anchors of its first round (as retrieval cut it);
    later rounds measure the same tokens at more anchors."""

    context_id: str
    context_doc_id: str
    text: str
    token_ids: list[int]
    rounds: dict[int, int]  # anchor -> retrieval round
    spans: list[tuple[int, int]] = field(default_factory=list)  # its retrieved spans, in its tokens
    screened_out: bool = False
    measured: set[int] = field(default_factory=set)
    unfit: set[int] = field(default_factory=set)

    @property
    def first_round(self) -> int:
        return min(self.rounds.values())


@dataclass
class Plan:
    record: CandidatesRecord
    doc_digest: bytes
    spans: dict[int, tuple[int, int]] = field(default_factory=dict)  # anchor -> its span [start, end); {}: none
    base: dict[int, float] = field(default_factory=dict)  # span position -> NLL without context
    candidates: list[MeasuredContext] = field(default_factory=list)
    contexts: list[Context] = field(default_factory=list)  # in the order first measured
    forwards: list[Forward] = field(default_factory=list)
    unresolved: set[int] = field(default_factory=set)  # after the latest round: what the next may measure
    charges: list[Charge] = field(default_factory=list)  # its share of every engine call that ran its forwards
    screen_charges: list[Charge] = field(default_factory=list)  # and of the screen's
    screened: list[Screened] = field(default_factory=list)
    reused: int = 0  # pairs read from the measurement cache
    chosen_by: str | None = None  # rebaselined: the model version that chose its anchors

    def later_rounds(self, round_: int) -> bool:
        return any(r > round_ for c in self.candidates for r in c.rounds.values())


@dataclass(frozen=True)
class Rebaselined:
    given: CandidatesRecord  # as the caller gave it, its anchors' H and NLL another version's
    charge: Charge
