"""dropped: every document the door turned away, with the rule and why; nothing leaves silently."""

from __future__ import annotations

from .base import FromSource, TopicSpec


class DroppedDoc(FromSource):
    doc_id: str
    rule: str  # exact_duplicate, near_duplicate, language, too_short, too_long, symbol_ratio, ...
    detail: str
    duplicate_of: str = ""  # for the duplicate rules: the document it repeats


DROPPED = TopicSpec("dropped", DroppedDoc)
