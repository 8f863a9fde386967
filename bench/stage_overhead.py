"""What the worker's adapter costs a stage, side by side in one run: the bare stage object, the
same stage behind StageWorker (decode, encode, dead letters, metrics) and behind StageWorker with
its measurement cache on a real embedded broker (read up before each batch, made durable after),
all in one process, with the null LM and embedder (services/null_models.py) so that no model
hides the plumbing. A worker runs StageWorker inside its consumer loop (agents/worker_loop.py);
bench/plumbing.py gives the worker's own rate (its busy seconds) to set against these.

    .venv/bin/python bench/stage_overhead.py [--documents 400] [--words 120]
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import time
import uuid
from pathlib import Path

from plumbing import documents

from entropylong_streamer import registry
from entropylong_streamer.agents.worker_loop import Message
from entropylong_streamer.agents.workers import StageWorker
from entropylong_streamer.config import load_config
from entropylong_streamer.pipeline import Pipeline
from entropylong_streamer.services import processes, stack
from entropylong_streamer.sources import read_documents
from entropylong_streamer.status import ensure_pipeline_topics
from entropylong_streamer.topics import DOCS


def rate(run, items: list, batch: int) -> float:
    run(items[:batch])  # warm-up: lazy loads and the first fetch are not the rate
    t0 = time.perf_counter()
    for i in range(batch, len(items), batch):
        run(items[i : i + batch])
    return (len(items) - batch) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--documents", type=int, default=400)
    ap.add_argument("--words", type=int, default=120)
    ap.add_argument("--cache", default=".elong/demo/models", help="where the tiny model's tokenizer is")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="elong-bench-overhead-"))
    (work / "models").symlink_to(Path(args.cache).resolve(), target_is_directory=True)
    port = processes.free_port()
    cfg = load_config(None, [
        f"data_dir={str(work)!r}", "model.path='tiny'", "model.engine='null'", "retrieval.embedder='null'",
        "entropy.max_anchors=8", f"kafka.bootstrap_servers='127.0.0.1:{port}'",
        f"kafka.topic_prefix='o{uuid.uuid4().hex[:6]}.'"], environ={})
    corpus = work / "docs.jsonl"
    corpus.write_text("".join(json.dumps({"id": f"d{i}", "text": t}) + "\n"
                              for i, t in enumerate(documents(args.documents, args.words, seed=1))))
    docs = list(read_documents([corpus]))
    msgs = [Message(DOCS.name, i % cfg.kafka.partitions, i, DOCS.key(d), DOCS.encode(d)) for i, d in enumerate(docs)]
    broker = stack.start_broker(work / "broker", port, work / "run")
    try:
        ensure_pipeline_topics(cfg)
        pools = itertools.count()

        def fresh():  # each measurement its own empty pool: re-indexing the same documents costs less
            return Pipeline(cfg, milvus_uri=str(work / f"pool{next(pools)}.db"))

        print(f"{len(docs)} documents of {args.words} words, null LM and embedder, documents/s:")
        for name in ("entropy", "index"):
            spec, batch = registry.stage(name), cfg.agents.batch_size(name)
            bare = rate(spec.build(fresh()).process, docs, batch)
            runner = rate(StageWorker.build(cfg, spec, fresh()).run, msgs, batch)
            line = f"  {name:<8} bare stage {bare:7,.0f}   StageWorker {runner:7,.0f} ({runner / bare:.2f} of bare)"
            if spec.cache is not None:
                cached = rate(StageWorker.build(cfg, spec, fresh(), spec.cache(cfg)).run, msgs, batch)
                line += f"   with its changelog cache {cached:7,.0f} ({cached / bare:.2f})"
            print(line)
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
