"""The contract of the LM engine the entropy and verify stages use (tokenise, and score next-token H and
NLL), and the tokenizer every engine shares. The engines: engine_base.py (what they share),
transformers_engine.py, vllm_engine.py, null_models.py."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np


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
