"""Multi-hop samples on real documentation: how long, how many documents, how far apart (pack.depth).

The pool of bench/big_pool.py (the PostgreSQL manual, then the Linux kernel's documentation: >= 3,000
pages, lexical retrieval) and the targets of bench/long_samples.py. Hop by hop, the documents go
through entropy, retrieval and verification (SmolLM2, the default criterion): hop 1 the targets, hop
h the pool pages that hop h - 1 accepted as contexts (at most --hop-docs, the most accepted first), as
in a live corpus where every pool page is a document too. Then every target's sample is packed at
each depth from 1 to --depth with pack.sample_tokens 131072, knowing every record (as batch mode does).

Per depth: tokens per sample, documents per sample, contexts by depth, the distance of every verified
edge (tokens from the context's end to its anchor, in the sample), and the chrome share of the
accepted pairs the samples hold (anchors on a line or in a word 6-gram that >= 10 pool pages hold).
The measurements are cached (scores, verify pairs): a second run costs retrieval only.

    .venv/bin/python bench/multihop_samples.py [--pool 3000] [--targets 6] [--depth 3] [--hop-docs 48]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import Counter

from big_pool import big_pool, indexed
from link_truth import PoolCounts
from long_samples import MIN_DOCS, WORK, corpus_arguments, linked_pages
from retrieval_modes import mode_config
from rich.progress import Progress

from entropylong_streamer.measurements import MemoryCache
from entropylong_streamer.pipeline import Pipeline
from entropylong_streamer.services.shards import spread, spread_text
from entropylong_streamer.services.verified_store import VerifiedStore, verified_record
from entropylong_streamer.stages.pack import pieces_of, sample_from
from entropylong_streamer.topics import DependenciesRecord, Doc


def verified(pipe: Pipeline, docs: list[Doc], label: str) -> list[DependenciesRecord]:
    """The documents through entropy, retrieval and verification, one at a time (progress, caches saved)."""
    scores = MemoryCache.load(WORK / "scores.msgpack")
    cache = MemoryCache.load(WORK / "measurements.msgpack")
    entropy, retrieval, verify = pipe.entropy(scores), pipe.retrieval(), pipe.verify(cache)
    out: list[DependenciesRecord] = []
    with Progress() as progress:
        task = progress.add_task(label, total=len(docs))
        for doc in docs:
            for anchors in entropy.process([doc]).outputs:
                out += verify.process(retrieval.process([anchors]).outputs).outputs
            scores.save(WORK / "scores.msgpack")
            cache.save(WORK / "measurements.msgpack")
            progress.advance(task)
    return out


def accepted_docs(recs: list[DependenciesRecord]) -> Counter:
    """Context documents by how many pairs accepted them."""
    return Counter(rec.context(p.context_id).context_doc_id for rec in recs for p in rec.pairs if p.accepted)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    corpus_arguments(ap)
    ap.set_defaults(pool=3000)
    ap.add_argument("--target-pool", type=int, default=400, help="long_samples.py's --pool: picks the same targets")
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--hop-docs", type=int, default=48, help="documents verified per hop beyond the targets, at most")
    ap.add_argument("--sample-tokens", type=int, default=131072)
    ap.add_argument("--top-k", type=int, default=5)
    ap.add_argument("--max-contexts", type=int, default=24)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--set", dest="sets", action="append", default=[])
    args = ap.parse_args()

    targets = linked_pages(argparse.Namespace(**{**vars(args), "pool": args.target_pool}))[1]
    pool, _, per_package = big_pool(args, {p.doc_id for p in targets})
    target_docs = [Doc(doc_id=p.doc_id, text=p.text) for p in targets]
    by_id = {d.doc_id: d for d in pool + target_docs}
    cfg = mode_config("lexical", argparse.Namespace(**{**vars(args), "sets": [
        *args.sets, "milvus.collection='big_lexical'", f"pack.sample_tokens={args.sample_tokens}",
        f"pack.seq_len={max(args.sample_tokens, 131072)}"]}), WORK)
    pipe = Pipeline(cfg, milvus_uri=str(WORK / "big-lexical.db"))
    seconds = indexed(pipe, pool + target_docs, "lexical")
    print(f"pool {len(pool):,} pages (" + ", ".join(f"{n:,} {p}" for p, n in per_package.items())
          + f"), indexed in {seconds / 60:.1f} min; {len(targets)} targets; top_k {args.top_k}, max_contexts "
          f"{args.max_contexts}, sample_tokens {args.sample_tokens:,}, criterion {cfg.verify.criterion}")

    records: dict[str, DependenciesRecord] = {}
    frontier = target_docs
    for hop in range(1, args.depth + 1):
        t0 = time.perf_counter()
        recs = verified(pipe, frontier, f"hop {hop}")
        records.update((r.doc_id, r) for r in recs)
        wanted = [d for d, _ in accepted_docs(recs).most_common() if d not in records and d in by_id]
        print(f"hop {hop}: {len(frontier)} documents verified in {time.perf_counter() - t0:.0f} s, "
              f"{sum(p.accepted for r in recs for p in r.pairs):,} accepted pairs; {len(wanted)} new context "
              f"documents{f' (the first {args.hop_docs} next)' if len(wanted) > args.hop_docs else ''}")
        frontier = [by_id[d] for d in wanted[: args.hop_docs]]
        if not frontier:
            break

    known = VerifiedStore()
    known.add(verified_record(r, pieces_of(r)) for r in records.values())
    counts = PoolCounts([d.text for d in pool])
    print(f"\n{'depth':<6}{'tokens/sample':>28}{'documents/sample':>24}{'contexts by depth (mean)':>30}"
          f"{'edge distance (median, p90)':>32}{'chrome line/6-gram':>20}")
    for depth in range(1, args.depth + 1):
        samples = [sample_from(records[d.doc_id], pipe.separator, cfg.pack.seed, args.sample_tokens, known.get, depth)
                   for d in target_docs if d.doc_id in records]
        by_depth = Counter(k for s in samples for k in s.context_depths)
        edges = [dep for s in samples for dep in s.dependencies]
        chrome = [counts.chrome(rec.text, [(p.char_start, p.char_end)], MIN_DOCS)[0]
                  for s in samples for dep in s.dependencies
                  for rec in (records[dep.target_id or s.doc_id],)
                  for p in rec.pairs if (p.context_id, p.anchor_index) == (dep.context_id, dep.anchor_index)]
        far = spread([d.from_end for d in edges])
        print(f"{depth:<6}{spread_text(spread([len(s) for s in samples]), 'tokens'):>28}"
              f"{statistics.median(1 + len(s.context_ids) for s in samples):>24}"
              f"{', '.join(f'{k}: {n / len(samples):.1f}' for k, n in sorted(by_depth.items())):>30}"
              f"{far['median'] or 0:>22,.0f}{far['p90'] or 0:>10,.0f}"
              f"{sum(c[0] for c in chrome) / max(len(chrome), 1):>13.1%}"
              f"{sum(c[1] for c in chrome) / max(len(chrome), 1):>7.1%}")


if __name__ == "__main__":
    main()
