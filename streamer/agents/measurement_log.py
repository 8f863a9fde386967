"""The verify worker's measurement cache, kept in the measurements topic.

Where it lives: the compacted measurements topic is the durable copy; each verify worker holds in
memory the partitions it has worked on. Every message goes to the partition of its document's
candidates record, so measurements are partitioned exactly like the work: before a batch the
worker reads, for each candidates partition in it, whatever that measurements partition gained
since it last looked (all of it the first time: after a restart, or when scaling moved the
partition here); after the batch it writes its new measurements and waits for the acks, before
the outputs that used them are sent. Keys name the model and the exact tokens, never a threshold,
so every version of the verify stage shares the one topic and a replay finds every earlier pair.
"""

from __future__ import annotations

import logging

from entropylong_streamer.config import Config
from entropylong_streamer.measurements import Measurement, MemoryCache, key_doc_id
from entropylong_streamer.topics import MEASUREMENTS, Measured, RecordError

from . import kafka_clients as kc

log = logging.getLogger(__name__)


class MeasurementLog(MemoryCache):
    def __init__(self, cfg: Config) -> None:
        from kafka import KafkaConsumer

        super().__init__()
        self.topic = MEASUREMENTS.full_name(cfg.kafka.topic_prefix)
        self._consumer = KafkaConsumer(enable_auto_commit=False, **kc.client_kwargs(cfg))
        self._producer = kc.producer(cfg)
        self._read_to: dict[int, int] = {}  # measurements partition -> next offset to read
        self._pending: list[tuple[bytes, Measurement]] = []

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
            m = MEASUREMENTS.decode(value)
        except RecordError as exc:  # not ours: a cache miss later costs a forward, nothing else
            log.warning("skipping a bad measurements record: %s", exc)
            return 0
        if key:
            self.data[key] = (m.h_ctx, m.nll_ctx)
        return 1

    def flush(self, partition_of: dict[str, int]) -> None:
        """Write the new measurements, each to its document's partition, and wait for the acks."""
        pending, self._pending = self._pending, []
        futures = []
        for key, (h, nll) in pending:
            partition = partition_of.get(key_doc_id(key))
            if partition is None:  # a record keyed other than by its doc id: kept in memory only
                continue
            futures.append(self._producer.send(self.topic, key=key, partition=partition,
                                               value=MEASUREMENTS.encode(Measured(h_ctx=h, nll_ctx=nll))))
        self._producer.flush()
        for meta in sorted((f.get(timeout=30) for f in futures), key=lambda m: (m.partition, m.offset)):
            # Already applied locally: skip reading our own writes back, but only while they follow
            # straight on from what was read (another worker's writes in between are still read).
            if self._read_to.get(meta.partition) == meta.offset:
                self._read_to[meta.partition] = meta.offset + 1
