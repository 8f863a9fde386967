"""Verification cost: naive (one plain forward of [sep C sep D] per (anchor, candidate) pair) against
this project's (one forward of [sep C sep D up to the last anchor] per unique candidate, head only at
anchors, shared candidate prefixes computed once per batch), on the same documents in one run.

Prints LM tokens with the exact token bound, FLOPs (body, attention, vocabulary projection) and wall
time. Naive over every pair would take hours on a CPU, so it runs on a random sample of pairs: its
wall time is scaled from the sample, and on the sample its dI and accepted flags are compared with
this project's (they must be identical). Token and FLOP counts of naive are exact, not sampled.

    .venv/bin/python bench/verify_cost.py [--documents 2] [--sample 24] [--min-chars 10000]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import torch

from entropylong_streamer.config import load_config
from entropylong_streamer.demo_corpus import write_demo_corpus
from entropylong_streamer.method.dependency import relative_reduction
from entropylong_streamer.pipeline import Pipeline
from entropylong_streamer.sources import BadRow, read_documents


class FlopModel:
    """Forward FLOPs of a decoder: 2 x body parameters per token, causal attention (QK^T and AV),
    and the vocabulary projection at the positions whose logits are computed."""

    def __init__(self, model) -> None:
        c = model.config
        body = sum(p.numel() for p in model.base_model.parameters())
        self.body = body - model.get_input_embeddings().weight.numel()  # a lookup, not a matmul
        self.layers, self.hidden, self.vocab = c.num_hidden_layers, c.hidden_size, c.vocab_size

    def forward(self, tokens: int, logits_at: int, past: int = 0) -> tuple[float, float, float]:
        attention = 2 * self.layers * self.hidden * tokens * (2 * past + tokens)  # causal half of 4·T²·d
        return 2.0 * self.body * tokens, float(attention), 2.0 * self.hidden * self.vocab * logits_at


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--documents", type=int, default=2)
    ap.add_argument("--min-chars", type=int, default=10000, help="page length (10,000 chars ~ 3,000 tokens)")
    ap.add_argument("--sample", type=int, default=24, help="pairs the naive method runs")
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--set", dest="sets", action="append", default=[])
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="elong-bench-"))
    cfg = load_config(None, [f"model.path={args.model!r}", f"data_dir={str(Path('.elong/demo').resolve())!r}",
                             *args.sets])
    pages = work / "pages.jsonl"
    write_demo_corpus(pages, 10 * args.documents, min_chars=args.min_chars, max_chars=int(args.min_chars * 1.3))
    pool = [d for d in read_documents([pages]) if not isinstance(d, BadRow)]
    docs = [d for d in pool if len(d.text) >= args.min_chars][: args.documents]
    pipe = Pipeline(cfg, milvus_uri=str(work / "pool.db"))
    pipe.stage("index").process(pool)
    anchors = pipe.stage("entropy").process(docs).outputs
    candidates = pipe.stage("retrieval").process(anchors).outputs
    engine, flops, sep = pipe.engine, FlopModel(pipe.engine.model), pipe.separator

    verify = pipe.stage("verify")
    t0 = time.perf_counter()
    deps = []
    for i in range(0, len(candidates), cfg.agents.max_batch["verify"]):  # as the worker batches
        deps += verify.process(candidates[i : i + cfg.agents.max_batch["verify"]]).outputs
    ours_wall = time.perf_counter() - t0
    ours_tokens = verify.stats["lm_tokens"]

    naive_tokens = bound = 0
    naive_f, ours_f = [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]
    pairs = []
    for cand_rec, dep in zip(candidates, deps, strict=True):
        n = len(dep.token_ids)
        ctx = {c.context_id: c.token_ids for c in dep.contexts}
        for cand in cand_rec.candidates:
            idx = sorted(set(cand.anchor_indices))
            length = len(ctx[cand.context_id]) + 2 + n  # [sep C sep D]
            naive_tokens += len(idx) * length
            run = len(ctx[cand.context_id]) + 2 + idx[-1]  # up to the last anchor's prediction
            bound += run
            for k, v in enumerate(flops.forward(length, length)):
                naive_f[k] += len(idx) * v
            for k, v in enumerate(flops.forward(run, len(idx))):
                ours_f[k] += v
        pairs += [(dep, p) for p in dep.pairs]
    # Shared prefixes computed once: the body and attention FLOPs of the tokens not run again.
    saved = bound - ours_tokens
    ours_f[0] -= 2.0 * flops.body * saved

    rng = random.Random(0)
    sample = rng.sample(pairs, min(args.sample, len(pairs)))
    t0 = time.perf_counter()
    mismatches = max_diff = 0.0
    for dep, p in sample:
        c = next(c for c in dep.contexts if c.context_id == p.context_id).token_ids
        ids = [*sep, *c, *sep, *dep.token_ids]
        with torch.inference_mode():  # the plain way: logits at every position, read one
            z = engine.model(torch.tensor([ids])).logits[0, 2 * len(sep) + len(c) - 1 + p.anchor_index].double()
        h_ctx = float(torch.logsumexp(z, 0) - (torch.softmax(z, 0) * z).sum())
        d_i = relative_reduction(p.h, h_ctx)
        max_diff = max(max_diff, abs(d_i - p.d_i))
        mismatches += (d_i > cfg.verify.epsilon) != p.accepted
    naive_wall = (time.perf_counter() - t0) / max(len(sample), 1) * len(pairs)

    unique = sum(len(c.candidates) for c in candidates)
    print(f"{len(docs)} documents, {sum(len(d.token_ids) for d in deps):,} tokens, "
          f"{sum(len(a.anchors) for a in anchors)} anchors, {len(pairs)} pairs, {unique} unique candidates, "
          f"{sum(p.accepted for _, p in pairs)} accepted (K {cfg.retrieval.top_k}, alpha {cfg.entropy.alpha})")
    print(f"LM tokens   naive {naive_tokens:>13,}   exact bound {bound:,}   achieved {ours_tokens:,} "
          f"({saved:,} shared-prefix tokens not rerun)")
    print(f"            naive/achieved {naive_tokens / ours_tokens:.2f}x   naive/bound {naive_tokens / bound:.2f}x   "
          f"achieved/bound {ours_tokens / bound:.3f}")
    for name, f in (("naive", naive_f), ("this", ours_f)):
        print(f"GFLOP {name:<6}{sum(f) / 1e9:>12,.0f}   body {f[0] / 1e9:,.0f}  attention {f[1] / 1e9:,.0f}  "
              f"vocabulary projection {f[2] / 1e9:,.0f}")
    print(f"            naive/this {sum(naive_f) / sum(ours_f):.2f}x fewer FLOPs")
    print(f"wall        naive {naive_wall:,.0f} s (scaled from {len(sample)} sampled pairs)   "
          f"this {ours_wall:,.0f} s   naive/this {naive_wall / ours_wall:.2f}x")
    print(f"same result on the sample: max |dI naive - dI this| {max_diff:.1e}, accepted flags differing "
          f"{int(mismatches)} of {len(sample)}")


if __name__ == "__main__":
    main()
