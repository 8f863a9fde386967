"""The plumbing's own ceiling: documents per second through every stage of the embedded stack
(ingest -> docs -> entropy, index -> anchors -> retrieval -> candidates -> verify -> dependencies ->
packer -> shards) with the null LM and the null embedder (services/null_models.py), so no model
bounds it; beside it, in the same run, the embedded broker's bare rate for records of the same
size (kafka-python, one producer, then one consumer). Goal (issue 20): >= 2,000 documents/s.

    .venv/bin/python bench/plumbing.py [--documents 2000] [--words 120] [--set KEY=VALUE ...]

Documents are random words (distinct, so the door admits them all). A warm-up document goes
through first, so every worker is up and its model (the tokenizer) loaded before the clock starts;
the rate is documents / (first ingested -> the last in a durable shard). Each process's CPU time
over the same span says where the time goes, and what rate the machine's cores bound.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
import uuid
from pathlib import Path

import psutil
from rich.console import Console

from entropylong_streamer import registry
from entropylong_streamer.agents import kafka_clients as kc
from entropylong_streamer.config import load_config
from entropylong_streamer.ingest import ingest_paths
from entropylong_streamer.services import processes, stack
from entropylong_streamer.stack_control import start_servers, start_workers, stop_all
from entropylong_streamer.status import end_offsets, shard_summary, topic_partitions

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


def cpu_seconds(cfg) -> dict[str, float]:
    """CPU seconds (user + system, children included) so far of every process the run dir names:
    the workers, the broker and milvus-lite."""
    out = {}
    for pid_file in sorted(cfg.paths.run.glob("*.pid")):
        try:
            proc = psutil.Process(int(pid_file.read_text().split()[0]))
            tree = [proc, *proc.children(recursive=True)]
            out[pid_file.stem] = sum(sum(p.cpu_times()[:4]) for p in tree)
        except (psutil.Error, ValueError, IndexError):
            continue
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
    ap.add_argument("--with-trainer", action="store_true", help="run the trainer too (it competes for the cores)")
    ap.add_argument("--idle-s", type=float, default=5.0, help="idle window measured before the documents")
    ap.add_argument("--set", dest="sets", action="append", default=[])
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="elong-bench-plumbing-"))
    Path(args.cache).mkdir(parents=True, exist_ok=True)  # the tiny model is built there once if missing
    (work / "models").symlink_to(Path(args.cache).resolve(), target_is_directory=True)
    cfg = load_config(None, [
        f"data_dir={str(work)!r}", "model.path='tiny'", "model.engine='null'", "retrieval.embedder='null'",
        f"kafka.bootstrap_servers='127.0.0.1:{processes.free_port()}'", f"milvus.uri='http://127.0.0.1:{processes.free_port()}'",
        f"kafka.topic_prefix='p{uuid.uuid4().hex[:6]}.'", "kafka.idle_fetch_backoff_ms=50", "metrics.port=0",
        "entropy.max_anchors=8", "pack.seq_len=4096", "pack.max_wait_s=1.0", "door.min_words=1", *args.sets],
        environ={})
    texts = documents(args.documents + 1, args.words, seed=0)
    warm, docs = write(work / "warm.jsonl", texts[:1]), write(work / "docs.jsonl", texts[1:])
    quiet = Console(quiet=True)
    try:
        start_servers(cfg)
        # the trainer consumes the shards, it is not plumbing: on with --with-trainer
        start_workers(cfg, only=None if args.with_trainer else {s.name for s in registry.STAGES} - {"trainer"})
        ingest_paths(cfg, [warm], quiet)
        wait_packed(cfg, 1, timeout=600)
        idle0, t_idle = cpu_seconds(cfg), time.perf_counter()
        time.sleep(args.idle_s)  # a measurement window: what the stack burns with nothing to do
        cpu0, me0 = cpu_seconds(cfg), sum(psutil.Process().cpu_times()[:2])
        idle = {name: (cpu0[name] - idle0.get(name, 0.0)) / (time.perf_counter() - t_idle) for name in cpu0}
        t0 = time.perf_counter()
        sent, dropped, bad = ingest_paths(cfg, [docs], quiet)
        ingested = time.perf_counter() - t0
        wait_packed(cfg, 1 + sent, timeout=3600)
        total = time.perf_counter() - t0
        cpu1, me1 = cpu_seconds(cfg), sum(psutil.Process().cpu_times()[:2])
        records = end_offsets(cfg, list(topic_partitions(cfg)))
        out, rate_in = bare_broker(cfg, texts[1:])
    finally:
        stop_all(cfg)
    print(f"{sent} documents of {args.words} words ({dropped} dropped, {bad} bad), null LM and embedder, "
          f"one worker per stage, {cfg.kafka.partitions} partitions")
    print(f"through every stage:  {sent / total:8,.0f} documents/s  ({total:.1f} s; "
          f"ingest alone {sent / ingested:,.0f}/s)")
    print(f"bare broker:          {out:8,.0f} records/s out, {rate_in:,.0f} in (same records' size)")
    print(f"pipeline / bare in:   {sent / total / rate_in:8.3f}     goal {GOAL:,} documents/s: "
          f"{'met' if sent / total >= GOAL else 'not met'}")
    cpu = {name: cpu1[name] - cpu0.get(name, 0.0) for name in cpu1}
    cpu["ingest (this process)"] = me1 - me0
    per_doc = sum(cpu.values()) / sent
    cores = psutil.cpu_count() or 1
    print(f"CPU per document, every process: {per_doc * 1000:6.2f} ms -> bound on {cores} cores "
          f"{cores / per_doc:,.0f} documents/s (achieved {sent / total / (cores / per_doc):.2f} of it); "
          f"the goal needs <= {cores / GOAL * 1000:.2f} ms")
    per_topic = ", ".join(f"{t.removeprefix(cfg.kafka.topic_prefix)} {n / (1 + sent):.1f}"
                          for t, n in records.items() if n)
    print(f"  records per document through the broker: {sum(records.values()) / (1 + sent):.1f} ({per_topic})")
    print(f"  idle, the whole stack: {sum(idle.values()):.2f} of a core (polling with nothing to read)")
    for name, seconds in sorted(cpu.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<24} {seconds:7.1f} CPU s  {seconds / sent * 1000:6.2f} ms/document  "
              f"({seconds / total:4.0%} of a core; idle {idle.get(name, 0.0):4.0%})")

if __name__ == "__main__":
    main()
