"""What reusing a context's keys and values across documents saves verification: the same candidates
verified three ways in one run, on the catalogue corpus with entries in pages of real prose (as
bench/screen.py), where several documents retrieve the same pages.

- one batch: every document in one verify call; a [sep C] that several documents share runs once
  within the call (the transformers engine's shared prefixes);
- one by one: each document its own call, as a stream that brings one document at a time;
- one by one, kept: the same, with model.prefix_cache_mib: a [sep C] an earlier call ran is not
  run again while it stays in the cache.

With --engine vllm the same three on the vLLM engine, where keeping is its prefix caching
(model.vllm_prefix_caching; the cache is emptied before each run): one batch and one by one, kept
read the cache; one by one reads nothing (vLLM shares no prefix within a call without it).

Printed beside them: the bound with no sharing at all, and the floor of sharing (every distinct
[sep C] once in the whole run); and whether the measurements agree.

    .venv/bin/python bench/kv_reuse.py [--docs 3] [--page-chars 6000] [--cache-mib 1024] [--engine vllm]
"""

from __future__ import annotations

import argparse
import shutil
import time

import numpy as np
from screen import WORK, corpus, models_dir, pairs_by_key

from entropylong_streamer.config import load_config
from entropylong_streamer.pipeline import Pipeline
from entropylong_streamer.services.prefix_cache import PrefixCache
from entropylong_streamer.topics import CandidatesRecord, Doc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=3)
    ap.add_argument("--page-chars", type=int, default=6000)
    ap.add_argument("--doc-chars", type=int, default=0)
    ap.add_argument("--noise", type=int, default=16)
    ap.add_argument("--alpha", type=float, default=-1.0)
    ap.add_argument("--cache-mib", type=int, default=1024)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--engine", choices=["transformers", "vllm"], default="transformers")
    ap.add_argument("--set", dest="sets", action="append", default=[])
    args = ap.parse_args()
    catalogue = corpus(args)
    work = WORK / "kv-reuse"
    shutil.rmtree(work, ignore_errors=True)
    (work / "data").mkdir(parents=True)
    (work / "data" / "models").symlink_to(models_dir(), target_is_directory=True)
    vllm = args.engine == "vllm"
    engine_sets = [f"model.engine={args.engine!r}", *(["model.vllm_prefix_caching=true"] if vllm else [])]
    cfg = load_config(None, [f"model.path={args.model!r}", f"entropy.alpha={args.alpha}", *engine_sets,
                             f"data_dir={str((work / 'data').resolve())!r}", *args.sets])
    pipe = Pipeline(cfg, milvus_uri=str(work / "pool.db"))
    pipe.stage("index").process([Doc(doc_id=i, text=t) for i, t in catalogue.pool()])
    anchors = pipe.stage("entropy").process([Doc(doc_id=d.doc_id, text=d.text) for d in catalogue.docs]).outputs
    candidates = pipe.stage("retrieval").process(anchors).outputs
    engine, sep = pipe.engine, pipe.separator

    def verify(batches: list[list[CandidatesRecord]], kept_mib: int) -> tuple[int, float, list]:
        if vllm:
            engine.prefix_caching = bool(kept_mib)
            engine.llm.reset_prefix_cache()
        else:
            engine.prefix_cache = PrefixCache(kept_mib << 20) if kept_mib else None
        stage = pipe.stage("verify")
        t0 = time.perf_counter()
        out = [rec for batch in batches for rec in stage.process(batch).outputs]
        return stage.stats["lm_tokens"], time.perf_counter() - t0, out

    runs = {
        "one batch": verify([candidates], args.cache_mib if vllm else 0),
        "one by one": verify([[c] for c in candidates], 0),
        "one by one, kept": verify([[c] for c in candidates], args.cache_mib),
    }
    bound = distinct = 0
    seen: set[tuple[int, ...]] = set()
    for rec in runs["one batch"][2]:
        last = {}
        for p in rec.pairs:
            last[p.context_id] = max(last.get(p.context_id, -1), p.anchor_index)
        for c in rec.contexts:
            prefix = (*sep, *c.token_ids)
            bound += len(prefix) + len(sep) + last[c.context_id]
            distinct += len(sep) + last[c.context_id] + (0 if prefix in seen else len(prefix))
            seen.add(prefix)
    contexts = sum(len(r.contexts) for r in runs["one batch"][2])
    print(f"{len(candidates)} documents, {contexts} (document, context) forwards over {len(seen)} distinct contexts")
    print(f"{'':<20}{'LM tokens':>12}{'of no sharing':>15}{'wall s':>9}")
    print(f"{'no sharing (bound)':<20}{bound:>12,}{1.0:>15.2f}")
    for name, (tokens, wall, _) in runs.items():
        print(f"{name:<20}{tokens:>12,}{tokens / bound:>15.2f}{wall:>9.0f}")
    print(f"{'each [sep C] once':<20}{distinct:>12,}{distinct / bound:>15.2f}   (the floor of sharing)")
    base = pairs_by_key(runs["one batch"][2])
    for name, (_, _, out) in list(runs.items())[1:]:
        other = pairs_by_key(out)
        diff = (max((abs(base[k].nll_ctx - other[k].nll_ctx) for k in base), default=0.0)
                if other.keys() == base.keys() else np.inf)
        print(f"{name}: same pairs as one batch, largest |NLL' difference| {diff:.1e}")


if __name__ == "__main__":
    main()
