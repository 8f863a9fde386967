"""The one thing every transport adapter does: decode, call the stage, encode, dead-letter rejects.

Transport-free: the one consumer loop (worker_loop.py) over Kafka or batch mode's in-memory topics, and
the tests, all hand it plain messages.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from entropylong_streamer.stages.base import StageResult
from entropylong_streamer.topics import DEAD_LETTER, DeadLetter, RecordError, TopicSpec

from .faults import as_outage


@dataclass(frozen=True)
class Message:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass
class Produced:
    topic: TopicSpec
    key: bytes
    value: bytes

    @classmethod
    def of(cls, topic: TopicSpec, record: Any) -> Produced:
        """The record for `topic`, keyed and encoded as the topic's contract says."""
        return cls(topic, topic.key(record), topic.encode(record))


def handle_batch(
    stage_name: str,
    messages: list[Message],
    in_spec: TopicSpec,
    out_spec: TopicSpec | None,
    process: Callable[[list[Any]], StageResult],
    expected_version: str | None = None,
    max_bytes: int | None = None,
    attempts: int = 3,
) -> tuple[list[Produced], list[Produced]]:
    """-> (outputs for out_spec, dead letters). Nothing is lost: undecodable records, stage rejects
    and records on which the stage raised, alone, `attempts` times all become dead letters with a
    reason. An outage (faults.py: the vector store, the broker, the engine, the file system) is no
    record's fault: it raises Outage, and the caller runs the same batch again later.

    Records made under another config version than the one this stage consumes belong to another
    shard set and are skipped, so versions never mix after a replay. An output larger than
    max_bytes (kafka.max_message_bytes) would fail the send for the whole batch: its input is
    dead-lettered instead.
    """
    decoded, origin, dead = [], {}, []
    for msg in messages:
        try:
            rec = in_spec.decode(msg.value)
        except RecordError as exc:
            dead.append(dead_letter(stage_name, f"decode: {exc}", msg))
            continue
        if expected_version is not None and getattr(rec, "config_version", expected_version) != expected_version:
            continue
        origin[id(rec)] = msg
        decoded.append(rec)
    try:
        results = [process(decoded) if decoded else StageResult()]
    except Exception as exc:  # one bad record must not cost the batch: isolate it, one record at a time
        raise_outage(exc)
        results = []
        for rec in decoded:
            for attempt in range(1, attempts + 1):
                try:
                    results.append(process([rec]))
                    break
                except Exception as alone:
                    raise_outage(alone)
                    if attempt == attempts:
                        dead.append(dead_letter(stage_name, f"error: {type(alone).__name__}: {alone}",
                                                origin[id(rec)], getattr(rec, "doc_id", ""), source_id_of(rec),
                                                attempts))
    outputs = []
    for result in results:
        for rej in result.rejects:
            dead.append(dead_letter(stage_name, rej.reason, origin[id(rej.record)], rej.doc_id,
                                    source_id_of(rej.record)))
        if out_spec is None:
            continue
        for o in result.outputs:
            value = out_spec.encode(o)
            if max_bytes is not None and len(value) > max_bytes:
                doc_id = getattr(o, "doc_id", "")
                msg = next(origin[id(r)] for r in decoded if getattr(r, "doc_id", "") == doc_id)
                dead.append(dead_letter(stage_name, f"record_too_large: its {out_spec.name} record has {len(value):,} "
                                        f"bytes > kafka.max_message_bytes {max_bytes:,}", msg, doc_id, source_id_of(o)))
                continue
            outputs.append(Produced(out_spec, out_spec.key(o), value))
    return outputs, dead


def raise_outage(exc: BaseException) -> None:
    """Raise Outage where exc is the infrastructure's fault (EngineLost where the engine is gone)."""
    if (outage := as_outage(exc)) is not None:
        raise outage from exc


def dead_letter(stage: str, reason: str, msg: Message, doc_id: str = "", source_id: str = "",
                attempts: int = 1) -> Produced:
    rec = DeadLetter(stage=stage, reason=reason[:2000], topic=msg.topic, partition=msg.partition,
                     offset=msg.offset, key=msg.key, payload=msg.value or b"", doc_id=doc_id, source_id=source_id,
                     attempts=attempts)
    return Produced.of(DEAD_LETTER, rec)


def source_id_of(record: Any) -> str:
    """The source's own id of a record's document (docs, anchors, candidates, dependencies)."""
    found = getattr(record, "source_id", "")
    return found if isinstance(found, str) else ""
