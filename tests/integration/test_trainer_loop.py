"""The trainer's Kafka loop: each announced shard of its version trained once across a restart,
other versions skipped, an unreadable shard dead-lettered; the offset commits after the checkpoint."""

import json
import uuid
from pathlib import Path

from stack_helpers import read_topic, run_loop

from entropylong_streamer.agents import kafka_clients as kc
from entropylong_streamer.agents import worker
from entropylong_streamer.config import Config
from entropylong_streamer.services import checkpoint
from entropylong_streamer.status import ensure_pipeline_topics
from entropylong_streamer.topics import DEAD_LETTER, SHARD_READY, ShardReady


def run_trainer(cfg: Config, until) -> None:
    assert run_loop(lambda c, stop: worker.run(c, "trainer", stop), cfg, until) is None


def consumed(cfg: Config) -> list[str]:
    return list((checkpoint.latest_state(Path(cfg.data_dir) / "trainer") or {}).get("consumed", {}))


def test_every_announced_shard_is_trained_exactly_once_across_a_restart(tmp_path, broker, model_cache, make_shards):  # noqa: F811
    data = tmp_path / "data"
    data.mkdir()
    (data / "models").symlink_to(model_cache, target_is_directory=True)
    cfg = Config().copy_with({"data_dir": str(data), "kafka.bootstrap_servers": broker,
                              "kafka.topic_prefix": f"t{uuid.uuid4().hex[:6]}.", "kafka.idle_fetch_backoff_ms": 100,
                              "trainer.loss_chunk": 64})
    ensure_pipeline_topics(cfg)
    version = cfg.version("pack")
    shards = make_shards(data / "shards", 3)
    topic = SHARD_READY.full_name(cfg.kafka.topic_prefix)
    prod = kc.producer(cfg)

    def announce(shard_id, path, version=version):
        ready = ShardReady(shard_id=shard_id, path=path, config_version=version, sequences=2, samples=1, tokens=1)
        prod.send(topic, key=SHARD_READY.key(ready), value=SHARD_READY.encode(ready))
        prod.flush()

    announce(*shards[0])
    announce("shard-x", str(tmp_path / "nowhere"), "another-version")  # not this trainer's shard set
    run_trainer(cfg, until=lambda: len(consumed(cfg)) == 1)
    for shard_id, path in shards[1:]:
        announce(shard_id, path)
    announce("shard-gone", str(tmp_path / "gone"))  # announced, then lost: dead-lettered

    def trainer_dead_letters():
        return [d for d in read_topic(cfg, DEAD_LETTER) if d.stage == "trainer"]

    # until both: the lost shard comes after the last good one, possibly in a later poll
    run_trainer(cfg, until=lambda: len(consumed(cfg)) == 3 and trainer_dead_letters())

    assert consumed(cfg) == [f"{version}/{s}" for s, _ in shards]
    lines = [json.loads(x) for x in (data / "trainer" / "loss.jsonl").read_text().splitlines()]
    assert [x["shard_id"] for x in lines] == [s for s, _ in shards]  # none trained twice
    assert checkpoint.latest_state(data / "trainer")["step"] == sum(x["steps"] for x in lines)
    dead = trainer_dead_letters()
    assert len(dead) == 1 and "shard-gone" in dead[0].reason
    prod.close()
