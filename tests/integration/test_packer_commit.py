"""The packer commits offsets only after a shard is durable: a failed write leaves them uncommitted (the
packer waits it out as an outage), and a packer started again packs each record once."""

import uuid

from kafka import KafkaAdminClient
from prometheus_client import REGISTRY
from stack_helpers import run_loop

from entropylong_streamer import registry
from entropylong_streamer.agents import kafka_clients as kc
from entropylong_streamer.agents import packer_loop
from entropylong_streamer.config import Config
from entropylong_streamer.services.shards import ShardSet
from entropylong_streamer.status import ensure_pipeline_topics
from entropylong_streamer.topics import DEPENDENCIES, Context, DependenciesRecord, Pair


def record(doc_id: str, version: str) -> DependenciesRecord:
    ctx = Context(context_id="c:0", context_doc_id="c", text="c", token_ids=[5, 6])
    pair = Pair(context_id="c:0", anchor_index=1, char_start=0, char_end=1, h=2.0, h_ctx=0.4, nll=2.0,
                nll_ctx=0.4, d_i=0.8, accepted=True)
    return DependenciesRecord(doc_id=doc_id, text="t", token_ids=[1, 2, 3], contexts=[ctx], pairs=[pair],
                              config_version=version)


def committed(cfg: Config) -> int:
    admin = KafkaAdminClient(**kc.client_kwargs(cfg))
    try:
        group = registry.stage("pack").group(cfg)
        offsets = admin.list_group_offsets([group]).get(group, {})
        return sum(o.offset for o in offsets.values() if o.offset >= 0)
    finally:
        admin.close()


def run_packer(cfg: Config, until) -> BaseException | None:
    return run_loop(packer_loop.run, cfg, until)


def test_failed_shard_write_commits_nothing_and_a_restart_packs_each_record_once(tmp_path, broker, monkeypatch):
    cfg = Config().copy_with({"data_dir": str(tmp_path / "data"), "kafka.bootstrap_servers": broker,
                              "kafka.topic_prefix": f"t{uuid.uuid4().hex[:6]}.", "kafka.partitions": 2,
                              "kafka.idle_fetch_backoff_ms": 100, "pack.seq_len": 64,
                              "pack.sequences_per_shard": 1, "pack.max_wait_s": 0.5})
    ensure_pipeline_topics(cfg)
    prod = kc.producer(cfg)
    stale = record("old", "another-version")  # from before a replay: skipped, never packed here
    for rec in [*(record(f"d{i}", cfg.verify_version()) for i in range(6)), stale]:
        prod.send(DEPENDENCIES.full_name(cfg.kafka.topic_prefix), key=DEPENDENCIES.key(rec),
                  value=DEPENDENCIES.encode(rec))
    prod.flush()
    prod.close()

    def disk_full(self, sequences, domain, documents=None):
        raise OSError("disk full")

    def waiting_on_the_disk() -> bool:
        return REGISTRY.get_sample_value("elong_stage_blocked", {"stage": "pack", "reason": "filesystem"}) == 1

    with monkeypatch.context() as m:
        m.setattr(ShardSet, "write", disk_full)
        error = run_packer(cfg, until=waiting_on_the_disk)  # an outage: the packer waits, it does not exit
    assert error is None and waiting_on_the_disk()
    assert committed(cfg) == 0

    shard_dir = tmp_path / "data" / "shards" / cfg.pack_version()
    assert run_packer(cfg, until=lambda: committed(cfg) == 7) is None
    shards = ShardSet(shard_dir.parent, cfg.pack_version())
    packed = [d for e in shards.entries for d in e["doc_ids"]]
    assert sorted(packed) == [f"d{i}" for i in range(6)]
