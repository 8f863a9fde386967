"""The LM engine the entropy and verify stages use: tokenise, and score next-token H and NLL."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class Tokenized:
    ids: list[int]
    offsets: list[tuple[int, int]]  # character span [start, end) of every token in the text


class LMEngine(Protocol):
    name: str
    max_tokens: int
    lm_tokens: int  # tokens run through the model so far

    def tokenize(self, text: str) -> Tokenized: ...

    def decode(self, ids: list[int]) -> str: ...

    def score(self, ids: list[int], positions: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """H and NLL of the token after each position p (predicting ids[p + 1] from ids[:p + 1]).

        positions None means every position but the last.
        """
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


class TransformersEngine(HFTokenizer):
    """Exact full-vocabulary entropy with Hugging Face transformers (fp32 on CPU).

    The vocabulary projection is applied only at the requested positions, a chunk at a time.
    """

    def __init__(self, model_spec: str, cache_dir: Path, max_tokens: int, chunk_positions: int = 256,
                 threads: int = 0) -> None:
        import torch

        from .models import load_causal_lm

        self._torch = torch
        self.model, tokenizer = load_causal_lm(model_spec, cache_dir, threads=threads)
        super().__init__(tokenizer)
        self.name = model_spec
        limit = getattr(self.model.config, "max_position_embeddings", max_tokens)
        self.max_tokens = min(max_tokens, limit)
        self.chunk_positions = chunk_positions
        self.lm_tokens = 0
        self._body = self.model.base_model
        self._head = self.model.get_output_embeddings()

    def score(self, ids: list[int], positions: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        from entropylong_streamer.method.entropy import entropy_and_nll

        torch = self._torch
        if len(ids) > self.max_tokens:
            raise ValueError(f"{len(ids)} tokens exceed the engine's limit of {self.max_tokens}")
        pos = list(range(len(ids) - 1)) if positions is None else positions
        if not pos:
            return np.zeros(0, np.float32), np.zeros(0, np.float32)
        if max(pos) >= len(ids) - 1 or min(pos) < 0:
            raise ValueError("score positions must lie in [0, len(ids) - 1)")
        # Nothing after the last scored position can influence it: run only the prefix.
        run = ids[: max(pos) + 1]
        with torch.inference_mode():
            hidden = self._body(input_ids=torch.tensor([run])).last_hidden_state[0]
            index = torch.tensor(pos)
            targets = torch.tensor([ids[p + 1] for p in pos])
            h, nll = entropy_and_nll(hidden[index], self._head, targets, self.chunk_positions)
        self.lm_tokens += len(run)
        return h.numpy(), nll.numpy()
