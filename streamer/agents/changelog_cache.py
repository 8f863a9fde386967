"""A worker's measurement cache, kept in a compacted changelog topic (streamer/measurements.py).

The entropy worker keeps its documents' token scores in the scores topic, the verify worker its
pair measurements in the measurements topic. The topic is the durable copy; each worker holds in
memory the partitions it has worked on. Every message goes to the partition of its document's
input record, so measurements are partitioned exactly like the work: before a batch the worker
reads, for each input partition in it, whatever that changelog partition gained since it last
looked (all of it the first time: after a restart, or when scaling moved the partition here);
after the batch it writes its new measurements and waits for the acks, before the outputs that
used them are sent. Keys name the model and the exact tokens, never a threshold, so every version
of a stage shares the one topic and a replay finds every earlier measurement.

Not Faust tables: on the embedded broker a table's changelog recovery lost input records of a
new consumer group (docs/method.md, the measurement cache).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import cached_property

from entropylong_streamer.config import Config
from entropylong_streamer.measurements import MemoryCache, key_doc_id
from entropylong_streamer.topics import MEASUREMENTS, SCORES, Measured, Record, RecordError, Scored, TopicSpec

from . import kafka_clients as kc

log = logging.getLogger(__name__)


class ChangelogCache(MemoryCache):
    def __init__(self, cfg: Config, spec: TopicSpec, to_value: Callable[[Record], tuple],
                 to_record: Callable[[tuple], Record]) -> None:
        from kafka import KafkaConsumer

        super().__init__()
        self.spec, self._to_value, self._to_record = spec, to_value, to_record
        self.topic = spec.full_name(cfg.kafka.topic_prefix)
        self._consumer = KafkaConsumer(enable_auto_commit=False, **kc.client_kwargs(cfg))
        self._cfg = cfg
        self._read_to: dict[int, int] = {}  # measurements partition -> next offset to read
        self._pending: list[tuple[bytes, tuple]] = []

    @cached_property
    def _producer(self):
        return kc.producer(self._cfg)

    def close(self) -> None:
        self._consumer.close(autocommit=False)
        if "_producer" in self.__dict__:
            self._producer.close()

    def put(self, items) -> None:
        items = list(items)
        super().put(items)
        self._pending.extend(items)

    def catch_up(self, partitions: set[int]) -> int:
        """Read what these partitions gained since last time; returns how many measurements."""
        from kafka import TopicPartition

        tps = {p: TopicPartition(self.topic, p) for p in partitions}
        self._consumer.assign([TopicPartition(self.topic, p) for p in {*self._read_to, *partitions}])
        for p in self._read_to:
            self._consumer.seek(TopicPartition(self.topic, p), self._read_to[p])
        fresh = [tps[p] for p in partitions if p not in self._read_to]
        if fresh:
            self._consumer.seek_to_beginning(*fresh)
        end = self._consumer.end_offsets(list(tps.values()))
        read = 0
        while any(self._consumer.position(tp) < end[tp] for tp in tps.values()):
            for records in self._consumer.poll(timeout_ms=500).values():
                for r in records:
                    read += self._apply(r.key, r.value)
        for p in {*self._read_to, *partitions}:
            self._read_to[p] = self._consumer.position(TopicPartition(self.topic, p))
        return read

    def _apply(self, key: bytes | None, value: bytes | None) -> int:
        try:
            m = self.spec.decode(value)
        except RecordError as exc:  # not ours: a cache miss later costs a forward, nothing else
            log.warning("skipping a bad %s record: %s", self.spec.name, exc)
            return 0
        if key:
            self.data[key] = self._to_value(m)
        return 1

    def flush(self, partition_of: dict[str, int]) -> None:
        """Write the new measurements, each to its document's partition, and wait for the acks."""
        pending, self._pending = self._pending, []
        futures = []
        for key, value in pending:
            partition = partition_of.get(key_doc_id(key))
            if partition is None:  # a record keyed other than by its doc id: kept in memory only
                continue
            futures.append(self._producer.send(self.topic, key=key, partition=partition,
                                               value=self.spec.encode(self._to_record(value))))
        self._producer.flush()
        for meta in sorted((f.get(timeout=30) for f in futures), key=lambda m: (m.partition, m.offset)):
            # Already applied locally: skip reading our own writes back, but only while they follow
            # straight on from what was read (another worker's writes in between are still read).
            if self._read_to.get(meta.partition) == meta.offset:
                self._read_to[meta.partition] = meta.offset + 1


def measurement_log(cfg: Config) -> ChangelogCache:
    """The verify worker's (H', NLL') per pair."""
    return ChangelogCache(cfg, MEASUREMENTS, lambda m: (m.h_ctx, m.nll_ctx),
                          lambda v: Measured(h_ctx=v[0], nll_ctx=v[1]))


def scores_log(cfg: Config) -> ChangelogCache:
    """The entropy worker's per-token (H, NLL) per document."""
    return ChangelogCache(cfg, SCORES, lambda m: (m.h_f32, m.nll_f32), lambda v: Scored(h_f32=v[0], nll_f32=v[1]))
