"""dropped: every document the door turned away, with the rule and why; nothing leaves silently."""

from __future__ import annotations

from .base import Record, TopicSpec


class DroppedDoc(Record):
    doc_id: str
    url: str = ""
    source: str = ""  # file and line, row or WARC record offset
    source_id: str = ""  # the source's own id (Doc.source_id)
    rule: str  # exact_duplicate, near_duplicate, language, too_short, too_long, symbol_ratio, ...
    detail: str
    duplicate_of: str = ""  # for the duplicate rules: the document it repeats


DROPPED = TopicSpec("dropped", DroppedDoc)
