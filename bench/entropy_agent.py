"""The streaming overhead of the entropy stage: the real entropy worker (its kafka-python consumer loop reading the
docs topic of the embedded broker and publishing anchors) against the bare engine on the same
documents, in one run. Goal: the agent keeps at least 90% of the engine's tokens/s.

    .venv/bin/python bench/entropy_agent.py [--documents 64] [--model smollm2] [--set KEY=VALUE ...]

Agent rate: the documents' tokens / (first document produced -> last anchors record's timestamp),
after a warm-up batch that loads the model. So it includes Kafka, msgpack, tokenising, anchor
selection and the agent's batching wait. Bare rate: engine.score_many on the same token ids,
measured before and after the agent (the machine is noisy; both are printed).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from pathlib import Path

from worker_timing import receive

from entropylong_streamer.agents import kafka_clients as kc
from entropylong_streamer.config import load_config
from entropylong_streamer.demo_corpus import write_demo_corpus
from entropylong_streamer.ingest import ingest_paths
from entropylong_streamer.pipeline import Pipeline
from entropylong_streamer.services import processes, stack
from entropylong_streamer.services.lm import ScoreRequest
from entropylong_streamer.sources import BadRow, read_documents
from entropylong_streamer.stack_control import run_dir, start_worker, write_worker_config
from entropylong_streamer.status import ensure_pipeline_topics
from entropylong_streamer.topics import ANCHORS


def bare_rate(engine, requests) -> float:
    t0 = time.perf_counter()
    engine.score_many(requests)
    return sum(len(r.ids) - 1 for r in requests) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--documents", type=int, default=64)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--cache", default=".elong/demo/models")
    ap.add_argument("--set", dest="sets", action="append", default=[])
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="elong-bench-agent-"))
    cfg = load_config(Path("deploy/demo.toml"), [
        f"data_dir={str(work)!r}", f"model.path={args.model!r}",
        f"kafka.bootstrap_servers='127.0.0.1:{processes.free_port()}'",
        f"kafka.topic_prefix='b{uuid.uuid4().hex[:6]}.'", "kafka.idle_fetch_backoff_ms=200", *args.sets])
    (work / "models").symlink_to(Path(args.cache).resolve(), target_is_directory=True)
    corpus, warmup = work / "docs.jsonl", work / "warmup.jsonl"
    write_demo_corpus(corpus, args.documents + 2)
    lines = corpus.read_text().splitlines()
    warmup.write_text("\n".join(lines[:2]) + "\n")
    corpus.write_text("\n".join(lines[2:]) + "\n")
    docs = [d for d in read_documents([corpus]) if not isinstance(d, BadRow)]

    pipe = Pipeline(cfg)
    engine, sep = pipe.engine, pipe.separator
    requests = [ScoreRequest([*sep, *engine.tokenize(d.text).ids]) for d in docs]
    tokens = sum(len(r.ids) - len(sep) for r in requests)
    engine.score_many(requests[:2])
    bare_before = bare_rate(engine, requests)
    del engine

    host_port = cfg.kafka.bootstrap_servers
    broker = stack.start_broker(work / "broker", int(host_port.rsplit(":", 1)[1]), run_dir(cfg))
    write_worker_config(cfg)
    worker = None
    try:
        ensure_pipeline_topics(cfg)
        worker = start_worker(cfg, "entropy", "worker-entropy")
        from kafka import KafkaConsumer

        cons = KafkaConsumer(ANCHORS.full_name(cfg.kafka.topic_prefix), auto_offset_reset="earliest",
                             **kc.client_kwargs(cfg))

        quiet = _quiet()
        ingest_paths(cfg, [warmup], quiet)
        receive(cons, 2, worker)  # the worker is up, its model loaded and warm
        t0 = time.time()
        sent, _, _ = ingest_paths(cfg, [corpus], quiet)
        values, t1 = receive(cons, sent, worker)
        records = [ANCHORS.decode(v) for v in values]
        agent_seconds = t1 - t0
        cons.close()
    finally:
        if worker is not None:
            worker.stop()
        broker.stop()
    assert sum(len(r.token_ids) for r in records) == tokens  # the same documents, the same tokens
    agent = tokens / agent_seconds

    engine = Pipeline(cfg).engine
    engine.score_many(requests[:2])
    bare_after = bare_rate(engine, requests)
    bare = (bare_before + bare_after) / 2
    print(f"{len(docs)} documents, {tokens:,} tokens, model {args.model}, agent batches of up to "
          f"{cfg.agents.max_batch['entropy']} documents within {cfg.agents.batch_wait_s} s")
    print(f"bare engine (score_many): {bare_before:.0f} tokens/s before, {bare_after:.0f} after")
    print(f"entropy agent, docs topic -> anchors topic: {agent:.0f} tokens/s ({agent_seconds:.1f} s)")
    print(f"agent / bare engine: {agent / bare:.2f}  (goal >= 0.90)")


def _quiet():
    from rich.console import Console

    return Console(quiet=True)


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
