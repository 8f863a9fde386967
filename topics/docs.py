"""docs: documents as they enter the pipeline, keyed by a content-derived doc_id."""

from __future__ import annotations

from pydantic import field_validator

from .base import FromSource, TopicSpec


class Doc(FromSource):
    doc_id: str
    text: str

    @field_validator("text")
    @classmethod
    def _not_blank(cls, text: str) -> str:
        if not text.strip():
            raise ValueError("empty text")
        return text


DOCS = TopicSpec("docs", Doc)
