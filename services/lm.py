"""The LM engine the entropy and verify stages use: tokenise, and score next-token H and NLL."""

from __future__ import annotations

import bisect
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from entropylong_streamer.method.batching import length_batches
from entropylong_streamer.method.windows import default_overlap, plan_windows


@dataclass(frozen=True)
class Tokenized:
    ids: list[int]
    offsets: list[tuple[int, int]]  # character span [start, end) of every token in the text


@dataclass(frozen=True)
class ScoreRequest:
    """Score ids at positions (None: every position but the last)."""

    ids: Sequence[int]
    positions: Sequence[int] | None = None


Scores = tuple[np.ndarray, np.ndarray]  # (H, NLL) float32, one value per requested position


class LMEngine(Protocol):
    name: str
    max_tokens: int  # tokens one forward sees; longer requests are scored in windows
    lm_tokens: int  # tokens run through the model so far (window overlaps included, padding not)

    def tokenize(self, text: str) -> Tokenized: ...

    def decode(self, ids: list[int]) -> str: ...

    def score(self, ids: Sequence[int], positions: Sequence[int] | None = None) -> Scores:
        """H and NLL of the token after each position p (predicting ids[p + 1] from ids[:p + 1])."""
        ...

    def score_many(self, requests: Sequence[ScoreRequest]) -> list[Scores]:
        """score() for many requests at once, batched across them."""
        ...


class HFTokenizer:
    """Tokenise with character offsets (a fast tokenizer), no special tokens added."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer

    def tokenize(self, text: str) -> Tokenized:
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return Tokenized(list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]])

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, clean_up_tokenization_spaces=False)


@dataclass(frozen=True)
class _Piece:
    """One forward's worth of a request: input ids (at most max_tokens), local positions to score
    and the token that follows each (its target)."""

    request: int
    ids: Sequence[int]
    positions: list[int]
    targets: list[int]
    slots: slice  # where its scores go in the request's output


class EngineBase(HFTokenizer):
    """What both engines share: position checks, windows for long requests, token accounting.

    Subclasses implement _score_pieces: score a list of sequences that each fit in one forward.
    """

    def __init__(self, tokenizer, name: str, max_tokens: int, overlap: int | None) -> None:
        super().__init__(tokenizer)
        self.name = name
        self.max_tokens = max_tokens
        self.overlap = min(default_overlap(max_tokens) if overlap is None else overlap, max_tokens - 2)
        self.lm_tokens = 0
        self.padded_tokens = 0  # padding run through the model (batching waste)
        self.busy_seconds = 0.0  # wall time inside forwards

    @property
    def tokens_per_second(self) -> float:
        return self.lm_tokens / self.busy_seconds if self.busy_seconds else 0.0

    def score(self, ids: Sequence[int], positions: Sequence[int] | None = None) -> Scores:
        return self.score_many([ScoreRequest(ids, positions)])[0]

    def score_many(self, requests: Sequence[ScoreRequest]) -> list[Scores]:
        pieces: list[_Piece] = []
        sizes = []
        for r, req in enumerate(requests):
            positions = _checked_positions(req)
            sizes.append(len(positions))
            if not positions:
                continue
            pieces.extend(self._split(r, req.ids, positions))
        t0 = time.perf_counter()
        scored = self._score_pieces(pieces) if pieces else []
        self.busy_seconds += time.perf_counter() - t0
        self.lm_tokens += sum(len(p.ids) for p in pieces)
        out = [(np.zeros(n, np.float32), np.zeros(n, np.float32)) for n in sizes]
        for piece, (h, nll) in zip(pieces, scored, strict=True):
            out[piece.request][0][piece.slots] = h
            out[piece.request][1][piece.slots] = nll
        return out

    def _split(self, request: int, ids: Sequence[int], positions: list[int]) -> list[_Piece]:
        """Pieces of one request: one per window (a single one if it fits) that holds positions.

        A piece runs only up to its last scored position: nothing after it can influence it.
        """
        pieces = []
        lo = 0
        for w in plan_windows(len(ids), self.max_tokens, self.overlap):
            hi = bisect.bisect_left(positions, w.end - 1, lo)
            if hi > lo:
                mine = positions[lo:hi]
                pieces.append(_Piece(request, ids[w.start : mine[-1] + 1], [p - w.start for p in mine],
                                     [ids[p + 1] for p in mine], slice(lo, hi)))
            lo = hi
        return pieces

    def _score_pieces(self, pieces: list[_Piece]) -> list[Scores]:
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


class TransformersEngine(EngineBase):
    """Exact full-vocabulary entropy with Hugging Face transformers (fp32 on CPU, bf16 on GPU).

    Requests are batched by length (right-padded; causal attention means padding never reaches a
    real token, so no attention mask is needed) and the vocabulary projection is applied only at
    the requested positions, a chunk of positions at a time.
    """

    def __init__(self, model_spec: str, cache_dir: Path, max_tokens: int, chunk_positions: int = 256,
                 threads: int = 0, *, overlap: int | None = None, batch_tokens: int = 8192,
                 device: str = "auto", dtype: str = "auto") -> None:
        import torch

        from .models import load_causal_lm, resolve_device

        self._torch = torch
        self.device, self.dtype = resolve_device(device, dtype)
        self.model, tokenizer = load_causal_lm(model_spec, cache_dir, threads, self.device, self.dtype)
        limit = getattr(self.model.config, "max_position_embeddings", max_tokens)
        max_tokens = min(max_tokens, limit)
        super().__init__(tokenizer, model_spec, max_tokens, overlap)
        self.chunk_positions = chunk_positions
        self.batch_tokens = max(batch_tokens, self.max_tokens)
        self._body = self.model.base_model
        self._head = self.model.get_output_embeddings()

    def _score_pieces(self, pieces: list[_Piece]) -> list[Scores]:
        from entropylong_streamer.method.entropy import entropy_and_nll

        torch = self._torch
        out: list[Scores] = [None] * len(pieces)  # type: ignore[list-item]
        lengths = [len(p.ids) for p in pieces]
        for batch in length_batches(lengths, self.batch_tokens):
            width = lengths[batch[0]]
            ids = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):
                ids[row, : lengths[i]] = torch.as_tensor(pieces[i].ids)
            self.padded_tokens += len(batch) * width - sum(lengths[i] for i in batch)
            rows = torch.tensor([r for r, i in enumerate(batch) for _ in pieces[i].positions])
            cols = torch.tensor([p for i in batch for p in pieces[i].positions])
            with torch.inference_mode():
                ids = ids.to(self.device)
                hidden = self._body(input_ids=ids).last_hidden_state
                picked = hidden[rows.to(self.device), cols.to(self.device)]
                targets = torch.tensor([t for i in batch for t in pieces[i].targets], device=self.device)
                h, nll = entropy_and_nll(picked, self._head, targets, self.chunk_positions)
            h, nll = h.float().cpu().numpy(), nll.float().cpu().numpy()
            at = 0
            for i in batch:
                n = len(pieces[i].positions)
                out[i] = (h[at : at + n], nll[at : at + n])
                at += n
        return out
