"""A replay after a threshold change reads every measurement back from the measurements changelog,
even after the first worker was killed: the new version's verify worker runs no LM tokens."""

import os
import signal
from pathlib import Path

from stack_helpers import free_ports, read_topic, scrape_all, small_config, wait_for

from entropylong_streamer.agents import kafka_clients as kc
from entropylong_streamer.pipeline import Pipeline
from entropylong_streamer.services import stack
from entropylong_streamer.stack_control import run_dir, start_worker, stop_all, write_worker_config
from entropylong_streamer.status import ensure_pipeline_topics
from entropylong_streamer.topics import CANDIDATES, DEPENDENCIES, Candidate, CandidatesRecord, Doc

TEXTS = ["The otter builds its den near the water and sleeps there through the winter months.",
         "Milvus stores dense vectors and answers nearest neighbour queries over them quickly.",
         "A replay after a threshold change must rebuild the same samples from the same seeds.",
         "Shards are written atomically, with a manifest, before any offset is committed."]


def candidates(cfg) -> list[CandidatesRecord]:
    docs = [Doc(doc_id=f"d{i}", text=t * 3) for i, t in enumerate(TEXTS)]
    anchors = Pipeline(cfg).stage("entropy").process(docs).outputs
    return [CandidatesRecord(anchors=a, config_version=cfg.version("retrieval"), candidates=[
        Candidate(context_id=f"c{j}", context_doc_id=f"o{j}", text=TEXTS[j], score=1.0,
                  anchor_indices=[x.index for x in a.anchors]) for j in range(len(TEXTS)) if f"d{j}" != a.doc_id])
        for a in anchors if a.anchors]


def test_a_new_epsilon_after_a_killed_worker_runs_no_lm_tokens(tmp_path, model_cache):
    # The paper's criterion: an epsilon replay changes which pairs are accepted (asserted at the end).
    cfg = small_config(tmp_path / "data", model_cache).copy_with({"verify.criterion": "entropy"})
    Path(cfg.data_dir).mkdir(parents=True)
    (Path(cfg.data_dir) / "models").symlink_to(model_cache, target_is_directory=True)
    port = int(cfg.kafka.bootstrap_servers.rsplit(":", 1)[1])
    stack.start_broker(Path(cfg.data_dir) / "broker", port, run_dir(cfg))
    try:
        ensure_pipeline_topics(cfg)
        records = candidates(cfg)
        prod = kc.producer(cfg)
        for rec in records:
            prod.send(CANDIDATES.full_name(cfg.kafka.topic_prefix), key=CANDIDATES.key(rec),
                      value=CANDIDATES.encode(rec))
        prod.flush()
        pairs = sum(len(c.anchor_indices) for r in records for c in r.candidates)

        def run(version_cfg, metrics_port):
            write_worker_config(version_cfg)
            worker = start_worker(version_cfg, "verify", "worker-verify", ["--set", f"metrics.port={metrics_port}"])
            version = version_cfg.version("verify")
            deps = wait_for("dependencies", lambda: (d := [r for r in read_topic(cfg, DEPENDENCIES)
                                                           if r.config_version == version]) and
                            len(d) >= len(records) and d, [worker], timeout=90)
            done = wait_for("metrics", lambda: (m := scrape_all(metrics_port, 1)).get(
                ("elong_records_total", "verify", "out"), 0) == len(records) and m, [worker], timeout=90)
            return worker, deps, done

        first_port = free_ports(1)
        worker, first, m1 = run(cfg, first_port)
        assert m1[("elong_stage_events_total", "verify", "pairs_measured")] == pairs
        assert m1[("elong_lm_tokens_total", "verify", "")] > 0
        os.kill(worker.popen.pid, signal.SIGKILL)  # no clean shutdown: the changelog is all that is left
        worker.popen.wait(timeout=30)

        replay = cfg.copy_with({"verify.epsilon": 0.6})
        second_port = free_ports(1)
        worker, second, m2 = run(replay, second_port)
        assert m2.get(("elong_lm_tokens_total", "verify", ""), 0) == 0
        assert m2[("elong_stage_events_total", "verify", "pairs_cached")] == pairs
        assert m2.get(("elong_stage_events_total", "verify", "pairs_measured"), 0) == 0
        by_doc = {r.doc_id: r for r in first}
        for rec in second:
            old = by_doc[rec.doc_id]
            assert [(p.context_id, p.anchor_index, p.h_ctx, p.nll_ctx) for p in rec.pairs] == \
                   [(p.context_id, p.anchor_index, p.h_ctx, p.nll_ctx) for p in old.pairs]
            assert [p.accepted for p in rec.pairs] == [p.d_i > 0.6 for p in old.pairs]
    finally:
        stop_all(cfg)
