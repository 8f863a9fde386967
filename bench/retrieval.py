"""The retrieval service against bare embedding + bare Milvus search on the same queries, in one
run, and the recall@K of the pool's ANN index against exact (FLAT) search.

    .venv/bin/python bench/retrieval.py [--documents 120] [--anchors 8] [--set KEY=VALUE ...]

Everything runs against the embedded stack (noida-db, the milvus-lite server by URI). Queries are
anchor windows (w tokens either side, decoded, as the entropy stage makes them) at random
positions of each document; no LM runs. Bare: one embedding call and one pymilvus search per
document, nothing else. Stage: RetrievalStage.process in this process (the leakage rule, dedup).
Service: the real retrieval worker, anchors topic -> candidates topic, timed from the first
record produced to the last candidates record's broker timestamp, after a warm-up record.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
from worker_timing import receive

from entropylong_streamer.agents import kafka_clients as kc
from entropylong_streamer.agents.worker_loop import Produced
from entropylong_streamer.config import load_config
from entropylong_streamer.demo_corpus import write_demo_corpus
from entropylong_streamer.pipeline import Pipeline
from entropylong_streamer.services import processes
from entropylong_streamer.services.pool import MilvusPool
from entropylong_streamer.sources import BadRow, read_documents
from entropylong_streamer.stack_control import start_servers, start_worker, stop_all, write_worker_config
from entropylong_streamer.stages.index import IndexStage
from entropylong_streamer.topics import ANCHORS, CANDIDATES, Anchor, AnchorsRecord


def anchors_records(docs, tokenizer, per_doc: int, window: int, version: str, seed: int = 0) -> list[AnchorsRecord]:
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
                                 anchors=anchors,
                                 config_version=version))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--documents", type=int, default=120)
    ap.add_argument("--anchors", type=int, default=8)
    ap.add_argument("--cache", default=".elong/demo/models")
    ap.add_argument("--set", dest="sets", action="append", default=[])
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="elong-bench-retrieval-"))
    cfg = load_config(None, [
        f"data_dir={str(work)!r}", f"kafka.bootstrap_servers='127.0.0.1:{processes.free_port()}'",
        f"kafka.topic_prefix='b{uuid.uuid4().hex[:6]}.'", "kafka.idle_fetch_backoff_ms=200",
        f"milvus.uri='http://127.0.0.1:{processes.free_port()}'", *args.sets])
    (work / "models").symlink_to(Path(args.cache).resolve(), target_is_directory=True)
    r = cfg.retrieval
    corpus = work / "docs.jsonl"
    write_demo_corpus(corpus, args.documents)
    docs = [d for d in read_documents([corpus]) if not isinstance(d, BadRow)]
    pipe = Pipeline(cfg)
    tokenizer = pipe.engine_tokenizer()
    try:
        start_servers(cfg)
        emb, ann = pipe.embedder, pipe.pool
        exact = MilvusPool(cfg.milvus.uri, cfg.milvus.collection + "_exact", emb, emb.dim, index_type="FLAT")
        t0 = time.perf_counter()
        IndexStage(tokenizer, ann, r.chunk_tokens, r.chunk_overlap).process(docs)
        index_seconds = time.perf_counter() - t0
        IndexStage(tokenizer, exact, r.chunk_tokens, r.chunk_overlap).process(docs)
        ann.flush()
        exact.flush()
        records = anchors_records(docs, tokenizer, args.anchors, cfg.entropy.window, cfg.version("entropy"))
        queries = [a.query for rec in records for a in rec.anchors]

        stage = pipe.stage("retrieval")
        stage.process(records[:4])  # warm-up
        stage.stats.clear()
        t0 = time.perf_counter()
        stage.process(records)
        in_process = time.perf_counter() - t0

        k = r.top_k * stage.overfetch
        t0 = time.perf_counter()
        vectors = emb.embed(queries)
        at = 0
        for rec in records:
            ann.search([a.query for a in rec.anchors], vectors[at : at + len(rec.anchors)], k, rec.doc_id)
            at += len(rec.anchors)
        bare = time.perf_counter() - t0

        recalls = recall_at(ann, exact, records, vectors, (r.top_k, k))
        service = worker_seconds(cfg, records)
        pool_size = ann.size()
    finally:
        stop_all(cfg)

    params = {**ann.index_params, **ann.search_params}
    print(f"{len(docs)} documents, {pool_size} chunks ({r.chunk_tokens} tokens, overlap {r.chunk_overlap}), "
          f"indexed in {index_seconds:.1f} s; {len(queries)} queries; index {r.index_type} {params}")
    print(f"bare embedding + search:      {len(queries) / bare:.0f} queries/s")
    print(f"retrieval stage, in process:  {len(queries) / in_process:.0f} queries/s  ({bare / in_process:.2f} of bare)")
    print(f"retrieval worker, via Kafka:  {len(queries) / service:.0f} queries/s  ({bare / service:.2f} of bare)")
    print(f"candidates per anchor {stage.stats['pairs'] / max(len(queries), 1):.2f}, "
          f"leaks excluded {stage.stats['leaks_excluded']}, unique candidates {stage.stats['unique_candidates']}")
    for kk, values in recalls.items():
        print(f"recall@{kk} of {r.index_type} against exact search: {np.mean(values):.4f} ({len(values)} queries)")


def recall_at(ann, exact, records, vectors, ks) -> dict[int, list[float]]:
    recalls: dict[int, list[float]] = {kk: [] for kk in ks}
    at = 0
    for rec in records:
        v = vectors[at : at + len(rec.anchors)]
        at += len(rec.anchors)
        for kk in recalls:
            q = [a.query for a in rec.anchors]
            for got, want in zip(ann.search(q, v, kk, rec.doc_id), exact.search(q, v, kk, rec.doc_id), strict=True):
                truth = {h.chunk_id for h in want}
                if truth:
                    recalls[kk].append(len(truth & {h.chunk_id for h in got}) / len(truth))
    return recalls


def worker_seconds(cfg, records) -> float:
    """The real retrieval worker over the anchors topic: seconds from producing the records to the
    last candidates record's broker timestamp (after one warm-up record)."""
    from kafka import KafkaConsumer

    write_worker_config(cfg)
    worker = start_worker(cfg, "retrieval", "worker-retrieval")
    prefix = cfg.kafka.topic_prefix
    prod = kc.producer(cfg)
    cons = KafkaConsumer(CANDIDATES.full_name(prefix), auto_offset_reset="earliest", **kc.client_kwargs(cfg))

    def send(recs) -> None:
        kc.send_all(prod, prefix, [Produced.of(ANCHORS, x) for x in recs])

    try:
        send(records[:1])
        receive(cons, 1, worker)
        t0 = time.time()
        send(records)
        return receive(cons, len(records), worker)[1] - t0
    finally:
        cons.close()
        prod.close()
        worker.stop()


if __name__ == "__main__":
    main()
