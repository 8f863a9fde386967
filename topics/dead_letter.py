"""dead-letter: a record any stage could not process, with the stage and the reason."""

from __future__ import annotations

from .base import Record, TopicSpec


class DeadLetter(Record):
    stage: str
    reason: str
    topic: str
    partition: int = -1
    offset: int = -1
    key: bytes | None = None
    payload: bytes
    doc_id: str = ""
    source_id: str = ""  # the source's own id of the document, where the record carried one


DEAD_LETTER = TopicSpec("dead-letter", DeadLetter, key_field="stage", partitions=1)
