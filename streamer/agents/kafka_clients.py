"""The one Kafka client layer: kafka-python clients from the Config's kafka section (bootstrap
servers, SASL/TLS), translated here and nowhere else."""

from __future__ import annotations

import logging
import signal
import threading

from entropylong_streamer.config import Config

from .worker_loop import Message, Produced

log = logging.getLogger(__name__)


def client_kwargs(cfg: Config) -> dict:
    k = cfg.kafka
    kw: dict = {"bootstrap_servers": k.bootstrap_servers.split(","), "security_protocol": k.security_protocol}
    if k.sasl_mechanism:
        kw.update(sasl_mechanism=k.sasl_mechanism, sasl_plain_username=k.sasl_username,
                  sasl_plain_password=k.sasl_password)
    if k.security_protocol.endswith("SSL"):
        kw.update({f"ssl_{name}": getattr(k, f"ssl_{name}") for name in ("cafile", "certfile", "keyfile")
                   if getattr(k, f"ssl_{name}")})
    return kw


def consumer(cfg: Config, topic: str, group: str, listener=None):
    """A member of group reading topic, committing only when told; listener: a
    ConsumerRebalanceListener, told of every rebalance."""
    from kafka import KafkaConsumer

    session_ms = int(cfg.agents.session_timeout_s * 1000)
    cons = KafkaConsumer(group_id=group, enable_auto_commit=False, auto_offset_reset="earliest",
                         max_poll_interval_ms=600_000, session_timeout_ms=session_ms,
                         heartbeat_interval_ms=min(3000, session_ms // 3),
                         group_instance_id=cfg.agents.instance_id,
                         max_partition_fetch_bytes=cfg.kafka.max_message_bytes, **client_kwargs(cfg))
    cons.subscribe([topic], listener=listener)
    return cons


def producer(cfg: Config):
    from kafka import KafkaProducer

    return KafkaProducer(acks="all", linger_ms=5, max_request_size=cfg.kafka.max_message_bytes, **client_kwargs(cfg))


def poll_messages(cons, max_records: int = 64, timeout_ms: int = 250) -> list[Message]:
    """One poll (on a broker without a fetch long poll, only quiet with the back-off of services/patches.py)."""
    polled = cons.poll(timeout_ms=timeout_ms, max_records=max_records)
    return [Message(r.topic, r.partition, r.offset, r.key, r.value) for rs in polled.values() for r in rs]


def send_all(prod, prefix: str, produced: list[Produced]) -> None:
    """Send and wait for every ack: callers commit input offsets only after this returns."""
    futures = [prod.send(p.topic.full_name(prefix), key=p.key, value=p.value) for p in produced]
    prod.flush()
    for f in futures:
        f.get(timeout=30)


def rewind(cons, msgs: list[Message]) -> None:
    """Seek each partition of the batch, where this consumer still owns it, back to the batch's first
    record there: the next poll brings the same records again (a partition a rebalance took is read
    by its next owner from the committed offset)."""
    from kafka import TopicPartition

    first: dict[TopicPartition, int] = {}
    for m in msgs:
        tp = TopicPartition(m.topic, m.partition)
        first[tp] = min(first.get(tp, m.offset), m.offset)
    owned = cons.assignment()
    for tp, offset in first.items():
        if tp in owned:
            cons.seek(tp, offset)


class KafkaTopics:
    """The broker as a transport: send() returns once every record is acknowledged."""

    def __init__(self, cfg: Config) -> None:
        self.prefix = cfg.kafka.topic_prefix
        self.prod = producer(cfg)

    def send(self, produced: list[Produced]) -> None:
        send_all(self.prod, self.prefix, produced)

    def close(self) -> None:
        self.prod.close()


def stop_event() -> threading.Event:
    """Set on SIGTERM/SIGINT so a loop finishes its batch, flushes, commits and exits."""
    ev = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: ev.set())
    return ev


def commit(cons) -> bool:
    """Commit what was consumed; False when the group moved on (a rebalance, or a broker that
    restarted and forgot the generation). Then the uncommitted records come again after the rejoin:
    the packer and the trainer skip what they already made durable (the shard set, the checkpoint),
    the stages run them again (the packer drops the duplicates), so nothing is lost or doubled and
    the worker keeps running."""
    from kafka.errors import CommitFailedError, RebalanceInProgressError

    try:
        cons.commit()
        return True
    except (CommitFailedError, RebalanceInProgressError) as exc:  # the second: a rebalance not yet finished
        log.warning("commit refused (%s): the uncommitted records come again after the rejoin", exc)
        return False
