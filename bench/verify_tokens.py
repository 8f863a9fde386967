"""LM tokens of verification: naive (one forward of [C; D] per pair) against this project's
(one forward of [C; D up to the last anchor that retrieved C] per unique candidate), on the same
documents in one run, with the exact token bound printed beside the achieved ratio.

    .venv/bin/python bench/verify_tokens.py [--documents 16] [--model smollm2] [--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from entropylong_streamer.config import load_config
from entropylong_streamer.demo_corpus import write_demo_corpus
from entropylong_streamer.pipeline import Pipeline
from entropylong_streamer.stages.ingest import BadRow, read_documents


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--documents", type=int, default=16)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--set", dest="sets", action="append", default=[])
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="elong-bench-"))
    cfg = load_config(Path("deploy/demo.toml"), [f"model.path={args.model!r}", *args.sets,
                                                 f"data_dir={str(Path('.elong/demo').resolve())!r}"])
    corpus = work / "pages.jsonl"
    write_demo_corpus(corpus, args.documents)
    docs = [d for d in read_documents([corpus]) if not isinstance(d, BadRow)]
    pipe = Pipeline(cfg, milvus_uri=str(work / "pool.db"))
    pipe.index().process(docs)
    anchors = pipe.entropy().process(docs).outputs
    candidates = pipe.retrieval().process(anchors).outputs
    verify = pipe.verify()
    t0 = time.perf_counter()
    deps = verify.process(candidates).outputs
    wall = time.perf_counter() - t0

    naive = bound = 0
    for cand_rec, dep in zip(candidates, deps, strict=True):
        n = len(dep.token_ids)
        ctx_len = {c.context_id: len(c.token_ids) for c in dep.contexts}
        for cand in cand_rec.candidates:
            pairs = len(set(cand.anchor_indices))
            naive += pairs * (ctx_len[cand.context_id] + 2 + n)  # [sep C sep D] per pair
            bound += ctx_len[cand.context_id] + 2 + max(cand.anchor_indices) + 1
    actual = verify.stats["lm_tokens"]
    pairs = verify.stats["pairs"]
    print(f"documents {len(docs)}, pairs {pairs}, unique candidates {sum(len(c.candidates) for c in candidates)}, "
          f"accepted {verify.stats['accepted']}, verify wall {wall:.1f} s")
    print(f"LM tokens: naive {naive:,}  exact bound {bound:,}  achieved {actual:,}")
    print(f"naive/achieved {naive / max(actual, 1):.2f}x   (naive/bound {naive / max(bound, 1):.2f}x)")


if __name__ == "__main__":
    main()
