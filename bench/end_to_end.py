"""End to end: streaming mode against batch mode, and the plumbing's capacity with a trivial model.

    .venv/bin/python bench/end_to_end.py [--docs 8] [--plumbing-docs 300]

1. Same documents, same model (SmolLM2, the demo's settings), the pool bootstrapped with the
   documents in both, models loaded before the clock starts in both (a worker is long-lived; its
   start-up is not per-document work): wall time of batch mode (`elong build`: the stages in one
   process, one after the other) against streaming mode (broker, milvus-lite and one worker per
   stage, every worker ready; from the pool bootstrap and the first document ingested to the
   last sample in a shard; the trainer not started). Goal: the ratio batch / streaming >= 0.85.
2. The same pipeline with the tiny random model and short documents: documents per second
   through each topic, beside the bare kafka-python rate of the same records (produce + consume:
   the bound of any stage) and the SmolLM2 rates of part 1 (what the LM stages deliver).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from entropylong_streamer.batch import build
from entropylong_streamer.config import Config, load_config
from entropylong_streamer.demo_corpus import write_demo_corpus
from entropylong_streamer.ingest import ingest_paths
from entropylong_streamer.pipeline import Pipeline
from entropylong_streamer.services import processes, stack
from entropylong_streamer.sources import BadRow, read_documents
from entropylong_streamer.stack_control import embedded, start_servers, start_workers, stop_all
from entropylong_streamer.status import collect, end_offsets, shard_summary
from entropylong_streamer.topics import ANCHORS, CANDIDATES, DEPENDENCIES, DOCS

ROOT = Path(__file__).resolve().parent.parent
STAGES = {"entropy", "retrieval", "verify", "pack"}
console = Console(width=130)


def configure(base: Config, data_dir: Path, models: Path, **over) -> Config:
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "models").symlink_to(models, target_is_directory=True)
    return embedded(base.copy_with({
        "data_dir": str(data_dir), "kafka.bootstrap_servers": f"127.0.0.1:{processes.free_port()}",
        "milvus.uri": f"http://127.0.0.1:{processes.free_port()}", "retrieval.index_live_docs": False,
        "metrics.port": processes.free_port(),
        "pack.max_wait_s": 2.0, **over}))


def scrape_ready(cfg: Config, workers: int) -> int:
    import urllib.request

    ready = 0
    for port in range(cfg.metrics.port, cfg.metrics.port + workers):
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
        except OSError:
            continue
        ready += any(line.startswith("elong_worker_ready{") and line.endswith(" 1.0") for line in text.splitlines())
    return ready


def streaming(cfg: Config, corpus: Path, n: int, topics: bool = False
              ) -> tuple[float, dict[str, tuple[float, float]]]:
    """Seconds from the first document ingested to the last one in a shard (with `topics`: the pool
    bootstrapped before the clock starts; else included, as in batch mode), and with `topics`
    per topic the seconds at which it held its first and its n-th record."""
    docs = [d for d in read_documents([corpus]) if not isinstance(d, BadRow)]
    first: dict[str, float] = {}
    reached: dict[str, tuple[float, float]] = {}
    try:
        start_servers(cfg)
        workers = start_workers(cfg, only=STAGES)
        # every worker in its group, its models loaded
        while not all(r.consumers for r in collect(cfg, STAGES)) or scrape_ready(cfg, len(workers)) < len(workers):
            assert all(w.alive() for w in workers), [w.log_tail() for w in workers if not w.alive()]
            time.sleep(0.5)
        indexer = Pipeline(cfg).stage("index")
        if topics:
            indexer.process(docs)
        t0 = time.perf_counter()
        if not topics:
            indexer.process(docs)
        ingest_paths(cfg, [corpus], console=Console(quiet=True))
        names = {s.name: s.full_name(cfg.kafka.topic_prefix) for s in (DOCS, ANCHORS, CANDIDATES, DEPENDENCIES)}
        while shard_summary(cfg)["samples"] < n:
            dead = [w for w in workers if not w.alive()]
            assert not dead, dead[0].log_tail()
            if topics:
                ends = end_offsets(cfg, list(names.values()))
                now = time.perf_counter() - t0
                for name, full in names.items():
                    if ends[full]:
                        first.setdefault(name, now)
                    if name not in reached and ends[full] >= n:
                        reached[name] = (first[name], now)
            time.sleep(0.25)  # polling the outcome of other processes: the figures' resolution
        elapsed = time.perf_counter() - t0
        reached["shards"] = (first.get("dependencies", 0.0), elapsed)
        return elapsed, reached
    finally:
        stop_all(cfg)


def bare_kafka_rate(n: int, size: int, tmp: Path) -> float:
    """Records per second through kafka-python alone: produce n records of `size` bytes, consume them."""
    from kafka import KafkaConsumer, KafkaProducer

    port = processes.free_port()
    cfg = Config().copy_with({"data_dir": str(tmp), "kafka.bootstrap_servers": f"127.0.0.1:{port}"})
    stack.start_broker(tmp / "broker", port, tmp / "run")
    try:
        stack.ensure_topics(cfg.kafka.bootstrap_servers, {"bare": 2})
        payload = b"x" * size
        t0 = time.perf_counter()
        prod = KafkaProducer(bootstrap_servers=cfg.kafka.bootstrap_servers, linger_ms=5)
        for i in range(n):
            prod.send("bare", key=str(i).encode(), value=payload)
        prod.flush()
        cons = KafkaConsumer("bare", bootstrap_servers=cfg.kafka.bootstrap_servers, auto_offset_reset="earliest",
                             consumer_timeout_ms=5000)
        got = 0
        for _ in cons:
            got += 1
            if got == n:
                break
        elapsed = time.perf_counter() - t0
        cons.close()
        prod.close()
        assert got == n
        return n / elapsed
    finally:
        stop_all(cfg)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=24)
    ap.add_argument("--plumbing-docs", type=int, default=300)
    ap.add_argument("--models", type=Path, default=ROOT / ".elong" / "demo" / "models",
                    help="model cache (SmolLM2 converted once; the demo's by default)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="elong-e2e-"))
    args.models.mkdir(parents=True, exist_ok=True)
    try:
        demo = load_config(ROOT / "deploy" / "demo.toml")
        corpus = tmp / "docs.jsonl"
        n = write_demo_corpus(corpus, args.docs)
        docs = [d for d in read_documents([corpus]) if not isinstance(d, BadRow)]

        bcfg = configure(demo, tmp / "batch", args.models.resolve())
        pipe = Pipeline(bcfg, milvus_uri=str(tmp / "batch" / "pool.db"))
        pipe.engine, pipe.embedder, pipe.pool  # noqa: B018 (loaded before the clock starts)
        t0 = time.perf_counter()
        report = build(bcfg, [corpus], [corpus], tmp / "batch" / "out", show_progress=False, pipeline=pipe)
        t_batch = time.perf_counter() - t0
        assert report.documents == n
        scfg = configure(demo, tmp / "stream", args.models.resolve())
        t_stream, _ = streaming(scfg, corpus, n)
        t0 = time.perf_counter()
        pipe.stage("entropy").process(docs)  # no cache: every document scored again
        t_entropy = time.perf_counter() - t0

        table = Table(title=f"1. streaming vs batch: {n} documents, SmolLM2 ({sum(len(d.text) for d in docs):,} chars)")
        for col in ("mode", "seconds", "documents/s"):
            table.add_column(col)
        table.add_row("batch (elong build)", f"{t_batch:.1f}", f"{n / t_batch:.3f}")
        table.add_row("streaming (embedded stack)", f"{t_stream:.1f}", f"{n / t_stream:.3f}")
        table.add_row("entropy stage alone", f"{t_entropy:.1f}", f"{n / t_entropy:.3f}")
        table.caption = f"streaming / batch throughput = {t_batch / t_stream:.2f} (goal >= 0.85)"
        console.print(table)

        pcorpus = tmp / "plumbing.jsonl"
        m = write_demo_corpus(pcorpus, args.plumbing_docs, min_chars=200, max_chars=400)
        pcfg = configure(Config().copy_with({"door": demo.door.model_dump()}), tmp / "plumbing",
                         args.models.resolve(), **{
            "model.path": "tiny", "model.max_tokens": 512, "entropy.max_anchors": 2, "retrieval.top_k": 2,
            "retrieval.chunk_tokens": 48, "retrieval.chunk_overlap": 8, "verify.max_context_tokens": 48,
            "pack.seq_len": 4096, "pack.sequences_per_shard": 4, "pack.max_wait_s": 1.0,
            "agents.max_batch": {"entropy": 64, "retrieval": 64, "verify": 32}})
        t_plumb, reached = streaming(pcfg, pcorpus, m, topics=True)
        sizes = [len(x) for x in pcorpus.read_text().splitlines()]
        bare = bare_kafka_rate(m * 10, int(sum(sizes) / len(sizes)) * 3, tmp / "bare")

        table = Table(title=f"2. plumbing: {m} short documents, tiny random model, every stage one worker")
        for col in ("topic", "first record (s)", f"record {m} (s)", "documents/s in between"):
            table.add_column(col)
        for name in ("docs", "anchors", "candidates", "dependencies", "shards"):
            if name in reached:
                a, b = reached[name]
                table.add_row(name, f"{a:.1f}", f"{b:.1f}", f"{(m - 1) / max(b - a, 0.25):.1f}")
        table.caption = (f"end to end {m / t_plumb:.1f} documents/s (ingest to last shard) = "
                         f"{m / t_plumb / (n / t_stream):.0f}x the SmolLM2 pipeline of part 1 and "
                         f"{m / t_plumb / (n / t_entropy):.1f}x its entropy stage alone; bare kafka-python on "
                         f"the same broker (produce + consume {m * 10} records) {bare:,.0f} records/s")
        console.print(table)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
