"""Document masking for packed sequences, built from a shard's indices spans.

A packed sequence holds several samples [sep C... sep D]; a token may attend only to earlier tokens
of its own sample (block-diagonal and causal), positions restart at every sample, and the first
token of every sample (the separator, with nothing before it in its sample) is never a target.
Tokens after the last span (padding up to the sequence length) are neither attended nor targets.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

IGNORE = -100  # the label value cross-entropy skips


def segment_ids(spans: Sequence[tuple[int, int]], length: int) -> np.ndarray:
    """[length] int64: the span each token belongs to (0, 1, ...), -1 outside every span."""
    seg = np.full(length, -1, dtype=np.int64)
    prev_end = 0
    for i, (start, end) in enumerate(spans):
        if not (prev_end <= start < end <= length):
            raise ValueError(f"spans must be ordered, non-empty and within {length}: {list(spans)}")
        seg[start:end] = i
        prev_end = end
    return seg


def position_ids(spans: Sequence[tuple[int, int]], length: int) -> np.ndarray:
    """[length] int64: the offset of each token inside its span (0 outside every span)."""
    pos = np.zeros(length, dtype=np.int64)
    for start, end in spans:
        pos[start:end] = np.arange(end - start)
    return pos


def block_causal_mask(spans: Sequence[tuple[int, int]], length: int) -> np.ndarray:
    """[length, length] bool: query i may attend key j iff same span and j <= i.

    A token outside every span attends to itself alone, so no row of softmax is empty.
    """
    seg = segment_ids(spans, length)
    same = (seg[:, None] == seg[None, :]) & (seg[:, None] >= 0)
    causal = np.tril(np.ones((length, length), dtype=bool))
    return (same & causal) | np.eye(length, dtype=bool)


def labels(input_ids: Sequence[int], spans: Sequence[tuple[int, int]]) -> np.ndarray:
    """[length] int64 targets for a loss that predicts labels[t] from tokens < t (the usual shift):
    IGNORE at each span's first token and outside every span."""
    ids = np.asarray(input_ids, dtype=np.int64)
    out = np.full(ids.shape[0], IGNORE, dtype=np.int64)
    for start, end in spans:
        out[start + 1 : end] = ids[start + 1 : end]
    return out
