"""The packer commits offsets only after a shard is durable: a failed write leaves them uncommitted (the
packer waits it out as an outage), and a packer started again packs each record once."""

import uuid

from kafka import KafkaAdminClient
from prometheus_client import REGISTRY
from stack_helpers import run_loop

from entropylong_streamer import registry
from entropylong_streamer.agents import kafka_clients as kc
from entropylong_streamer.agents import worker
from entropylong_streamer.config import Config
from entropylong_streamer.services.shards import ShardSet, read_shard
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
    return run_loop(lambda c, stop: worker.run(c, "pack", stop), cfg, until)


def test_failed_shard_write_commits_nothing_and_a_restart_packs_each_record_once(tmp_path, broker, monkeypatch):
    cfg = Config().copy_with({"data_dir": str(tmp_path / "data"), "kafka.bootstrap_servers": broker,
                              "kafka.topic_prefix": f"t{uuid.uuid4().hex[:6]}.", "kafka.partitions": 2,
                              "kafka.idle_fetch_backoff_ms": 100, "pack.seq_len": 64,
                              "pack.sequences_per_shard": 1, "pack.max_wait_s": 0.5})
    ensure_pipeline_topics(cfg)
    prod = kc.producer(cfg)
    stale = record("old", "another-version")  # from before a replay: skipped, never packed here
    for rec in [*(record(f"d{i}", cfg.version("verify")) for i in range(6)), stale]:
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

    shard_dir = tmp_path / "data" / "shards" / cfg.version("pack")
    assert run_packer(cfg, until=lambda: committed(cfg) == 7) is None
    shards = ShardSet(shard_dir.parent, cfg.version("pack"))
    packed = [d for e in shards.entries for d in e["doc_ids"]]
    assert sorted(packed) == [f"d{i}" for i in range(6)]


def chain_record(doc_id: str, tokens: list[int], context_doc: str, window: list[int], anchor: int,
                 version: str) -> DependenciesRecord:
    ctx = Context(context_id=context_doc, context_doc_id=context_doc, text="w", token_ids=window)
    pair = Pair(context_id=context_doc, anchor_index=anchor, char_start=0, char_end=1, h=2.0, h_ctx=0.4, nll=2.0,
                nll_ctx=0.4, d_i=0.8, accepted=True)
    return DependenciesRecord(doc_id=doc_id, text="t", token_ids=tokens, contexts=[ctx], pairs=[pair],
                              config_version=version)


def test_a_packer_builds_two_hops_from_what_another_packer_made_known(tmp_path, broker):
    """pack.depth 2: packer A packs b (b rests on c); packer B, with a disk of its own, packs d (d rests on a
    window of b) and puts c's window before b's from the verified topic A published."""
    prefix = f"t{uuid.uuid4().hex[:6]}."
    base = {"kafka.bootstrap_servers": broker, "kafka.topic_prefix": prefix, "kafka.partitions": 2,
            "kafka.idle_fetch_backoff_ms": 100, "pack.seq_len": 128, "pack.sequences_per_shard": 1,
            "pack.max_wait_s": 0.5, "pack.depth": 2}
    a, b = (Config().copy_with({**base, "data_dir": str(tmp_path / name)}) for name in ("a", "b"))
    version = a.version("verify")
    topic = DEPENDENCIES.full_name(prefix)
    ensure_pipeline_topics(a)

    def send(rec: DependenciesRecord) -> None:
        prod = kc.producer(a)
        prod.send(topic, key=DEPENDENCIES.key(rec), value=DEPENDENCIES.encode(rec))
        prod.flush()
        prod.close()

    b_tokens, c_tokens = list(range(200, 230)), list(range(300, 320))
    send(chain_record("b", b_tokens, "c", c_tokens[:8], 9, version))
    assert run_packer(a, until=lambda: committed(a) == 1) is None
    send(chain_record("d", list(range(1, 9)), "b", b_tokens[5:15], 3, version))
    assert run_packer(b, until=lambda: committed(b) == 2) is None
    shards = ShardSet(tmp_path / "b" / "shards", b.version("pack"))
    (entry,) = shards.entries
    (seq,) = read_shard(entry["path"])
    assert seq["doc_ids"] == ["d"]
    ids = seq["input_ids"].tolist()
    i, j = ids.index(c_tokens[0]), ids.index(b_tokens[5])
    assert ids[i : i + 8] == c_tokens[:8] and i + 8 < j and ids[j : j + 10] == b_tokens[5:15]
    assert [[c, k] for c, _, _, k in seq["contexts"]] == [["c", 2], ["b", 1]]
