"""docs: documents as they enter the pipeline, keyed by a content-derived doc_id."""

from __future__ import annotations

from pydantic import field_validator

from .base import Record, TopicSpec


class Doc(Record):
    doc_id: str
    text: str
    url: str = ""
    source: str = ""  # where it was read: file and line, Parquet row, WARC record offset
    source_id: str = ""  # the source's own id: a JSONL or Parquet `id`, a WARC-Record-ID

    @field_validator("text")
    @classmethod
    def _not_blank(cls, text: str) -> str:
        if not text.strip():
            raise ValueError("empty text")
        return text


DOCS = TopicSpec("docs", Doc)
