"""The transformers engine: exact full-vocabulary entropy with Hugging Face transformers."""

from __future__ import annotations

from pathlib import Path

from entropylong_streamer.method.batching import length_batches

from .engine_base import EngineBase, Piece
from .flops import FlopModel
from .lm import Scores
from .prefix_cache import PrefixCache, cache_bytes


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
