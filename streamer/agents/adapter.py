"""The one thing every transport adapter does: decode, call the stage, encode, dead-letter rejects.

Transport-free: a Faust agent, a kafka-python loop and the tests all hand it plain messages.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from entropylong_streamer.stages.base import StageResult
from entropylong_streamer.topics import DEAD_LETTER, DeadLetter, RecordError, TopicSpec


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


def on_error_raise(exc: BaseException, msg: Message) -> bool:
    """Default hook for unexpected stage exceptions: do not suppress (the worker stops, offsets stay)."""
    return False


def handle_batch(
    stage_name: str,
    messages: list[Message],
    in_spec: TopicSpec,
    out_spec: TopicSpec | None,
    process: Callable[[list[Any]], StageResult],
) -> tuple[list[Produced], list[Produced]]:
    """-> (outputs for out_spec, dead letters). Undecodable records and stage rejects dead-letter."""
    decoded, origin, dead = [], {}, []
    for msg in messages:
        try:
            rec = in_spec.decode(msg.value)
        except RecordError as exc:
            dead.append(dead_letter(stage_name, f"decode: {exc}", msg))
            continue
        origin[id(rec)] = msg
        decoded.append(rec)
    result = process(decoded) if decoded else StageResult()
    for rej in result.rejects:
        msg = origin[id(rej.record)]
        dead.append(dead_letter(stage_name, rej.reason, msg, rej.doc_id))
    outputs = []
    if out_spec is not None:
        outputs = [Produced(out_spec, out_spec.key(o), out_spec.encode(o)) for o in result.outputs]
    return outputs, dead


def dead_letter(stage: str, reason: str, msg: Message, doc_id: str = "") -> Produced:
    rec = DeadLetter(stage=stage, reason=reason[:2000], topic=msg.topic, partition=msg.partition,
                     offset=msg.offset, key=msg.key, payload=msg.value or b"", doc_id=doc_id)
    return Produced(DEAD_LETTER, DEAD_LETTER.key(rec), DEAD_LETTER.encode(rec))
