"""A pool of thousands of real pages on this 2-core machine: how long does indexing take, and what
does retrieval bring from it?

The pool: the PostgreSQL manual (every page of >= --min-chars characters but the targets), then the
Linux kernel's documentation (linux-doc-6.1) and Python's (python3.11-doc), all from Debian
packages the bench fetches itself (bench/debian_docs.py), up to --pool pages. The targets are
bench/long_samples.py's (PostgreSQL pages whose body links name the most pool pages; a body link
is a human-written dependency). The pool is indexed in --mode (default lexical: BM25 needs no
embedder) into its own collection, timed, with a progress bar; the dense rate is measured on the
first --rate-pages pages in the same run, for the time a dense pool of this size would take.
Then the targets' anchors (SmolLM2's, from the shared entropy cache) are retrieved from it and the
linked pages among the contexts are counted.

    .venv/bin/python bench/big_pool.py [--pool 3000] [--mode lexical] [--rate-pages 40] [--embedder minilm-static]
"""

from __future__ import annotations

import argparse
import json
import time

from debian_docs import PACKAGE, fetch_pages, index_all, page_text
from long_samples import WORK, corpus_arguments, linked_pages
from retrieval_modes import index_rate, mode_config, retrieve_linked

from entropylong_streamer.measurements import MemoryCache
from entropylong_streamer.pipeline import Pipeline
from entropylong_streamer.sources import doc_id_for
from entropylong_streamer.topics import Doc

OTHER_PACKAGES = ("linux-doc-6.1", "python3.11-doc")


def big_pool(args, exclude: set[str]) -> tuple[list[Doc], dict[str, str], dict[str, int]]:
    """Pool documents, the PostgreSQL pages' names -> doc ids (link targets), and pages per package."""
    docs: list[Doc] = []
    names: dict[str, str] = {}
    per_package: dict[str, int] = {}
    seen: set[str] = set(exclude)
    for package in (PACKAGE, *OTHER_PACKAGES):
        for path in fetch_pages(WORK, package):
            if len(docs) >= args.pool:
                return docs, names, per_package
            text = page_text(path)
            doc_id = doc_id_for(text)
            if len(text) < args.min_chars or doc_id in seen:
                continue
            seen.add(doc_id)
            docs.append(Doc(doc_id=doc_id, text=text))
            per_package[package] = per_package.get(package, 0) + 1
            if package == PACKAGE:
                names[path.name] = doc_id
    return docs, names, per_package


def indexed(pipe: Pipeline, docs: list[Doc], label: str) -> float:
    """Index the documents (unless this very pool was indexed before: a marker in WORK); seconds."""
    marker = WORK / f"big-indexed-{pipe.cfg.version('index')}.json"
    ids = [d.doc_id for d in docs]
    if marker.exists() and json.loads(marker.read_text())["ids"] == ids:
        return json.loads(marker.read_text())["seconds"]
    t0 = time.perf_counter()
    index_all(pipe, docs, f"index ({label})")
    pipe.pool.flush()
    seconds = time.perf_counter() - t0
    marker.write_text(json.dumps({"ids": ids, "seconds": seconds}))
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    corpus_arguments(ap)
    ap.set_defaults(pool=3000)
    ap.add_argument("--target-pool", type=int, default=400, help="long_samples.py's --pool: picks the same targets")
    ap.add_argument("--mode", default="lexical", choices=["dense", "lexical", "hybrid"])
    ap.add_argument("--top-k", type=int, default=5)
    ap.add_argument("--max-contexts", type=int, default=24)
    ap.add_argument("--rate-pages", type=int, default=40)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--embedder", default="minilm", help="retrieval.embedder of dense and hybrid (minilm-static)")
    ap.add_argument("--set", dest="sets", action="append", default=[])
    args = ap.parse_args()

    targets = linked_pages(argparse.Namespace(**{**vars(args), "pool": args.target_pool}))[1]
    pool, names, per_package = big_pool(args, {p.doc_id for p in targets})
    linked = {p.doc_id: {names[t] for _, _, t in p.links if t in names} for p in targets}
    n_linked = sum(len(v) for v in linked.values())
    docs = [Doc(doc_id=p.doc_id, text=p.text) for p in targets]
    chars = sum(len(d.text) for d in pool)
    print(f"pool {len(pool):,} pages ({chars / 1e6:.1f} M characters): "
          + ", ".join(f"{n:,} {p}" for p, n in per_package.items())
          + f"; {len(docs)} targets with {n_linked} body links to pool pages; mode {args.mode}, top_k {args.top_k}")

    rates = {m: index_rate(m, args, pool[: args.rate_pages]) for m in dict.fromkeys(("dense", args.mode))}
    if args.embedder != "minilm":  # the dense rate with MiniLM beside it
        rates["dense, minilm"] = index_rate("dense", argparse.Namespace(**{**vars(args), "embedder": "minilm"}),
                                      pool[: args.rate_pages])
    big = f"big-{args.mode}" + ("" if args.embedder == "minilm" or args.mode == "lexical" else f"-{args.embedder}")
    collection_args = argparse.Namespace(**{**vars(args), "sets": [*args.sets,
                                                                   f"milvus.collection={big.replace('-', '_')!r}"]})
    pipe = Pipeline(mode_config(args.mode, collection_args, WORK), milvus_uri=str(WORK / f"{big}.db"))
    seconds = indexed(pipe, pool + docs, args.mode)
    chunks = pipe.pool.size()
    scores = MemoryCache.load(WORK / "scores.msgpack")
    anchors = pipe.stage("entropy", scores).process(docs).outputs
    scores.save(WORK / "scores.msgpack")
    retrieval, _, search_s, found = retrieve_linked(pipe, anchors, linked)
    print(f"\nindexed {len(pool) + len(docs):,} pages ({chunks:,} chunks) in {seconds / 60:.1f} min "
          f"({(len(pool) + len(docs)) / seconds:.1f} pages/s); goal: 3,000 pages within 15 min")
    for m, r in rates.items():
        print(f"  {m:<8} {r:6.1f} pages/s on the first {args.rate_pages} pages in this run: "
              f"{len(pool) / r / 60:.1f} min for this pool")
    print(f"retrieval: {retrieval.stats['queries']} queries in {search_s:.1f} s "
          f"({retrieval.stats['queries'] / search_s:.1f}/s); linked pages among the contexts: {found} of {n_linked} "
          f"({found / max(n_linked, 1):.0%}); contexts per target "
          f"{retrieval.stats['unique_candidates'] / len(docs):.1f}")


if __name__ == "__main__":
    main()
