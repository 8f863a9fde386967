"""Exact next-token entropy and NLL over the full vocabulary, chunked over positions.

H = logsumexp(z) - sum(softmax(z) * z) for the logits z at each position: computed a chunk of
positions at a time so a long document never materialises [T, vocab] logits.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def entropy_and_nll(
    hidden: torch.Tensor,
    lm_head: Callable[[torch.Tensor], torch.Tensor],
    targets: torch.Tensor,
    chunk: int = 256,
) -> tuple[torch.Tensor, torch.Tensor]:
    """hidden [T, d] final hidden states, targets [T] the next token at each row -> (H [T], NLL [T])."""
    if hidden.shape[0] != targets.shape[0]:
        raise ValueError(f"{hidden.shape[0]} hidden rows but {targets.shape[0]} targets")
    hs, nlls = [], []
    for start in range(0, hidden.shape[0], chunk):
        z = lm_head(hidden[start : start + chunk])
        z = z if z.dtype in (torch.float32, torch.float64) else z.float()  # bf16/fp16 logits: fp32 arithmetic
        # Shifted so the largest logit is 0: H is then a difference of numbers of H's own size, not of
        # two near max(z) (~30 for SmolLM2), whose fp32 rounding cost up to 1e-3 nats on prose
        # (bench/engine_noise.py). One exp serves lse, softmax and the sum (10% faster than both).
        z = z - z.max(dim=-1, keepdim=True).values
        e = z.exp()
        total = e.sum(dim=-1)
        lse = total.log()
        hs.append(lse - (e * z).sum(dim=-1) / total)
        nlls.append(lse - z.gather(1, targets[start : start + chunk, None]).squeeze(1))
    if not hs:
        empty = hidden.new_zeros(0, dtype=torch.float32)
        return empty, empty
    return torch.cat(hs), torch.cat(nlls)
