"""A real Prometheus server (Debian's package) scrapes every worker of a running pipeline; its
answers to PromQL queries agree with what the topics and the shard manifest hold, and every
query of the Grafana dashboard evaluates. Every process of the stack listens on 127.0.0.1 only."""

import json
import urllib.parse
import urllib.request
from pathlib import Path

from stack_helpers import free_ports, quiet, read_topic, shard_samples, small_config, wait_for

from entropylong_streamer.agents import kafka_clients as kc
from entropylong_streamer.demo_corpus import write_demo_corpus
from entropylong_streamer.ingest import ingest_paths
from entropylong_streamer.pipeline import Pipeline
from entropylong_streamer.quality.command import run_report
from entropylong_streamer.services import processes, stack
from entropylong_streamer.sources import BadRow, read_documents
from entropylong_streamer.stack_control import run_dir, start_servers, start_workers, stop_all
from entropylong_streamer.status import collect
from entropylong_streamer.topics import ANCHORS, DEPENDENCIES

N = 5
DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "entropylong.json"


def query(url: str, promql: str) -> list[dict]:
    with urllib.request.urlopen(f"{url}/api/v1/query?" + urllib.parse.urlencode({"query": promql}), timeout=10) as r:
        body = json.load(r)
    assert body["status"] == "success", (promql, body)
    return body["data"]["result"]


def scalar(url: str, promql: str) -> float | None:
    result = query(url, promql)
    return float(result[0]["value"][1]) if result else None


def listening(pids: list[int]) -> set[str]:
    """The addresses these processes listen on (from /proc/net/tcp and tcp6)."""
    inodes = set()
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = str(fd.readlink())
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    out = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            if f[3] == "0A" and f[9] in inodes:  # LISTEN
                ip = f[1].split(":")[0]
                if ip.startswith("0000000000000000FFFF0000"):  # IPv4-mapped IPv6: ::ffff:a.b.c.d
                    ip = ip[-8:]
                if len(ip) == 8:
                    out.add(".".join(str(int(ip[i:i + 2], 16)) for i in (6, 4, 2, 0)))
                else:
                    out.add({"00000000000000000000000001000000": "::1"}.get(ip, f"ipv6:{ip}"))
    return out


def test_prometheus_answers_agree_with_the_pipeline(tmp_path, model_cache):
    cfg = small_config(tmp_path / "data", model_cache).copy_with(
        {"metrics.port": free_ports(8), "metrics.lag_interval_s": 0.5})
    Path(cfg.data_dir).mkdir(parents=True)
    (Path(cfg.data_dir) / "models").symlink_to(model_cache, target_is_directory=True)
    corpus = tmp_path / "docs.jsonl"
    write_demo_corpus(corpus, N, min_chars=300, max_chars=700)
    docs = [d for d in read_documents([corpus]) if not isinstance(d, BadRow)]
    try:
        start_servers(cfg)
        Pipeline(cfg).stage("index").process(docs)
        workers = start_workers(cfg)
        prom_port = processes.free_port()
        conf = tmp_path / "prometheus.yml"
        conf.write_text(json.dumps({  # JSON is YAML
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{"job_name": "elong", "static_configs": [
                {"targets": [f"127.0.0.1:{cfg.metrics.port + i}"], "labels": {"worker": w.name}}
                for i, w in enumerate(workers)]}],
        }))
        prom = stack.start_prometheus(conf, tmp_path / "tsdb", prom_port, run_dir(cfg))
        url = f"http://127.0.0.1:{prom_port}"
        ingest_paths(cfg, [corpus], console=quiet())

        def done():
            root = Path(cfg.data_dir) / "shards" / cfg.version("pack") / "manifest.jsonl"
            return root.exists() and len(shard_samples(cfg)) == N and not any(r.lag for r in collect(cfg))
        wait_for("every document in a shard", done, workers, timeout=300)
        manifest = [json.loads(x) for x in
                    (Path(cfg.data_dir) / "shards" / cfg.version("pack") / "manifest.jsonl").read_text().splitlines()]

        # Prometheus has scraped the final counters once its view of the packer and trainer catches up.
        wait_for("Prometheus to see every shard trained", lambda: scalar(url, "sum(elong_trainer_shards_total)")
                 == len(manifest) and scalar(url, "sum(elong_shard_samples_total)") == N, workers, timeout=120)
        up = query(url, "up")
        assert len(up) == len(workers) and all(r["value"][1] == "1" for r in up)
        assert {r["metric"]["worker"] for r in up} == {w.name for w in workers}

        tokens = sum(len(a.token_ids) for a in read_topic(cfg, ANCHORS))
        assert scalar(url, 'sum(elong_lm_tokens_total{stage="entropy"})') == tokens
        assert scalar(url, 'sum(elong_records_total{stage="entropy",outcome="in"})') == N
        assert scalar(url, "sum(elong_shard_tokens_total)") == sum(e["tokens"] for e in manifest)
        assert scalar(url, "sum(elong_shards_total)") == len(manifest)
        pairs = sum(len(r.pairs) for r in read_topic(cfg, DEPENDENCIES))
        assert scalar(url, "sum(elong_verify_di_count)") == pairs > 0
        by_stage = {r["metric"]["stage"]: float(r["value"][1]) for r in
                    query(url, 'sum by (stage) (elong_records_total{outcome="in"})')}
        assert set(by_stage) == {"entropy", "retrieval", "verify", "pack"} and min(by_stage.values()) >= N

        # Consumer lag: every stage's worker exports its group's lag, and it reaches 0 at the end.
        stages = ("entropy", "retrieval", "verify", "pack", "trainer")
        wait_for("zero lag in Prometheus", lambda: {r["metric"]["stage"]: float(r["value"][1]) for r in query(
            url, "max by (stage) (elong_consumer_lag_records)")} == dict.fromkeys(stages, 0.0), workers, timeout=60)

        # Every server and worker of the stack listens on the loopback interface only.
        servers = [int(p.read_text().split()[0]) for p in run_dir(cfg).glob("*.pid")]
        assert {prom.pid, *(w.pid for w in workers)} <= set(servers)
        assert listening(servers) <= {"127.0.0.1", "::1"} and listening(servers)

        # The quality report over the running stack (dependencies topic, shard set, the pool in the
        # Milvus server); the packer serves its headline figures and Prometheus scrapes them.
        prod = kc.producer(cfg)  # a record the report cannot decode is counted and skipped, not a crash
        prod.send(DEPENDENCIES.full_name(cfg.kafka.topic_prefix), key=b"bad", value=b"\xc1 not msgpack").get(30)
        prod.close()
        report, _ = run_report(cfg, quiet(), max_docs=3, pool_chunks=64, show_progress=False)
        assert report["inputs"]["matched"] == N and report["inputs"]["records_disagreeing_with_shard"] == 0
        assert report["inputs"]["records_undecodable"] == 1
        assert report["dependencies"]["pairs"] == pairs
        if report["curves"]["documents"]:  # their no-context point was read from the scores topic
            assert report["curves"]["lm_tokens_reused"] > 0
        wait_for("Prometheus to show the report", lambda: scalar(url, "max(elong_quality_report_timestamp_seconds)")
                 == report["created_unix"], workers, timeout=60)
        assert scalar(url, "max(elong_quality_acceptance_rate)") == report["headline"]["acceptance_rate"]

        # Every query of the dashboard evaluates; those over metrics every run exports return series.
        exprs = [t["expr"] for p in json.loads(DASHBOARD.read_text())["panels"] for t in p.get("targets", [])]
        empty = {e for e in exprs if not query(url, e)}
        always = ("elong_lm_tokens_total", "elong_consumer_lag_records", "elong_shard_tokens_total",
                  "elong_trainer_loss", "elong_batch_seconds", "elong_verify_di", "elong_quality_acceptance_rate")
        assert not {e for e in empty if any(m in e for m in always)}, empty
    finally:
        stop_all(cfg)
    assert not (run_dir(cfg) / "prometheus.pid").exists()
