"""How far do the engine's batched and shared-prefix scores sit from a plain forward, and is it rounding?

The tests assert that batching, padding and a shared prefix change no score (H, NLL) beyond fp32
noise; this bench measures that noise so the tolerances are figures, not guesses. Over random
requests shaped like the tests' (tests/services/test_transformers_engine.py), for each model:

- batched: several requests in one padded forward (score_many) against the plain forward in the
  engine's dtype (the tests' reference: one forward of the request alone, H and NLL in float64 from
  its logits);
- shared prefix: requests sharing a [sep C] prefix whose keys and values run once;
- the plain path (engine.score, one request) against the model in float64 (the truth up to rounding);
- all of it again with the engine itself in float64: what is left there is the plumbing's own error;
- each on random token ids (the tests' hypothesis cases) and on slices of real prose (the
  docstrings of this Python's standard library): a real model's rounding depends on its input.

If the shared-prefix path adds nothing but rounding, its distance from the float64 truth has the
same distribution as the plain fp32 forward's. The error of a logit scales with the logits'
magnitude, so each difference is also printed relative to max|z| at its position.

    .venv/bin/python bench/engine_noise.py [--cases 300] [--models tiny smollm2]
"""

from __future__ import annotations

import argparse
import copy
import random
from pathlib import Path

import numpy as np
import torch

from entropylong_streamer.services.lm import ScoreRequest
from entropylong_streamer.services.transformers_engine import TransformersEngine

SEP = 0
QUANTILES = (0.5, 0.9, 0.99, 1.0)


def reference(model, ids: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """H, NLL (float64 from the model's logits) and max|z| at every position but the last."""
    with torch.inference_mode():
        z = model(torch.tensor([ids])).logits[0, :-1].double()
    lse = torch.logsumexp(z, -1)
    h = lse - (torch.softmax(z, -1) * z).sum(-1)
    nll = lse - z.gather(1, torch.tensor(ids[1:])[:, None]).squeeze(1)
    return h.numpy(), nll.numpy(), z.abs().max(-1).values.numpy()


def text_tokens(engine: TransformersEngine) -> list[int]:
    """Prose no one here wrote: the docstrings of this Python's standard library modules."""
    import importlib

    names = ("argparse", "collections", "email", "json", "logging", "pathlib", "sqlite3", "subprocess",
             "tarfile", "threading", "unittest", "urllib.request", "xml.dom", "zipfile", "asyncio", "decimal")
    docs = [importlib.import_module(n).__doc__ or "" for n in names]
    return engine.tokenize("\n\n".join(d for d in docs if d)).ids


def case(rng: random.Random, source: list[int] | int) -> tuple[list[int], list[list[int]]]:
    """A prefix and 2-5 continuations: random ids below `source`, or slices of the token list `source`."""
    def draw(n: int) -> list[int]:
        if isinstance(source, int):
            return [rng.randrange(1, source) for _ in range(n)]
        start = rng.randrange(len(source) - n)
        return list(source[start : start + n])

    return draw(rng.randint(1, 40)), [draw(rng.randint(2, 80)) for _ in range(rng.randint(2, 5))]


def measure(engine: TransformersEngine, cases: int, seed: int, text: bool) -> dict[str, np.ndarray]:
    rng = random.Random(seed)
    wide = engine.model if engine.dtype == "float64" else copy.deepcopy(engine.model).double()
    out: dict[str, list[float]] = {k: [] for k in ("batched", "shared", "plain_vs_f64", "shared_vs_f64",
                                                   "zmax", "nll")}
    source = text_tokens(engine) if text else min(engine.vocab_size, 49152)
    for _ in range(cases):
        prefix, rests = case(rng, source)
        head = [SEP, *prefix]
        requests = [ScoreRequest([*head, *r], list(range(len(head), len(head) + len(r) - 1)), prefix=len(head))
                    for r in rests]
        engine.batch_tokens = 256
        shared = engine.score_many(requests)
        engine.batch_tokens = 512
        batched = engine.score_many([ScoreRequest(r.ids, r.positions) for r in requests])
        for req, (sh, snll), (bh, bnll) in zip(requests, shared, batched, strict=True):
            pos = list(req.positions)
            ph, pnll = engine.score(req.ids, pos)  # the plain path: one request, one forward
            rh, rnll, zmax = (a[pos] for a in reference(engine.model, list(req.ids)))
            th, tnll, _ = (a[pos] for a in reference(wide, list(req.ids)))
            worst = lambda a, b, c, d: np.maximum(np.abs(a - b), np.abs(c - d))  # noqa: E731
            out["batched"] += list(worst(bh, rh, bnll, rnll))
            out["shared"] += list(worst(sh, rh, snll, rnll))
            out["plain_vs_f64"] += list(worst(ph, th, pnll, tnll))
            out["shared_vs_f64"] += list(worst(sh, th, snll, tnll))
            out["zmax"] += list(zmax)
            out["nll"] += list(rnll)
    return {k: np.asarray(v) for k, v in out.items()}


def formula_noise(cases: int, seed: int) -> None:
    """entropy_and_nll in fp32 against float64 log-softmax, on tests/method/test_entropy.py's cases:
    hidden ~ N(0, 1) of width 8, a head ~ N(0, 3), vocabularies of 2-300."""
    from entropylong_streamer.method.entropy import entropy_and_nll

    rng = random.Random(seed)
    worst = []
    for _ in range(cases):
        t, vocab, chunk = rng.randint(1, 40), rng.randint(2, 300), rng.randint(1, 17)
        g = torch.Generator().manual_seed(rng.randrange(10**6))
        hidden = torch.randn(t, 8, generator=g)
        head = torch.nn.Linear(8, vocab, bias=False)
        torch.nn.init.normal_(head.weight, std=3.0, generator=g)
        targets = torch.randint(0, vocab, (t,), generator=g)
        with torch.no_grad():
            h, nll = entropy_and_nll(hidden, head, targets, chunk)
            logp = torch.log_softmax(head(hidden).double(), -1)
        d = torch.maximum((h.double() + (logp.exp() * logp).sum(-1)).abs(),
                          (nll.double() + logp[torch.arange(t), targets]).abs())
        worst += d.tolist()
    w = np.asarray(worst)
    print(f"\nentropy_and_nll fp32 vs float64 log-softmax ({cases} cases, {w.size:,} positions): "
          + ", ".join(f"q{q:g} {np.quantile(w, q):.2e}" for q in QUANTILES))


def show(name: str, m: dict[str, np.ndarray]) -> None:
    print(f"\n{name}: {len(m['zmax']):,} positions; max|z| median {np.median(m['zmax']):.1f}, "
          f"max {m['zmax'].max():.1f}; NLL median {np.median(m['nll']):.1f}, max {m['nll'].max():.1f}")
    print(f"{'max(|dH|, |dNLL|)':<34}" + "".join(f"{f'q{q:g}':>11}" for q in QUANTILES) + f"{'/max|z| max':>13}")
    labels = {"batched": "batched vs plain (tests' reference)", "shared": "shared prefix vs plain",
              "plain_vs_f64": "plain vs float64 model", "shared_vs_f64": "shared prefix vs float64 model"}
    for key, label in labels.items():
        d = m[key]
        print(f"{label:<34}" + "".join(f"{np.quantile(d, q):>11.2e}" for q in QUANTILES)
              + f"{(d / m['zmax']).max():>13.2e}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=300)
    ap.add_argument("--models", nargs="+", default=["tiny", "smollm2"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", type=Path, default=Path(".elong/bench-noise/models"))
    args = ap.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    formula_noise(args.cases * 10, args.seed)
    for spec in args.models:
        cases = args.cases if spec == "tiny" else max(1, args.cases // 10)
        for dtype in ("float32", "float64"):
            engine = TransformersEngine(spec, args.cache, max_tokens=4096, dtype=dtype)
            for text in (False, True):
                what = "slices of stdlib docstrings" if text else "random ids"
                show(f"{spec}, {dtype} engine, {what} ({cases} cases)", measure(engine, cases, args.seed, text))


if __name__ == "__main__":
    main()
