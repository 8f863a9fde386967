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

from .flops import FlopModel
from .prefix_cache import PrefixCache, cache_bytes


@dataclass(frozen=True)
class Tokenized:
    ids: list[int]
    offsets: list[tuple[int, int]]  # character span [start, end) of every token in the text


@dataclass(frozen=True)
class ScoreRequest:
    """Score ids at positions (None: every position but the last).

    prefix: how many leading ids other requests may share (verification's [sep C]); an engine may
    compute a prefix shared by several requests once and reuse its keys and values. Positions
    inside the prefix are scored normally, just without that reuse.
    """

    ids: Sequence[int]
    positions: Sequence[int] | None = None
    prefix: int = 0


class EngineStateLost(RuntimeError):
    """An engine that no longer holds any model version whole (a failed weight swap that could not be
    undone): its worker must stop and start afresh, not go on scoring."""


Scores = tuple[np.ndarray, np.ndarray]  # (H, NLL) float32, one value per requested position


@dataclass(frozen=True)
class Charge:
    """One request's share of the LM work of the engine call that scored it: the call's tokens and
    wall time split in proportion to the tokens its pieces ran (so shared prefixes are shared out),
    and its FLOPs (services/flops.py; 0 where the engine has no FLOP model). Summed over a call's
    requests: the engine's own counts."""

    lm_tokens: float = 0.0
    flops: float = 0.0
    seconds: float = 0.0


class Tokenizer(Protocol):
    """What cuts text into the LM's tokens: the indexer's chunks, retrieval's windows, every engine."""

    def tokenize(self, text: str) -> Tokenized: ...

    def tokenize_many(self, texts: Sequence[str]) -> list[Tokenized]: ...


class LMEngine(Tokenizer, Protocol):
    name: str
    dtype: str  # the dtype the model runs in ("float32", "bfloat16")
    max_tokens: int  # tokens one forward sees; longer requests are scored in windows
    vocab_size: int  # token ids the model embeds: 0 .. vocab_size - 1
    lm_tokens: int  # tokens run through the model so far (window overlaps included, padding not)

    def decode(self, ids: list[int]) -> str: ...

    def score(self, ids: Sequence[int], positions: Sequence[int] | None = None) -> Scores:
        """H and NLL of the token after each position p (predicting ids[p + 1] from ids[:p + 1])."""
        ...

    def score_many(self, requests: Sequence[ScoreRequest]) -> list[Scores]:
        """score() for many requests at once, batched across them."""
        ...

    def score_charged(self, requests: Sequence[ScoreRequest]) -> tuple[list[Scores], list[Charge]]:
        """score_many, and what each request cost."""
        ...


class HFTokenizer:
    """Tokenise with character offsets (a fast tokenizer), no special tokens added."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        # A batch goes to the Rust tokenizer in one call: transformers' __call__ costs 2-3x more per
        # text (0.71 against 0.22 ms for a 470-token document). Its output is the same as long as
        # the backend neither truncates nor pads, which __call__ would switch off.
        backend = tokenizer.backend_tokenizer if getattr(tokenizer, "is_fast", False) else None
        self._backend = backend if backend is not None and not backend.truncation and not backend.padding else None

    def tokenize(self, text: str) -> Tokenized:
        return self.tokenize_many([text])[0]

    def tokenize_many(self, texts: Sequence[str]) -> list[Tokenized]:
        if self._backend is not None:
            encoded = self._backend.encode_batch(list(texts), add_special_tokens=False)
            return [Tokenized(e.ids, e.offsets) for e in encoded]
        out = []
        for text in texts:
            enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
            out.append(Tokenized(list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]))
        return out

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, clean_up_tokenization_spaces=False)


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


class TransformersEngine(EngineBase):
    """Exact full-vocabulary entropy with Hugging Face transformers (fp32 on CPU, bf16 on GPU).

    Requests are batched by length (right-padded; causal attention means padding never reaches a
    real token, so no attention mask is needed) and the vocabulary projection is applied only at
    the requested positions, a chunk of positions at a time.
    """

    # A prefix shorter than this is run with its pieces: keeping its keys and values would save little.
    MIN_CACHED_PREFIX = 32

    def __init__(self, model_spec: str, cache_dir: Path, max_tokens: int, chunk_positions: int = 256,
                 threads: int = 0, *, overlap: int | None = None, batch_tokens: int = 8192,
                 device: str = "auto", dtype: str = "auto", prefix_cache_bytes: int = 0) -> None:
        import torch

        from .models import load_causal_lm, resolve_device

        self._torch = torch
        self.device, self.dtype = resolve_device(device, dtype)
        self.model, tokenizer = load_causal_lm(model_spec, cache_dir, threads, self.device, self.dtype)
        limit = getattr(self.model.config, "max_position_embeddings", max_tokens)
        max_tokens = min(max_tokens, limit)
        super().__init__(tokenizer, model_spec, max_tokens, overlap)
        self.vocab_size = int(self.model.config.vocab_size)
        self.flop_model = FlopModel.of_config(self.model.config.to_dict())
        self.chunk_positions = chunk_positions
        self.batch_tokens = max(batch_tokens, self.max_tokens)
        self._body = self.model.base_model
        self._head = self.model.get_output_embeddings()
        self.prefix_cache = PrefixCache(prefix_cache_bytes) if prefix_cache_bytes > 0 else None
        self.prefix_tokens_reused = 0  # prefix tokens not run again: shared within a call or kept across calls

    def _score_pieces(self, pieces: list[Piece]) -> tuple[list[Scores], int]:
        out: list[Scores] = [None] * len(pieces)  # type: ignore[list-item]
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, p in enumerate(pieces):
            if 0 < p.prefix <= p.positions[0]:
                groups.setdefault(tuple(p.ids[: p.prefix]), []).append(i)
        # Kept across calls, a prefix is worth its own forward even when one piece needs it now.
        alone_ok = self.prefix_cache is not None
        shared = [g for key, g in groups.items()
                  if len(g) > 1 or (alone_ok and len(key) >= self.MIN_CACHED_PREFIX)]
        alone = sorted(set(range(len(pieces))).difference(i for g in shared for i in g))
        ran = self._run(pieces, alone, out)
        for group in shared:
            ran += self._run_shared_prefix(pieces, group, out)
        return out, ran

    def _run_shared_prefix(self, pieces: list[Piece], group: list[int], out: list[Scores]) -> int:
        """The prefix's keys and values once, then every piece's remainder attends to them."""
        import copy

        torch = self._torch
        n = pieces[group[0]].prefix
        key = tuple(pieces[group[0]].ids[:n])
        cache = self.prefix_cache.get(key) if self.prefix_cache is not None else None
        ran = 0 if cache is not None else n
        if cache is None:
            with torch.inference_mode():
                ids = torch.as_tensor([list(key)], device=self.device)
                cache = self._body(input_ids=ids, use_cache=True).past_key_values
            if self.prefix_cache is not None:
                self.prefix_cache.put(key, cache, cache_bytes(cache))
        self.prefix_tokens_reused += n * len(group) - ran
        rest = [Piece(p.request, p.ids[n:], [q - n for q in p.positions], p.targets, p.slots)
                for p in (pieces[i] for i in group)]
        scored: list[Scores] = [None] * len(rest)  # type: ignore[list-item]

        def prefix_for(rows: int):
            batch_cache = copy.deepcopy(cache)
            batch_cache.batch_repeat_interleave(rows)
            return batch_cache

        ran += self._run(rest, list(range(len(rest))), scored, prefix_for)
        for i, s in zip(group, scored, strict=True):
            out[i] = s
        return ran

    def _run(self, pieces: list[Piece], which: list[int], out: list[Scores], prefix_for=None) -> int:
        """Score pieces[which] in length batches (right-padded) into out; returns the tokens run.

        prefix_for(rows), when given, returns the keys and values every row continues from.
        """
        from entropylong_streamer.method.entropy import entropy_and_nll

        torch = self._torch
        lengths = {i: len(pieces[i].ids) for i in which}
        for batch in ([which[j] for j in b] for b in length_batches(list(lengths.values()), self.batch_tokens)):
            width = lengths[batch[0]]
            ids = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):
                ids[row, : lengths[i]] = torch.as_tensor(pieces[i].ids)
            self.padded_tokens += len(batch) * width - sum(lengths[i] for i in batch)
            rows = torch.tensor([r for r, i in enumerate(batch) for _ in pieces[i].positions])
            cols = torch.tensor([p for i in batch for p in pieces[i].positions])
            with torch.inference_mode():
                ids = ids.to(self.device)
                past = prefix_for(len(batch)) if prefix_for else None
                hidden = self._body(input_ids=ids, past_key_values=past, use_cache=past is not None).last_hidden_state
                picked = hidden[rows.to(self.device), cols.to(self.device)]
                targets = torch.tensor([t for i in batch for t in pieces[i].targets], device=self.device)
                h, nll = entropy_and_nll(picked, self._head, targets, self.chunk_positions)
            h, nll = h.float().cpu().numpy(), nll.float().cpu().numpy()
            at = 0
            for i in batch:
                n = len(pieces[i].positions)
                out[i] = (h[at : at + n], nll[at : at + n])
                at += n
        return sum(lengths.values())
