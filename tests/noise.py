"""Every numerical tolerance the suite asserts on model scores, each beside the noise it stands on.

Measured with `.venv/bin/python bench/engine_noise.py --cases 80` (this 2-core CPU, torch 2.13.0;
docs/testing.md): over random requests shaped like the engine tests' (random token ids, and slices
of real prose), max(|dH|, |dNLL|) of one path against another, in nats.

The tiny random Llama (initializer_range 1.0: logits up to |z| ~ 50, NLL up to ~65) in fp32:
- batched or shared-prefix scores against the plain forward: median 1e-6, q0.99 1.4e-5, max 2.3e-4
  over 10,475 positions (300 cases before: max 3.6e-4; CI once drew 4.4e-4 against a bound of 3e-4):
  a tail that a search for the worst case finds;
- the shared-prefix path and the plain forward sit at the same distance from the float64 model at
  every quantile (median 6.9e-6, q0.99 2.3e-4, max 2.4e-3): the path adds nothing but rounding.
In float64 the same comparisons differ by the fp32 rounding of the returned scores alone (max
1.9e-6 at NLL ~65, relative 6e-8: half an fp32 ulp). So the tests that check the plumbing
(batching, padding, windows, shared and kept prefixes, verification against the naive pair, the
quality curves, streaming against batch mode) run the tiny model in float64 and hold it to two
fp32 ulps: a verdict that cannot depend on the draw.

SmolLM2 in fp32, every path against the float64 model: max 4.4e-5 on prose, 3.8e-5 on random ids
(before the entropy was computed from max-shifted logits: up to 1.3e-3, median 3.9e-4 on prose).
vLLM against transformers (tests/services/test_vllm_engine.py, measured in its own run): 2.5e-5 on
documents, 3.5e-5 on verification's pairs, 1.7e-5 after a weight reload; 1.5e-4 at position 0 (the
separator alone, SmolLM2's attention sink). Hence SMOLLM2_ATOL, 1e-4 (the design's bound).
"""

from __future__ import annotations

import numpy as np

TINY_DTYPE = "float64"

# Two fp32 ulps of the value (relative 2**-22), plus what float64 paths differ by (measured ~1e-13).
EXACT_RTOL, EXACT_ATOL = 2.4e-7, 1e-9
# dI of one pair from two float64 runs: (H - H') / H, each score rounded to fp32 (2**-24 relative):
# 6e-8 (1 + H'/H), H' <= ln(49152) = 10.8 and H above tau at an anchor (>= 1 on the tiny model).
EXACT_DI = 1e-6


def close(got: float, want: float) -> bool:
    return abs(got - want) <= EXACT_ATOL + EXACT_RTOL * abs(want)


def di_close(d_i: float, h: float, h_ctx: float) -> bool:
    """d_i against (h - h_ctx) / h, where h and h_ctx each carry the scores' rounding."""
    return abs(d_i - (h - h_ctx) / h) <= EXACT_ATOL + EXACT_RTOL * (abs(h) + abs(h_ctx)) / h


def assert_exact(got, want) -> None:
    np.testing.assert_allclose(np.asarray(got, np.float64), np.asarray(want, np.float64),
                               rtol=EXACT_RTOL, atol=EXACT_ATOL)

# SmolLM2 in fp32 (the verification tests' documents): 2.3x the largest difference measured.
SMOLLM2_ATOL = 1e-4
