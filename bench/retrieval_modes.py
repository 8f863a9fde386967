"""Which retrieval mode brings the pages a document depends on: dense, lexical (BM25) or hybrid?

The PostgreSQL manual as bench/long_samples.py takes it (the same pool pages, the same targets:
later pages whose body links name the most pool pages; a body link is a human-written dependency,
bench/link_truth.py). For each retrieval.mode the pool is indexed into its own collection and the
targets' anchors (SmolLM2's, from the shared entropy cache) are retrieved at the same top_k:

- linked pages retrieved: distinct (target, linked pool page) pairs among the contexts retrieval
  hands to verification, over all such pairs; and the same within the first max_contexts contexts
  (what verification measures);
- indexing rate: pool pages per second, each mode indexing the same first --rate-pages pages in
  this run, side by side (the embedder is what dense and hybrid pay);
- search rate: anchor queries per second through the retrieval stage.

With --verify, each mode's contexts are verified too (the measurement cache makes pairs another mode
measured free) and the accepted linked pages and accepted contexts per target are printed.

    .venv/bin/python bench/retrieval_modes.py [--pool 400] [--targets 6] [--modes dense lexical hybrid] \
        [--top-k 5] [--rate-pages 40] [--verify] [--embedder minilm-static]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from debian_docs import PACKAGE, index_once
from long_samples import WORK, corpus_arguments, linked_pages, verified

from entropylong_streamer.config import load_config
from entropylong_streamer.measurements import MemoryCache
from entropylong_streamer.pipeline import Pipeline
from entropylong_streamer.topics import Doc


def pool_name(mode: str, embedder: str) -> str:
    """The collection (and pool file stem) of a mode and embedder; MiniLM's dense pool keeps the default
    name: it is the index bench/long_samples.py built."""
    if mode == "dense" and embedder == "minilm":
        return "elong_pool"
    return f"elong_pool_{mode}" + ("" if embedder == "minilm" or mode == "lexical" else f"_{embedder}")


def mode_config(mode: str, args, data_dir: Path):
    embedder = getattr(args, "embedder", "minilm")
    return load_config(None, [f"model.path={args.model!r}", f"data_dir={str(data_dir)!r}",
                              f"retrieval.mode={mode!r}", f"retrieval.embedder={embedder!r}",
                              f"milvus.collection={pool_name(mode, embedder)!r}", f"retrieval.top_k={args.top_k}",
                              f"retrieval.max_contexts={args.max_contexts}", "verify.span_tokens=8", *args.sets])


def index_rate(mode: str, args, docs: list[Doc]) -> float:
    """Pool pages per second into a fresh collection of this mode."""
    with tempfile.TemporaryDirectory() as tmp:
        pipe = Pipeline(mode_config(mode, args, Path(tmp)), milvus_uri=str(Path(tmp) / "rate.db"))
        index = pipe.stage("index")
        index.process(docs[:2])  # load the embedder and create the collection outside the clock
        t0 = time.perf_counter()
        for i in range(2, len(docs), 16):
            index.process(docs[i : i + 16])
        rate = (len(docs) - 2) / (time.perf_counter() - t0)
        pipe.pool.client.close()
    return rate


def retrieve_linked(pipe: Pipeline, anchors: list, linked: dict[str, set[str]]):
    """The retrieval stage over the targets' anchors, timed: (stage, candidates, seconds, linked pages
    among the candidates)."""
    retrieval = pipe.stage("retrieval")
    t0 = time.perf_counter()
    candidates = retrieval.process(anchors).outputs
    seconds = time.perf_counter() - t0
    found = sum(len(linked[c.doc_id] & {x.context_doc_id for x in c.candidates}) for c in candidates)
    return retrieval, candidates, seconds, found


def linked_pages_near_anchors(targets, by_name: dict[str, str], anchors: list,
                              near_chars: int) -> dict[str, set[str]]:
    """Per target, the linked pool pages one of whose link texts holds an anchor or has one within
    near_chars characters: the links the method can ask about at all."""
    spans = {rec.doc_id: [(a.char_start, a.char_end) for a in rec.anchors] for rec in anchors}
    out: dict[str, set[str]] = {}
    for page in targets:
        out[page.doc_id] = {by_name[t] for start, end, t in page.links if t in by_name and any(
            a < end + near_chars and b > start - near_chars for a, b in spans.get(page.doc_id, ()))}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    corpus_arguments(ap)
    ap.add_argument("--modes", nargs="+", default=["dense", "lexical", "hybrid"])
    ap.add_argument("--top-k", type=int, default=5)
    ap.add_argument("--max-contexts", type=int, default=24)
    ap.add_argument("--rate-pages", type=int, default=40, help="0: no indexing rates")
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--verify", action="store_true")
    ap.add_argument("--near-chars", type=int, default=0, help="an anchor this close to a link text counts as on it")
    ap.add_argument("--embedder", default="minilm", help="retrieval.embedder of dense and hybrid (minilm-static)")
    ap.add_argument("--set", dest="sets", action="append", default=[])
    args = ap.parse_args()

    pool_pages, target_pages = linked_pages(args)
    targets = {p.doc_id: p for p in target_pages}
    by_name = {p.name: p.doc_id for p in pool_pages}
    linked = {p.doc_id: {by_name[t] for _, _, t in p.links if t in by_name} for p in target_pages}
    n_linked = sum(len(v) for v in linked.values())
    docs = [Doc(doc_id=p.doc_id, text=p.text) for p in target_pages]
    pool_docs = [Doc(doc_id=p.doc_id, text=p.text) for p in pool_pages] + docs
    print(f"{PACKAGE}: pool {len(pool_pages)} pages, {len(docs)} targets with {n_linked} body links to pool pages; "
          f"top_k {args.top_k}, max_contexts {args.max_contexts}")

    rates = {mode: index_rate(mode, args, pool_docs[: args.rate_pages]) if args.rate_pages else float("nan")
             for mode in args.modes}
    scores = MemoryCache.load(WORK / "scores.msgpack")
    cache = MemoryCache.load(WORK / "measurements.msgpack") if args.verify else None
    anchors = None
    rows = []
    reached: dict[str, set[str]] = {}  # linked pages some mode retrieved, per target
    for mode in args.modes:
        name = pool_name(mode, args.embedder)
        pipe = Pipeline(mode_config(mode, args, WORK), milvus_uri=str(WORK / ("pool.db" if name == "elong_pool" else
                                                                              f"pool-{name.removeprefix('elong_pool_')}.db")))
        index_once(pipe, pool_docs, WORK)
        if anchors is None:
            anchors = pipe.stage("entropy", scores).process(docs).outputs
            scores.save(WORK / "scores.msgpack")
        retrieval, candidates, search_s, found = retrieve_linked(pipe, anchors, linked)
        for c in candidates:
            reached.setdefault(c.doc_id, set()).update(linked[c.doc_id] & {x.context_doc_id for x in c.candidates})
        row = {"mode": mode, "rate": rates[mode], "queries": retrieval.stats["queries"],
               "qps": retrieval.stats["queries"] / search_s, "found": found,
               "contexts": statistics.mean(len(c.candidates) for c in candidates)}
        if cache is not None:
            deps = verified(pipe.stage("verify", cache), candidates, cache, f"verify ({mode})")
            # a document context's id is its document's id
            accepted = {r.doc_id: {p.context_id for p in r.pairs if p.accepted} for r in deps}
            row["accepted_linked"] = sum(len(linked[d] & accepted.get(d, set())) for d in targets)
            row["accepted_contexts"] = statistics.median(len(accepted.get(d, ())) for d in targets)
        rows.append(row)
        pipe.pool.client.close()

    dense = next((r for r in rows if r["mode"] == "dense"), None)
    print(f"\n{'mode':<9}{'index pages/s':>14}{'(x dense)':>10}{'queries/s':>11}{'contexts/target':>17}"
          f"{'linked pages retrieved':>24}{'(x dense)':>10}" + (f"{'linked accepted':>17}{'accepted/target':>17}"
                                                            if args.verify else ""))
    for r in rows:
        ratio = f"{r['rate'] / dense['rate']:.1f}x" if dense else ""
        found = f"{r['found'] / dense['found']:.2f}x" if dense and dense["found"] else ""
        line = (f"{r['mode']:<9}{r['rate']:>14.1f}{ratio:>10}{r['qps']:>11.1f}{r['contexts']:>17.1f}"
                f"{r['found']:>14} of {n_linked:<4} ({r['found'] / n_linked:.0%}){found:>5}")
        if args.verify:
            line += f"{r['accepted_linked']:>11} of {n_linked:<4}{r['accepted_contexts']:>12}"
        print(line)
    print(f"(indexing rates on the first {args.rate_pages} pool pages, each mode in a fresh collection, this run)")
    near = linked_pages_near_anchors(target_pages, by_name, anchors, args.near_chars)
    never = {d: linked[d] - reached.get(d, set()) for d in linked}
    print(f"linked pages with an anchor inside or within {args.near_chars} characters of a link to them: "
          f"{sum(len(v) for v in near.values())} of {n_linked}; retrieved by no mode: "
          f"{sum(len(v) for v in never.values())}, of which {sum(len(never[d] & near[d]) for d in never)} "
          f"have such an anchor (what a better search could still find)")


if __name__ == "__main__":
    main()
