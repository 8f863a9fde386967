"""What the integration tests share: a small configuration for a real stack on free ports, and
reading its topics, shards and metrics."""

import json
import threading
import time
import uuid
from pathlib import Path

from entropylong_streamer.agents import kafka_clients as kc
from entropylong_streamer.config import Config
from entropylong_streamer.pipeline import Pipeline
from entropylong_streamer.services import processes
from entropylong_streamer.services.shards import read_shard


def small_config(data_dir: Path, model_cache: Path) -> Config:
    return Config().copy_with({
        "data_dir": str(data_dir),
        "kafka.bootstrap_servers": f"127.0.0.1:{processes.free_port()}",
        "kafka.topic_prefix": f"t{uuid.uuid4().hex[:8]}.",
        "kafka.partitions": 2,
        "kafka.idle_fetch_backoff_ms": 200,
        "milvus.uri": f"http://127.0.0.1:{processes.free_port()}",
        "model.path": "tiny",
        "model.dtype": "float64",  # scores equal across batchings to their fp32 rounding (tests/noise.py)
        "model.max_tokens": 1024,
        "entropy.alpha": 1.0,
        "entropy.max_anchors": 3,
        "retrieval.top_k": 2,
        "retrieval.chunk_tokens": 48,
        "retrieval.chunk_overlap": 8,
        "retrieval.index_live_docs": False,
        "verify.epsilon": 0.1,
        "verify.max_context_tokens": 48,
        "pack.seq_len": 2048,
        "pack.sequences_per_shard": 1,
        "pack.max_wait_s": 2.0,
        "trainer.passes_per_shard": 2,
        # the demo corpus is documentation, not web prose (as in deploy/demo.toml)
        "door.min_words": 1,
        "door.max_mean_word_length": 40.0,
        "door.max_duplicate_line_ratio": 1.0,
    })



def shard_samples(cfg: Config) -> dict[str, list[int]]:
    """doc_id -> the sample's token ids, from every shard through StreamingDataset; asserts no doubles."""
    root = Path(cfg.data_dir) / "shards" / cfg.version("pack")
    out: dict[str, list[int]] = {}
    separator = Pipeline(cfg).separator
    for line in (root / "manifest.jsonl").read_text().splitlines():
        for seq in read_shard(Path(json.loads(line)["path"])):
            ids = seq["input_ids"].tolist()
            assert seq["length"] == len(ids) <= cfg.pack.seq_len
            for doc_id, (start, end) in zip(seq["doc_ids"], seq["indices"].reshape(-1, 2), strict=True):
                assert doc_id not in out, f"{doc_id} packed twice"
                assert tuple(ids[start : start + len(separator)]) == separator
                out[doc_id] = ids[start:end]
    return out



def read_topic(cfg: Config, spec) -> list:
    """Every record the topic holds now: read to the end offsets taken first (not "until 3 s pass
    with nothing": a slow machine made that return a part)."""
    from kafka import KafkaConsumer, TopicPartition

    topic = spec.full_name(cfg.kafka.topic_prefix)
    cons = KafkaConsumer(enable_auto_commit=False, **kc.client_kwargs(cfg))
    try:
        tps = [TopicPartition(topic, p) for p in sorted(cons.partitions_for_topic(topic) or ())]
        cons.assign(tps)
        cons.seek_to_beginning(*tps)
        end = cons.end_offsets(tps)
        out, deadline = [], time.monotonic() + 120
        while any(cons.position(tp) < end[tp] for tp in tps):
            assert time.monotonic() < deadline, f"{topic}: could not read to {end}"
            for records in cons.poll(timeout_ms=500).values():
                out.extend(spec.decode(m.value) for m in records)
        return out
    finally:
        cons.close()



def wait_for(what, check, workers, timeout=300):
    """Poll check() until it returns something truthy (and return it); fail if a worker exits or
    the time runs out, with the worker's log tail."""
    deadline = time.monotonic() + timeout
    while not (got := check()):
        for w in workers:
            assert w.alive(), f"{w.name} exited: {w.log_tail()}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}:\n" + "\n".join(
            f"--- {w.name}\n{w.log_tail(40)}" for w in workers)
        time.sleep(0.5)  # polling an observable outcome of separate processes
    return got



def quiet():
    from rich.console import Console

    return Console(quiet=True)



def jsonl_rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]



def free_ports(n: int) -> int:
    """A base port with the n ports from it free (workers serve metrics on base, base + 1, ...),
    below the kernel's ephemeral range: a port from that range that is free now can become the
    local end of some client's connection (a Kafka client's) before the worker binds it."""
    import random

    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(200):
        base = random.randrange(10000, max(low - n, 10001))
        if all(port_free(base + i) for i in range(n)):
            return base
    raise RuntimeError("no run of free ports")



def port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True



def scrape_all(base: int, n: int) -> dict[tuple[str, str, str], float]:
    """(sample name, stage, outcome, event, bucket or reason) -> value summed over every worker's endpoint that
    answers."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    out: dict[tuple[str, str, str], float] = {}
    for port in range(base, base + n):
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        except OSError:
            continue  # the packer serves no endpoint yet
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if "stage" in sample.labels or sample.name.startswith("elong_trainer"):
                    kind = (sample.labels.get("outcome") or sample.labels.get("event")
                            or sample.labels.get("bucket") or sample.labels.get("reason") or "")
                    key = (sample.name, sample.labels.get("stage", ""), kind)
                    out[key] = out.get(key, 0.0) + sample.value
    return out



def run_loop(loop, cfg: Config, until, timeout: float = 600) -> BaseException | None:
    """Run loop(cfg, stop) in a thread until `until()` holds or it fails; return its exception.
    After `timeout` seconds it is stopped whatever `until` says (the caller's asserts then fail)."""
    stop, errors = threading.Event(), []

    def target():
        try:
            loop(cfg, stop)
        except BaseException as exc:  # the loop's failure is what some tests assert on
            errors.append(exc)

    t = threading.Thread(target=target)
    t.start()
    deadline = time.monotonic() + timeout
    while t.is_alive() and not until() and time.monotonic() < deadline:
        t.join(0.2)
    stop.set()
    t.join(120)
    return errors[0] if errors else None
