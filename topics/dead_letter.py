"""dead-letter: a record any stage could not process, with the stage and the reason."""

from __future__ import annotations

from typing import ClassVar

from .base import Record, TopicSpec


class DeadLetter(Record):
    # 2: attempts
    SCHEMA_VERSION: ClassVar[int] = 2
    UPGRADES_FROM: ClassVar[tuple[int, ...]] = (1,)

    schema_version: int = 2
    stage: str
    reason: str
    topic: str
    partition: int = -1
    offset: int = -1
    key: bytes | None = None
    payload: bytes
    doc_id: str = ""
    source_id: str = ""  # the source's own id of the document, where the record carried one
    attempts: int = 1  # how many times the stage ran the record alone before giving up on it (a poison pill)


DEAD_LETTER = TopicSpec("dead-letter", DeadLetter, key_field="stage", partitions=1)
