"""The stage workers' batches (agents/stage_loop.py) on the real broker: a batch is at most
max_batch records, is topped up within batch_wait_s, and what is not committed comes again."""

from entropylong_streamer.agents import kafka_clients as kc
from entropylong_streamer.agents.stage_loop import take_batch
from entropylong_streamer.config import load_config
from entropylong_streamer.services.stack import ensure_topics


def test_batches_are_capped_topped_up_and_uncommitted_records_come_again(broker):
    cfg = load_config(None, {"kafka.bootstrap_servers": broker, "agents.session_timeout_s": 6.0})
    ensure_topics(broker, {"in": 1})
    prod = kc.producer(cfg)
    for i in range(10):
        prod.send("in", key=b"k", value=str(i).encode())
    prod.flush()

    def offsets(msgs):
        return [m.offset for m in msgs]

    def first_batch(cons, max_batch):  # the first polls may only join the group
        for _ in range(200):
            if msgs := take_batch(cons, max_batch, wait_s=0.5):
                return msgs
        raise AssertionError("no records after 200 polls")

    cons = kc.consumer(cfg, "in", "g")
    assert offsets(first_batch(cons, 4)) == [0, 1, 2, 3]
    assert kc.commit(cons)
    assert offsets(take_batch(cons, 8, wait_s=0.5)) == [4, 5, 6, 7, 8, 9]  # 6 left: all, after the wait
    assert take_batch(cons, 8, wait_s=0.5) == []  # quiet: an empty batch
    cons.close(autocommit=False)  # 4..9 processed but never committed: a crash before the commit

    again = kc.consumer(cfg, "in", "g")
    assert offsets(first_batch(again, 8)) == [4, 5, 6, 7, 8, 9]
    again.close(autocommit=False)
    prod.close()
