"""policy.follow on the real broker: the trainer continues training the scoring model, publishes a
version, announces it and sends its last shard's documents back; the entropy worker moves to the
version between batches, scores them (and new documents) with it, and keeps its version when an
announced one does not load. A restarted trainer announces again and sends nothing twice."""

import threading
import uuid

from prometheus_client import REGISTRY
from stack_helpers import read_topic, run_loop, wait_for

from entropylong_streamer.agents import kafka_clients as kc
from entropylong_streamer.agents import worker as workers
from entropylong_streamer.config import Config
from entropylong_streamer.pipeline import Pipeline
from entropylong_streamer.services.model_versions import published
from entropylong_streamer.status import ensure_pipeline_topics
from entropylong_streamer.topics import (
    ANCHORS,
    DOCS,
    MODEL_VERSIONS,
    SHARD_READY,
    Context,
    DependenciesRecord,
    Doc,
    ModelVersion,
    Pair,
)

TEXTS = {
    "d1": "The otter builds a den near the water and returns to it every night after fishing in the river.",
    "d3": "The packer writes a shard atomically, then its manifest line, then announces it to the trainer.",
    "d2": "Milvus stores vectors for search; a query embeds the text and finds the nearest chunks in the pool.",
    "new": "Shards hold packed samples, and the rolling trainer reads each one as soon as it is announced.",
    "late": "A replay rebuilds the same sample from the same seed, so nothing is lost when a worker restarts.",
}


def train(c, stop):
    workers.run(c, "trainer", stop)


def send(cfg, spec, records):
    prod = kc.producer(cfg)
    for r in records:
        prod.send(spec.full_name(cfg.kafka.topic_prefix), key=spec.key(r), value=spec.encode(r))
    prod.flush()
    prod.close()


def a_shard(cfg: Config, doc_ids: tuple[str, ...]):
    """One shard of these documents, written by the packer (with its documents kept)."""
    tokenizer = Pipeline(cfg).engine_tokenizer()
    pipe = Pipeline(cfg)
    pack = pipe.stage("pack", max_wait_s=0)
    records = []
    for doc_id in doc_ids:
        ids = tokenizer.tokenize(TEXTS[doc_id]).ids
        ctx = Context(context_id=f"{doc_id}-c", context_doc_id="o", text="c", token_ids=ids[:6])
        pair = Pair(context_id=ctx.context_id, anchor_index=len(ids) - 1, char_start=0, char_end=1, h=2.0, h_ctx=0.5,
                    nll=2.0, nll_ctx=0.5, d_i=0.75, accepted=True)
        records.append(DependenciesRecord(doc_id=doc_id, text=TEXTS[doc_id], token_ids=ids, contexts=[ctx],
                                          pairs=[pair], config_version=cfg.version("verify")))
    pack.process(records)
    ready = pack.flush()
    return ready


def test_the_scorer_follows_the_trainer(tmp_path, broker, model_cache):
    data = tmp_path / "data"
    data.mkdir()
    (data / "models").symlink_to(model_cache, target_is_directory=True)
    cfg = Config().copy_with({
        "data_dir": str(data), "kafka.bootstrap_servers": broker, "kafka.topic_prefix": f"t{uuid.uuid4().hex[:6]}.",
        "kafka.partitions": 1, "kafka.idle_fetch_backoff_ms": 100, "model.path": "tiny", "model.max_tokens": 256,
        "trainer.model": "tiny", "trainer.from_scratch": False, "trainer.publish_every": 2, "trainer.loss_chunk": 64,
        "pack.seq_len": 256, "policy.follow": True, "policy.rescore_last_shards": 1,
        "agents.measurement_cache": False, "agents.batch_wait_s": 0.2})
    ensure_pipeline_topics(cfg)
    stop, errors = threading.Event(), []

    def entropy_worker():
        try:
            workers.run(cfg, "entropy", stop)
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=entropy_worker)
    worker.start()
    try:
        def anchors():
            return {r.doc_id + ("@" + r.model_version if r.model_version else ""): r for r in read_topic(cfg, ANCHORS)}

        send(cfg, DOCS, [Doc(doc_id="new", text=TEXTS["new"])])
        wait_for("the base model's anchors", lambda: "new" in anchors(), [], timeout=120)

        send(cfg, SHARD_READY, [a_shard(cfg, ("d3",)), a_shard(cfg, ("d1", "d2"))])
        versions = cfg.paths.model_versions(cfg.version("pack"))
        assert run_loop(train, cfg, until=lambda: len(published(versions)) == 1
                        and len([d for d in read_topic(cfg, DOCS) if d.rescore]) == 2) is None
        (v1,) = published(versions)
        announced = read_topic(cfg, MODEL_VERSIONS)
        assert [a.version for a in announced] == [v1.version] and announced[0].path == v1.path
        assert v1.shards_seen == 2 and sorted(d.doc_id for d in read_topic(cfg, DOCS) if d.rescore) == ["d1", "d2"]

        # The last shard's documents (rescore_last_shards = 1) come back, scored by the new version
        # (announced before they were sent); the first shard's do not.
        wait_for("d1 and d2 scored by v1", lambda: {f"d1@{v1.version}", f"d2@{v1.version}"} <= set(anchors()), [],
                 timeout=120)
        scored = anchors()[f"d1@{v1.version}"]
        assert scored.rescore == v1.version  # the marker the packer keys the new sample by
        doc = Doc(doc_id="d1", text=TEXTS["d1"])
        by_v1 = Pipeline(cfg, model_version=announced[0])
        assert by_v1.stage("entropy").process([doc]).outputs[0].anchors == scored.anchors  # v1's weights scored it
        ids = scored.token_ids
        assert abs(by_v1.engine.score([0, *ids])[0] - Pipeline(cfg).engine.score([0, *ids])[0]).max() > 1e-3

        # A version that does not load: the worker says so and keeps v1.
        broken = tmp_path / "broken"
        broken.mkdir()
        send(cfg, MODEL_VERSIONS, [ModelVersion(version="v000009-broken", path=str(broken), base_model="tiny",
                                                config_version=cfg.version("pack"), step=99, shards_seen=9)])
        send(cfg, DOCS, [Doc(doc_id="late", text=TEXTS["late"])])
        wait_for("late scored", lambda: any(k.startswith("late") for k in anchors()), [], timeout=120)
        assert f"late@{v1.version}" in anchors() and not errors and worker.is_alive()
        assert anchors()[f"late@{v1.version}"].rescore == ""  # a new document: scored by the newest, not rescored
        assert REGISTRY.get_sample_value("elong_model_version_refused_total", {"stage": "entropy"}) >= 1
        assert anchors()["new"].model_version == ""  # scored before any version was published

        # A restarted trainer announces its versions again and does not send the documents twice.
        assert run_loop(train, cfg, until=lambda: len(read_topic(cfg, MODEL_VERSIONS)) >= 3) is None
        assert [a.version for a in read_topic(cfg, MODEL_VERSIONS)].count(v1.version) == 2
        assert len([d for d in read_topic(cfg, DOCS) if d.rescore]) == 2
    finally:
        stop.set()
        worker.join(120)
    assert not errors
