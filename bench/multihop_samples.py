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
    .venv/bin/python bench/multihop_samples.py --records OUT/dependencies.msgpack --targets-file T.jsonl
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import Counter
from pathlib import Path

from big_pool import big_pool, indexed
from link_truth import PoolCounts
from long_samples import MIN_DOCS, WORK, corpus_arguments, linked_pages
from retrieval_modes import mode_config
from rich.progress import Progress

from entropylong_streamer.measurements import MemoryCache
from entropylong_streamer.pipeline import Pipeline
from entropylong_streamer.quality.report import read_records
from entropylong_streamer.services.shards import spread, spread_text
from entropylong_streamer.services.verified_store import VerifiedStore, verified_record
from entropylong_streamer.sources import doc_id_for
from entropylong_streamer.stages.pack import pieces_of, sample_from
from entropylong_streamer.topics import DependenciesRecord, Doc


def verified(pipe: Pipeline, docs: list[Doc], label: str) -> list[DependenciesRecord]:
    """The documents through entropy, retrieval and verification, one at a time (progress, caches saved)."""
    scores = MemoryCache.load(WORK / "scores.msgpack")
    cache = MemoryCache.load(WORK / "measurements.msgpack")
    entropy, retrieval, verify = pipe.stage("entropy", scores), pipe.stage("retrieval"), pipe.stage("verify", cache)
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
    ap.add_argument("--records", type=Path, help="an elong build's dependencies.msgpack: its table, no LM work")
    ap.add_argument("--targets-file", type=Path, help="with --records: the JSONL of the targets")
    args = ap.parse_args()
    if args.records:
        return from_build(args.records, args.targets_file, args.sample_tokens, args.depth)

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
        spent = [c for r in recs for c in r.costs.values()]
        print(f"hop {hop}: {len(frontier)} documents verified in {time.perf_counter() - t0:.0f} s, "
              f"LM work run {sum(c.lm_tokens for c in spent):,.0f} tokens, {sum(c.flops for c in spent) / 1e12:.1f} "
              f"TFLOP, {sum(c.seconds for c in spent):.0f} s ({sum(c.reused for c in spent):,} measurements read "
              f"from the caches), {sum(p.accepted for r in recs for p in r.pairs):,} accepted pairs; "
              f"{len(wanted)} new context "
              f"documents{f' (the first {args.hop_docs} next)' if len(wanted) > args.hop_docs else ''}")
        frontier = [by_id[d] for d in wanted[: args.hop_docs]]
        if not frontier:
            break

    depth_table(records, [d.doc_id for d in target_docs], pipe.separator, cfg.pack.seed, args.sample_tokens,
                args.depth, PoolCounts([d.text for d in pool]))


def depth_table(records: dict[str, DependenciesRecord], targets: list[str], separator: tuple[int, ...], seed: int,
                sample_tokens: int, depth: int, counts: PoolCounts | None = None) -> None:
    """The targets' samples packed at each depth from 1 to `depth`, knowing every record."""
    known = VerifiedStore()
    known.add(verified_record(r, pieces_of(r)) for r in records.values())
    print(f"\n{len(targets)} targets, {len(records)} documents verified, sample_tokens {sample_tokens:,}")
    print(f"{'depth':<6}{'tokens/sample':>28}{'documents/sample':>18}{'contexts by depth (mean)':>36}"
          f"{'edge distance (median, p90)':>30}{'by depth (median)':>40}{'chrome line/6-gram':>20}")
    for d in range(1, depth + 1):
        samples = [sample_from(records[t], separator, seed, sample_tokens, known.get, d)
                   for t in targets if t in records]
        by_depth = Counter(k for s in samples for k in s.context_depths)
        far = spread([e.from_end for s in samples for e in s.dependencies])
        apart: dict[int, list[int]] = {}
        for s in samples:
            for e in s.dependencies:
                apart.setdefault(e.depth, []).append(e.from_end)
        chrome = [counts.chrome(rec.text, [(p.char_start, p.char_end)], MIN_DOCS)[0]
                  for s in samples for e in s.dependencies for rec in (records[e.target_id or s.doc_id],)
                  for p in rec.pairs if (p.context_id, p.anchor_index) == (e.context_id, e.anchor_index)
                  ] if counts else []
        print(f"{d:<6}{spread_text(spread([len(s) for s in samples]), 'tokens'):>28}"
              f"{statistics.median(1 + len(s.context_ids) for s in samples):>18}"
              f"{', '.join(f'{k}: {n / len(samples):.1f}' for k, n in sorted(by_depth.items())):>36}"
              f"{far['median'] or 0:>20,.0f}{far['p90'] or 0:>10,.0f}"
              f"{', '.join(f'{k}: {statistics.median(v):,.0f}' for k, v in sorted(apart.items())):>40}"
              + (f"{sum(c[0] for c in chrome) / max(len(chrome), 1):>13.1%}"
                 f"{sum(c[1] for c in chrome) / max(len(chrome), 1):>7.1%}" if counts else f"{'-':>20}"))


def from_build(path: Path, targets_file: Path, sample_tokens: int, depth: int) -> None:
    """The table over the records of an `elong build` (OUT/dependencies.msgpack) whose --docs held the
    targets (a JSONL file) and the documents their contexts come from; separator "\n\n" as one token."""
    records = {r.doc_id: r for r in read_records(path)}
    targets = [doc_id_for(json.loads(line)["text"]) for line in targets_file.read_text().splitlines() if line]
    depth_table(records, targets, (0,), 0, sample_tokens, depth)

if __name__ == "__main__":
    main()
