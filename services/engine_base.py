"""What every LM engine shares: position checks, windows for requests longer than one forward, token,
FLOP and time accounting. An engine implements _score_pieces."""

from __future__ import annotations

import bisect
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from entropylong_streamer.method.windows import default_overlap, plan_windows

from .flops import FlopModel
from .lm import Charge, HFTokenizer, ScoreRequest, Scores


@dataclass(frozen=True)
class Piece:
    """One forward's worth of a request: input ids (at most max_tokens), local positions to score
    and the token that follows each (its target)."""

    request: int
    ids: Sequence[int]
    positions: list[int]
    targets: list[int]
    slots: slice  # where its scores go in the request's output
    prefix: int = 0  # leading ids it may share with other pieces (0: none)


class EngineBase(HFTokenizer):
    """What both engines share: position checks, windows for long requests, token accounting.

    Subclasses implement _score_pieces: score a list of sequences that each fit in one forward,
    and return the scores with the number of tokens the model ran (shared prefixes count once).
    """

    def __init__(self, tokenizer, name: str, max_tokens: int, overlap: int | None) -> None:
        super().__init__(tokenizer)
        self.name = name
        self.max_tokens = max_tokens
        self.overlap = min(default_overlap(max_tokens) if overlap is None else overlap, max_tokens - 2)
        self.lm_tokens = 0
        self.padded_tokens = 0  # padding run through the model (batching waste)
        self.busy_seconds = 0.0  # wall time inside forwards
        self.flops = 0.0  # forward FLOPs of the tokens run (padding not), where flop_model is set
        self.flop_model: FlopModel | None = None

    @property
    def tokens_per_second(self) -> float:
        return self.lm_tokens / self.busy_seconds if self.busy_seconds else 0.0

    def score(self, ids: Sequence[int], positions: Sequence[int] | None = None) -> Scores:
        return self.score_many([ScoreRequest(ids, positions)])[0]

    def score_many(self, requests: Sequence[ScoreRequest]) -> list[Scores]:
        return self.score_charged(requests)[0]

    def score_charged(self, requests: Sequence[ScoreRequest]) -> tuple[list[Scores], list[Charge]]:
        pieces: list[Piece] = []
        sizes = []
        for r, req in enumerate(requests):
            positions = _checked_positions(req)
            sizes.append(len(positions))
            if not positions:
                continue
            pieces.extend(self._split(r, req.ids, positions, req.prefix))
        t0 = time.perf_counter()
        scored, ran = self._score_pieces(pieces) if pieces else ([], 0)
        seconds = time.perf_counter() - t0
        self.busy_seconds += seconds
        self.lm_tokens += ran
        out = [(np.zeros(n, np.float32), np.zeros(n, np.float32)) for n in sizes]
        for piece, (h, nll) in zip(pieces, scored, strict=True):
            out[piece.request][0][piece.slots] = h
            out[piece.request][1][piece.slots] = nll
        return out, self._charges(len(requests), pieces, ran, seconds)

    def _charges(self, n: int, pieces: list[Piece], ran: int, seconds: float) -> list[Charge]:
        """The call's tokens and seconds split by the tokens each request's pieces hold; FLOPs: the
        body's for the tokens actually run (shared prefixes once), attention and projection per piece
        (a shared prefix's own attention counted with each piece: an upper bound by that much)."""
        held = [0] * n
        flops = [0.0] * n
        for p in pieces:
            held[p.request] += len(p.ids)
            if self.flop_model is not None:
                _, attention, projection = self.flop_model.parts(len(p.ids), len(p.positions))
                flops[p.request] += attention + projection
        total = sum(held)
        share = [h / total if total else 0.0 for h in held]
        if self.flop_model is not None:
            body = 2.0 * self.flop_model.body * ran
            flops = [f + body * s for f, s in zip(flops, share, strict=True)]
            self.flops += sum(flops)
        return [Charge(ran * s, f, seconds * s) for s, f in zip(share, flops, strict=True)]

    def _split(self, request: int, ids: Sequence[int], positions: list[int], prefix: int = 0) -> list[Piece]:
        """Pieces of one request: one per window (a single one if it fits) that holds positions.

        A piece runs only up to its last scored position: nothing after it can influence it.
        """
        pieces = []
        lo = 0
        for w in plan_windows(len(ids), self.max_tokens, self.overlap):
            hi = bisect.bisect_left(positions, w.end - 1, lo)
            if hi > lo:
                mine = positions[lo:hi]
                pieces.append(Piece(request, ids[w.start : mine[-1] + 1], [p - w.start for p in mine],
                                     [ids[p + 1] for p in mine], slice(lo, hi), prefix if w.start == 0 else 0))
            lo = hi
        return pieces

    def _score_pieces(self, pieces: list[Piece]) -> tuple[list[Scores], int]:
        raise NotImplementedError


def _checked_positions(req: ScoreRequest) -> list[int]:
    n = len(req.ids)
    if req.positions is None:
        return list(range(n - 1))
    positions = sorted(req.positions)
    if positions and (positions[0] < 0 or positions[-1] >= n - 1):
        raise ValueError(f"score positions must lie in [0, {n - 1}), got {positions[0]}..{positions[-1]}")
    if list(req.positions) != positions:
        raise ValueError("score positions must be in increasing order")
    return positions
