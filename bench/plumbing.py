"""The plumbing's own ceiling: documents per second through every stage of the embedded stack
(ingest -> docs -> entropy, index -> anchors -> retrieval -> candidates -> verify -> dependencies ->
packer -> shards) with the null LM and the null embedder (services/null_models.py), so no model
bounds it; beside it, in the same run, the embedded broker's bare rate for records of the same
size (kafka-python, one producer, then one consumer). Goal (issue 20): >= 2,000 documents/s.

    .venv/bin/python bench/plumbing.py [--documents 2000] [--words 120] [--set KEY=VALUE ...]

Documents are random words (distinct, so the door admits them all). A warm-up document goes
through first, so every worker is up and its model (the tokenizer) loaded before the clock starts;
the rate is documents / (first ingested -> the last in a durable shard).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import tempfile
import time
import uuid
from pathlib import Path

from rich.console import Console

from entropylong_streamer.agents import kafka_clients as kc
from entropylong_streamer.config import load_config
from entropylong_streamer.ingest_cmd import ingest_paths
from entropylong_streamer.services import stack
from entropylong_streamer.stack_control import start_servers, start_workers, stop_all
from entropylong_streamer.status import shard_summary

GOAL = 2000


def documents(n: int, words: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    vocab = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(3, 9))) for _ in range(5000)]
    return [" ".join(rng.choices(vocab, k=words)) + "." for _ in range(n)]


def write(path: Path, texts: list[str]) -> Path:
    path.write_text("".join(json.dumps({"id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(texts)))
    return path


def wait_packed(cfg, n: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while shard_summary(cfg)["samples"] < n:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {shard_summary(cfg)['samples']} of {n} documents packed in {timeout:.0f} s")
        time.sleep(0.2)  # polling the manifest the packer appends to


BATCH_LINE = re.compile(r": (\w+): (\d+) in, \d+ out, \d+ dead-lettered in ([\d.]+) s")


def busy(cfg) -> dict[str, tuple[int, int, float]]:
    """stage -> (records, batches, seconds in its stage thread), from the workers' batch lines."""
    out: dict[str, tuple[int, int, float]] = {}
    for log in sorted(cfg.paths.run.glob("worker-*.log")):
        for m in BATCH_LINE.finditer(log.read_text(errors="replace")):
            n, b, s = out.get(m.group(1), (0, 0, 0.0))
            out[m.group(1)] = (n + int(m.group(2)), b + 1, s + float(m.group(3)))
    return out


def bare_broker(cfg, texts: list[str]) -> tuple[float, float]:
    """Records/s out (produce, flushed) and in (consume) of records of the documents' size."""
    topic = f"{cfg.kafka.topic_prefix}bare"
    stack.ensure_topics(cfg.kafka.bootstrap_servers, {topic: cfg.kafka.partitions}, client=kc.client_kwargs(cfg),
                        max_message_bytes=cfg.kafka.max_message_bytes)
    prod = kc.producer(cfg)
    t0 = time.perf_counter()
    for i, t in enumerate(texts):
        prod.send(topic, key=str(i).encode(), value=t.encode())
    prod.flush()
    out = len(texts) / (time.perf_counter() - t0)
    prod.close()
    cons = kc.consumer(cfg, topic, f"{cfg.kafka.topic_prefix}bare-reader")
    got = 0
    while not got:  # the group join is not the broker's rate: the clock starts at the first records
        got = sum(len(v) for v in cons.poll(timeout_ms=1000).values())
    first, t0 = got, time.perf_counter()
    while got < len(texts):
        got += sum(len(v) for v in cons.poll(timeout_ms=1000).values())
    rate_in = (len(texts) - first) / (time.perf_counter() - t0)
    cons.close()
    return out, rate_in


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--documents", type=int, default=2000)
    ap.add_argument("--words", type=int, default=120)
    ap.add_argument("--cache", default=".elong/demo/models", help="where the tiny model's tokenizer is")
    ap.add_argument("--set", dest="sets", action="append", default=[])
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="elong-bench-plumbing-"))
    (work / "models").symlink_to(Path(args.cache).resolve(), target_is_directory=True)
    cfg = load_config(None, [
        f"data_dir={str(work)!r}", "model.path='tiny'", "model.engine='null'", "retrieval.embedder='null'",
        f"kafka.bootstrap_servers='127.0.0.1:{stack.free_port()}'", f"milvus.uri='http://127.0.0.1:{stack.free_port()}'",
        f"kafka.topic_prefix='p{uuid.uuid4().hex[:6]}.'", "kafka.idle_fetch_backoff_ms=50", "metrics.port=0",
        "entropy.max_anchors=8", "pack.seq_len=4096", "pack.max_wait_s=1.0", "door.min_words=1", *args.sets],
        environ={})
    texts = documents(args.documents + 1, args.words, seed=0)
    warm, docs = write(work / "warm.jsonl", texts[:1]), write(work / "docs.jsonl", texts[1:])
    quiet = Console(quiet=True)
    try:
        start_servers(cfg)
        start_workers(cfg)
        ingest_paths(cfg, [warm], quiet)
        wait_packed(cfg, 1, timeout=600)
        t0 = time.perf_counter()
        sent, dropped, bad = ingest_paths(cfg, [docs], quiet)
        ingested = time.perf_counter() - t0
        wait_packed(cfg, 1 + sent, timeout=3600)
        total = time.perf_counter() - t0
        out, rate_in = bare_broker(cfg, texts[1:])
        stages = busy(cfg)
    finally:
        stop_all(cfg)
    print(f"{sent} documents of {args.words} words ({dropped} dropped, {bad} bad), null LM and embedder, "
          f"one worker per stage, {cfg.kafka.partitions} partitions")
    print(f"through every stage:  {sent / total:8,.0f} documents/s  ({total:.1f} s; "
          f"ingest alone {sent / ingested:,.0f}/s)")
    print(f"bare broker:          {out:8,.0f} records/s out, {rate_in:,.0f} in (same records' size)")
    print(f"pipeline / bare in:   {sent / total / rate_in:8.3f}     goal {GOAL:,} documents/s: "
          f"{'met' if sent / total >= GOAL else 'not met'}")
    print("where the time goes (each worker's batches, the warm-up included; wall time is the run's):")
    for stage, (n, batches, seconds) in stages.items():
        print(f"  {stage:<10} {n:6,} records in {batches:5,} batches, {seconds:6.1f} s busy "
              f"({seconds / total:4.0%} of the wall time), {n / seconds if seconds else 0:8,.0f} records/busy s")


if __name__ == "__main__":
    main()
