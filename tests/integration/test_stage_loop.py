"""The stage workers' batches (agents/kafka_source.take_batch) on the real broker: a batch is at most
max_batch records, is topped up within batch_wait_s, and what is not committed comes again."""

from entropylong_streamer.agents import kafka_clients as kc
from entropylong_streamer.agents.kafka_source import Revoked, take_batch
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


def a_first_member_of_two_partitions(broker, topics: dict[str, int]):
    """40 records over the 2 partitions of "in", and the first member of group "g" holding both from
    offset 0 (nothing committed): (cfg, producer, consumer, its Revoked listener)."""
    cfg = load_config(None, {"kafka.bootstrap_servers": broker, "agents.session_timeout_s": 6.0})
    ensure_topics(broker, topics)
    prod = kc.producer(cfg)
    for i in range(40):
        prod.send("in", value=str(i).encode(), partition=i % 2)
    prod.flush()
    revoked = Revoked()
    first = kc.consumer(cfg, "in", "g", revoked)
    while not first.assignment():  # the first member takes both partitions
        first.poll(timeout_ms=200, max_records=1)
    first.seek_to_beginning()
    return cfg, prod, first, revoked


def test_records_of_partitions_revoked_while_a_batch_fills_are_left_to_their_new_owner(broker):
    """A second worker joins while the first is topping up a batch: the rebalance takes a partition
    whose records the batch already holds (uncommitted). The batch drops them; the new owner reads
    them from the committed offset, so no record is processed by both."""
    import threading

    cfg, prod, first, revoked = a_first_member_of_two_partitions(broker, {"in": 2})
    joined, second_got, stop = threading.Event(), [], threading.Event()

    def second_member():
        second = kc.consumer(cfg, "in", "g")
        while not stop.is_set():
            second_got.extend((m.partition, m.offset) for m in kc.poll_messages(second, max_records=100))
            if second.assignment():
                joined.set()
        second.close(autocommit=False)

    member = threading.Thread(target=second_member)
    member.start()
    try:
        batch = take_batch(first, max_batch=1000, wait_s=15.0, revoked=revoked)
        for _ in range(300):  # the rebalance completes only while both members poll, as the loop does
            if joined.wait(0.1):
                break
            first.poll(timeout_ms=100)
        assert joined.is_set()
        stop.set()
    finally:
        stop.set()
        member.join(30)
    mine = {(m.partition, m.offset) for m in batch}
    assert revoked.dropped > 0, "the batch held no record of a revoked partition"
    assert not mine & set(second_got), sorted(mine & set(second_got))[:5]
    assert {p for p, _ in mine} <= {tp.partition for tp in first.assignment()}
    first.close(autocommit=False)
    prod.close()


def test_records_of_partitions_a_rebalance_gives_back_stay_in_the_batch(broker):
    """A member of the same group joins for another topic: the rebalance revokes this consumer's
    partitions and assigns them straight back. kafka-python keeps their positions, so a batch that
    dropped their records would commit past them unprocessed (CI lost 9 documents in
    test_fault_injection that way). They stay: every record is processed, once."""
    import threading

    cfg, prod, first, revoked = a_first_member_of_two_partitions(broker, {"in": 2, "other": 1})
    stop = threading.Event()

    def member_for_another_topic():
        other = kc.consumer(cfg, "other", "g")
        while not stop.is_set():
            kc.poll_messages(other)
        other.close(autocommit=False)

    member = threading.Thread(target=member_for_another_topic)
    member.start()
    try:
        batch = take_batch(first, max_batch=1000, wait_s=15.0, revoked=revoked)
        assert revoked.rebalances > 0, "no rebalance while the batch filled: the test proved nothing"
        for _ in range(200):  # refused while the group still settles (the loop's batch would come again)
            if kc.commit(first):
                break
            batch += kc.poll_messages(first)
        assert {tp.topic for tp in first.assignment()} == {"in"} and len(first.assignment()) == 2
        while len(batch) < 40 and (more := take_batch(first, max_batch=1000, wait_s=1.0, revoked=revoked)):
            batch += more
    finally:
        stop.set()
        member.join(30)
    assert sorted((m.partition, m.offset) for m in batch) == sorted((i % 2, i // 2) for i in range(40))
    assert revoked.dropped == 0
    first.close(autocommit=False)
    prod.close()
