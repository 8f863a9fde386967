"""The retrieval service against bare embedding + bare Milvus search on the same queries, in one
run, and the recall@K of the pool's ANN index against exact (FLAT) search.

    .venv/bin/python bench/retrieval.py [--documents 120] [--anchors 8] [--set KEY=VALUE ...]

Queries are anchor windows (w tokens either side, decoded, as the entropy stage makes them) at
random positions of each document; no LM runs. Service: RetrievalStage.process on the anchors
records (one embedding call per batch, one search per document excluding itself, the leakage
rule, dedup). Bare: the same embedding call and the same pymilvus searches, nothing else.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import numpy as np

from entropylong_streamer.config import load_config
from entropylong_streamer.demo_corpus import write_demo_corpus
from entropylong_streamer.pipeline import Pipeline
from entropylong_streamer.services.embedder import SentenceEmbedder
from entropylong_streamer.services.pool import MilvusPool
from entropylong_streamer.stages.index import IndexStage
from entropylong_streamer.stages.ingest import BadRow, read_documents
from entropylong_streamer.stages.retrieve import RetrievalStage
from entropylong_streamer.topics import Anchor, AnchorsRecord


def anchors_records(docs, tokenizer, per_doc: int, window: int, seed: int = 0) -> list[AnchorsRecord]:
    rng = random.Random(seed)
    out = []
    for d in docs:
        tok = tokenizer.tokenize(d.text)
        n = len(tok.ids)
        picks = sorted(rng.sample(range(8, n), min(per_doc, max(0, n - 8))))
        anchors = [Anchor(index=t, char_start=tok.offsets[t][0], char_end=tok.offsets[t][1], entropy=5.0,
                          nll=5.0, query=tokenizer.decode(tok.ids[max(0, t - window) : t + window + 1]))
                   for t in picks]
        out.append(AnchorsRecord(doc_id=d.doc_id, text=d.text, token_ids=tok.ids, token_offsets=tok.offsets,
                                 entropy_f16=np.zeros(n, "<f2").tobytes(), anchors=anchors,
                                 config_version="bench"))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--documents", type=int, default=120)
    ap.add_argument("--anchors", type=int, default=8)
    ap.add_argument("--cache", default=".elong/demo/models")
    ap.add_argument("--set", dest="sets", action="append", default=[])
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="elong-bench-retrieval-"))
    cfg = load_config(None, [f"data_dir={str(work)!r}", *args.sets])
    (work / "models").symlink_to(Path(args.cache).resolve(), target_is_directory=True)
    r = cfg.retrieval
    corpus = work / "docs.jsonl"
    write_demo_corpus(corpus, args.documents)
    docs = [d for d in read_documents([corpus]) if not isinstance(d, BadRow)]
    tokenizer = Pipeline(cfg).engine_tokenizer()
    emb = SentenceEmbedder(r.embedder)

    ann = MilvusPool(str(work / "ann.db"), "pool", emb, emb.dim, index_type=r.index_type,
                     index_params=r.index_params, search_params=r.search_params)
    exact = MilvusPool(str(work / "exact.db"), "pool", emb, emb.dim, index_type="FLAT")
    t0 = time.perf_counter()
    IndexStage(tokenizer, ann, r.chunk_tokens, r.chunk_overlap).process(docs)
    index_seconds = time.perf_counter() - t0
    IndexStage(tokenizer, exact, r.chunk_tokens, r.chunk_overlap).process(docs)
    ann.flush()
    exact.flush()
    records = anchors_records(docs, tokenizer, args.anchors, cfg.entropy.window)
    queries = [a.query for rec in records for a in rec.anchors]

    stage = RetrievalStage(emb, ann, r.top_k, r.leak_ngram, "bench")
    stage.process(records[:4])  # warm-up
    stage.stats.clear()
    t0 = time.perf_counter()
    stage.process(records)
    service = time.perf_counter() - t0

    k = r.top_k * stage.overfetch
    t0 = time.perf_counter()
    vectors = emb.embed(queries)
    at = 0
    for rec in records:
        ann.search(vectors[at : at + len(rec.anchors)], k, rec.doc_id)
        at += len(rec.anchors)
    bare = time.perf_counter() - t0

    recalls = {kk: [] for kk in (r.top_k, k)}
    at = 0
    for rec in records:
        v = vectors[at : at + len(rec.anchors)]
        at += len(rec.anchors)
        for kk in recalls:
            for got, want in zip(ann.search(v, kk, rec.doc_id), exact.search(v, kk, rec.doc_id), strict=True):
                truth = {h.chunk_id for h in want}
                if truth:
                    recalls[kk].append(len(truth & {h.chunk_id for h in got}) / len(truth))

    params = {**ann.index_params, **ann.search_params}
    print(f"{len(docs)} documents, {ann.size()} chunks ({r.chunk_tokens} tokens, overlap {r.chunk_overlap}), "
          f"indexed in {index_seconds:.1f} s; {len(queries)} queries; index {r.index_type} {params}")
    print(f"bare embedding + search: {len(queries) / bare:.0f} queries/s")
    print(f"retrieval service:       {len(queries) / service:.0f} queries/s  ({bare / service:.2f} of bare)")
    print(f"candidates per anchor {stage.stats['pairs'] / max(len(queries), 1):.2f}, "
          f"leaks excluded {stage.stats['leaks_excluded']}, unique candidates {stage.stats['unique_candidates']}")
    for kk, values in recalls.items():
        print(f"recall@{kk} of {r.index_type} against exact search: {np.mean(values):.4f} ({len(values)} queries)")


if __name__ == "__main__":
    main()
