"""The reliability figure: documents in = documents in shards + dead letters (by reason) + dropped at the
door, while workers are SIGKILLed and the vector store is SIGKILLed and restarted at random.

The embedded stack (broker, milvus-lite, one worker per stage but the trainer) with the null LM and
embedder (services/null_models.py: the plumbing, not a model, is under test), documents of random words
ingested in waves (the next once half of those sent are packed). A chaos thread, until 90% are packed,
every --every seconds on average, either SIGKILLs a random worker and
starts it again under the same name, or SIGKILLs milvus-lite (its process group) and starts it again on
the same data directory after --down seconds. At the end, once every stage's lag is 0 and the packer has
flushed, the shard set's documents are counted (each must be in exactly one sample), the dead letters by
stage and reason, and the door's drops. Lost = in - (packed + dead-lettered + dropped); doubled = samples
beyond one per document. Both must be 0.

    .venv/bin/python bench/soak.py [--documents 20000] [--waves 10] [--every 8] [--down 5] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from urllib.parse import urlparse

from plumbing import documents, write
from rich.console import Console

from entropylong_streamer import registry
from entropylong_streamer.config import load_config
from entropylong_streamer.dead_letters import by_reason, from_topic
from entropylong_streamer.ingest import ingest_paths
from entropylong_streamer.services import processes, stack
from entropylong_streamer.services.shards import read_manifest
from entropylong_streamer.stack_control import run_dir, start_servers, start_worker, start_workers, stop_all
from entropylong_streamer.status import collect


def chaos(cfg, workers: dict, servers: dict, stop: threading.Event, every: float, down: float,
          rng: random.Random, events: Counter) -> None:
    uri = urlparse(cfg.milvus.uri)
    while not stop.wait(rng.expovariate(1 / every)):
        if rng.random() < 0.25:
            os.killpg(servers["milvus"].pid, signal.SIGKILL)
            servers["milvus"].popen.wait()
            events["milvus killed"] += 1
            stop.wait(down)
            servers["milvus"] = stack.start_milvus(cfg.paths.milvus, uri.port, run_dir(cfg), host=uri.hostname)
        else:
            name = rng.choice(sorted(workers))
            workers[name].popen.send_signal(signal.SIGKILL)
            workers[name].popen.wait()
            events[f"{name.split('-')[1]} killed"] += 1
            workers[name] = start_worker(cfg, name.split("-")[1], name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--documents", type=int, default=20000)
    ap.add_argument("--words", type=int, default=60)
    ap.add_argument("--waves", type=int, default=10)
    ap.add_argument("--every", type=float, default=8.0, help="mean seconds between two chaos events")
    ap.add_argument("--down", type=float, default=5.0, help="seconds milvus-lite stays down")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", default=".elong/demo/models", help="where the tiny model's tokenizer is")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="elong-bench-soak-"))
    Path(args.cache).mkdir(parents=True, exist_ok=True)
    (work / "models").symlink_to(Path(args.cache).resolve(), target_is_directory=True)
    cfg = load_config(None, [
        f"data_dir={str(work)!r}", "model.path='tiny'", "model.engine='null'", "retrieval.embedder='null'",
        f"kafka.bootstrap_servers='127.0.0.1:{processes.free_port()}'", f"milvus.uri='http://127.0.0.1:{processes.free_port()}'",
        f"kafka.topic_prefix='s{uuid.uuid4().hex[:6]}.'", "kafka.idle_fetch_backoff_ms=50", "metrics.port=0",
        "entropy.max_anchors=8", "pack.seq_len=4096", "pack.max_wait_s=1.0", "door.min_words=1",
        "agents.session_timeout_s=6.0", "agents.outage_backoff_max_s=2.0"], environ={})
    rng = random.Random(args.seed)
    texts = documents(args.documents, args.words, seed=args.seed)
    texts += rng.sample(texts, len(texts) // 50)  # 2% exact copies: the door drops them
    rng.shuffle(texts)
    waves = [write(work / f"wave{i}.jsonl", texts[i :: args.waves]) for i in range(args.waves)]
    quiet, events, stop = Console(quiet=True), Counter(), threading.Event()
    ingested = Counter()
    t0 = time.perf_counter()
    try:
        servers = {p.name: p for p in start_servers(cfg)}
        workers = {w.name: w for w in start_workers(cfg, only={s.name for s in registry.STAGES} - {"trainer"})}
        thread = threading.Thread(target=chaos, args=(cfg, workers, servers, stop, args.every, args.down, rng,
                                                      events), daemon=True)
        thread.start()
        shard_set = cfg.paths.shard_set(cfg.version("pack"))

        def packed_at_least(n: float) -> None:  # the chaos goes on meanwhile
            while sum(e["samples"] for e in read_manifest(shard_set)) < n:
                time.sleep(0.5)  # polling the manifest the packer appends to

        for wave in waves:
            sent, dropped, bad = ingest_paths(cfg, [wave], quiet)
            ingested.update(sent=sent, dropped=dropped, bad=bad)
            packed_at_least(ingested["sent"] / 2)  # documents keep flowing through every stage while waves arrive
        packed_at_least(0.9 * ingested["sent"])
        stop.set()
        thread.join()
        if not servers["milvus"].alive():
            raise SystemExit("milvus-lite is down at the end")
        # the packer commits a record once its sample is in a durable shard: no lag left means nothing in flight
        stages, deadline = {s.name for s in registry.STAGES} - {"trainer"}, time.monotonic() + 3600
        while any(row.lag for row in collect(cfg, stages)):
            if time.monotonic() > deadline:
                raise SystemExit(f"lag left after an hour: {[(r.stage, r.lag) for r in collect(cfg, stages)]}")
            time.sleep(1)  # polling the stack's lag
        entries = read_manifest(cfg.paths.shard_set(cfg.version("pack")))
        letters = from_topic(cfg)
    finally:
        stop.set()
        stop_all(cfg)
    wall = time.perf_counter() - t0
    packed = Counter(d for e in entries for d in e["doc_ids"])
    dead = by_reason(letters)
    documents_in = sum(ingested.values())
    lost = documents_in - len(packed) - sum(dead.values()) - ingested["dropped"]
    doubled = sum(n - 1 for n in packed.values())
    print(f"{documents_in:,} documents in ({args.waves} waves), {wall:.0f} s; chaos: "
          + ", ".join(f"{k} {v}" for k, v in sorted(events.items())))
    print(f"  in shards {len(packed):,} ({len(entries)} shards), dead letters {sum(dead.values()):,} ("
          + ", ".join(f"{s} {r} {n}" for (s, r), n in sorted(dead.items())) + f"), dropped at the door "
          f"{ingested['dropped']:,}")
    print(f"  lost {lost}, doubled {doubled}: {'PASS' if lost == 0 and doubled == 0 else 'FAIL'}")


if __name__ == "__main__":
    main()
