"""`elong replay` on a running embedded stack: a new epsilon runs no LM token, a new alpha scores no
document again and measures only the pairs never measured; every version gets its own complete
shard set and the earlier sets are left byte for byte as they were."""

import json
from pathlib import Path

from stack_helpers import free_ports, quiet, read_topic, scrape_all, shard_samples, small_config, wait_for
from typer.testing import CliRunner

from entropylong_streamer.agents import kafka_clients as kc
from entropylong_streamer.cli import app
from entropylong_streamer.config import load_config
from entropylong_streamer.demo_corpus import write_demo_corpus
from entropylong_streamer.ingest import ingest_paths
from entropylong_streamer.pipeline import Pipeline
from entropylong_streamer.replay import Origin, plan, reset_offsets
from entropylong_streamer.services import stack
from entropylong_streamer.services.shards import read_shard
from entropylong_streamer.sources import BadRow, read_documents
from entropylong_streamer.stack_control import (
    run_dir,
    running_workers,
    start_servers,
    start_workers,
    stop_all,
    worker_stage,
)
from entropylong_streamer.status import collect, ensure_pipeline_topics
from entropylong_streamer.topics import DEPENDENCIES, DOCS, Doc

N = 6


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def pair_keys(cfg, version: str) -> set[tuple[str, str, tuple[int, ...], int]]:
    """What a measurement is of: the document, the context's tokens, the anchor. A context document
    longer than the verifier's room is a window around its retrieved chunks, so new anchors (a new
    alpha) may move the window: that is a new context, measured anew."""
    return {(r.doc_id, p.context_id, tuple(ctx[p.context_id]), p.anchor_index) for r in read_topic(cfg, DEPENDENCIES)
            if r.config_version == version for ctx in ({c.context_id: c.token_ids for c in r.contexts},)
            for p in r.pairs}


def test_replay_a_new_epsilon_and_a_new_alpha(tmp_path, model_cache):
    cfg = small_config(tmp_path / "data", model_cache).copy_with({"metrics.port": free_ports(8)})
    Path(cfg.data_dir).mkdir(parents=True)
    (Path(cfg.data_dir) / "models").symlink_to(model_cache, target_is_directory=True)
    corpus = tmp_path / "docs.jsonl"
    write_demo_corpus(corpus, N, min_chars=300, max_chars=700)
    docs = [d for d in read_documents([corpus]) if not isinstance(d, BadRow)]
    ports = {}  # stage -> its worker's metrics port (the layout start_workers uses)
    try:
        start_servers(cfg)
        Pipeline(cfg).stage("index").process(docs)
        workers = start_workers(cfg)
        ports = {worker_stage(w.name): cfg.metrics.port + i for i, w in enumerate(workers)}
        ingest_paths(cfg, [corpus], console=quiet())

        def complete(c):
            """Every document in c's shard set, every stage caught up, the trainer on the last shard."""
            def check():
                root = Path(c.data_dir) / "shards" / c.version("pack") / "manifest.jsonl"
                if not root.exists() or len(shard_samples(c)) < N or any(r.lag for r in collect(c)):
                    return False
                scraped = scrape_all(ports["trainer"], 1).get(("elong_trainer_shards_total", "", ""), 0)
                return scraped >= len(root.read_text().splitlines())
            assert running_workers(c)
            return wait_for(f"shard set {c.version('pack')}", check, [], timeout=300)

        complete(cfg)
        first = pair_keys(cfg, cfg.version("verify"))
        assert first
        before = {s: scrape_all(p, 1) for s, p in ports.items()}
        configs = {cfg.version("pack"): cfg}
        sets = {cfg.version("pack"): snapshot(Path(cfg.data_dir) / "shards" / cfg.version("pack"))}
        conf = str(run_dir(cfg) / "config.json")

        # 1. A new epsilon: only verify and pack change; every pair is read from the measurements.
        res = CliRunner().invoke(app, ["replay", "-c", conf, "--set", "verify.epsilon=0.05"])
        assert res.exit_code == 0, res.output
        eps = load_config(Path(conf))
        assert eps.verify.epsilon == 0.05 and eps.version("pack") not in sets
        complete(eps)
        m = scrape_all(ports["verify"], 1)
        assert m.get(("elong_lm_tokens_total", "verify", ""), 0) == 0
        assert m[("elong_stage_events_total", "verify", "pairs_cached")] == len(first)
        assert m.get(("elong_stage_events_total", "verify", "pairs_measured"), 0) == 0
        assert pair_keys(cfg, eps.version("verify")) == first
        entropy_tokens = before["entropy"][("elong_lm_tokens_total", "entropy", "")]
        assert scrape_all(ports["entropy"], 1)[("elong_lm_tokens_total", "entropy", "")] == entropy_tokens
        configs[eps.version("pack")] = eps
        sets[eps.version("pack")] = snapshot(Path(cfg.data_dir) / "shards" / eps.version("pack"))

        # 2. A new alpha (and anchor cap): entropy re-selects anchors from its scores, verify
        # measures exactly the pairs no earlier version measured.
        res = CliRunner().invoke(app, ["replay", "-c", conf, "--set", "entropy.alpha=0.0",
                                       "--set", "entropy.max_anchors=8"])
        assert res.exit_code == 0, res.output
        alpha = load_config(Path(conf))
        assert alpha.entropy.alpha == 0.0 and alpha.verify.epsilon == 0.05
        complete(alpha)
        e = scrape_all(ports["entropy"], 1)
        assert e.get(("elong_lm_tokens_total", "entropy", ""), 0) == 0
        assert e[("elong_stage_events_total", "entropy", "docs_cached")] == N
        third = pair_keys(cfg, alpha.version("verify"))
        new_pairs = third - first
        assert new_pairs and third & first  # more anchors: some pairs are new, the old ones stay
        v = scrape_all(ports["verify"], 1)
        assert v.get(("elong_stage_events_total", "verify", "pairs_measured"), 0) == len(new_pairs)
        assert v[("elong_stage_events_total", "verify", "pairs_cached")] == len(third & first)
        assert v[("elong_lm_tokens_total", "verify", "")] > 0

        for version, files in sets.items():  # earlier shard sets untouched, each complete
            assert snapshot(Path(cfg.data_dir) / "shards" / version) == files
            assert set(shard_samples(configs[version])) == {d.doc_id for d in docs}
        assert set(shard_samples(alpha)) == {d.doc_id for d in docs}
        sets[alpha.version("pack")] = {}
        for version in sets:  # no version mixed into another's shard set
            manifest = Path(cfg.data_dir) / "shards" / version / "manifest.jsonl"
            tags = {seq["config_version"] for line in manifest.read_text().splitlines()
                    for seq in read_shard(Path(json.loads(line)["path"]))}
            assert tags == {version}
    finally:
        stop_all(cfg)


def test_replay_from_a_time_or_an_offset_sets_the_new_groups(tmp_path):
    cfg = small_config(tmp_path / "data", tmp_path).copy_with({"retrieval.index_live_docs": True})
    port = int(cfg.kafka.bootstrap_servers.rsplit(":", 1)[1])
    stack.start_broker(tmp_path / "broker", port, run_dir(cfg))
    try:
        ensure_pipeline_topics(cfg)
        prod = kc.producer(cfg)
        topic = DOCS.full_name(cfg.kafka.topic_prefix)
        sent = []
        for i in range(8):
            doc = Doc(doc_id=f"d{i}", text=f"document {i}")
            sent.append(prod.send(topic, key=DOCS.key(doc), value=DOCS.encode(doc),
                                  timestamp_ms=1_700_000_000_000 + 1000 * i).get(timeout=30))
        cut = sent[4].timestamp
        new = cfg.copy_with({"entropy.alpha": 1.5})
        rows = {r.stage: r for r in plan(cfg, new)}
        assert rows["entropy"].start == "origin" and rows["retrieval"].start == "latest"
        assert rows["index"].start == "unchanged" and rows["trainer"].start == "restart"
        done = reset_offsets(new, list(rows.values()), Origin("time", cut))
        want = {}
        for m in sent:  # per partition: the first record written at or after the cut
            if m.timestamp >= cut:
                want.setdefault(m.partition, m.offset)
        ends = {p: max(m.offset for m in sent if m.partition == p) + 1 for p in {m.partition for m in sent}}
        got = done[rows["entropy"].new_group]
        assert got == {p: want.get(p, ends.get(p, 0)) for p in got}
        assert set(done[rows["retrieval"].new_group].values()) == {0}  # the anchors topic is empty
        by_offset = reset_offsets(cfg.copy_with({"entropy.alpha": 0.5}), plan(cfg, cfg.copy_with(
            {"entropy.alpha": 0.5})), Origin("offset", 2))
        for group, offsets in by_offset.items():
            if group.startswith(f"{cfg.kafka.topic_prefix}entropy"):
                assert offsets == {p: min(2, ends.get(p, 0)) for p in offsets}
        prod.close()
    finally:
        stop_all(cfg)
