"""What every reader yields: a document with its content-derived id, or a bad row with its reason.

The doc_id is a hash of the text, so an identical document always gets the same id and is processed
once however often it is ingested.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from entropylong_streamer.topics import Doc


def doc_id_for(text: str) -> str:
    return hashlib.sha256(text.strip().encode("utf-8", "surrogatepass")).hexdigest()[:24]


@dataclass(frozen=True)
class BadRow:
    where: str
    reason: str
    source_id: str = ""  # the row's own id, where it has one


def make_doc(text: object, url: object, where: str, source_id: object = None) -> Doc | BadRow:
    """A document from what a reader found; `source_id` is the source's own id (kept as text)."""
    sid = "" if source_id is None or isinstance(source_id, dict | list) else str(source_id)
    if text is None:
        return BadRow(where, "no text: the row has no 'text' field, or it is null", sid)
    if not isinstance(text, str):
        return BadRow(where, f"'text' is a {_json_type(text)}, not a string", sid)
    if not text.strip():
        return BadRow(where, "empty text", sid)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return BadRow(where, "text is not valid UTF-8", sid)
    return Doc(doc_id=doc_id_for(text), text=text, url=url if isinstance(url, str) else "", source=where,
               source_id=sid)


def _json_type(value: object) -> str:
    """What a user calls a JSON value's type."""
    kinds = ((bool, "boolean"), (int, "number"), (float, "number"), (dict, "JSON object"), (list, "list"))
    return next((name for kind, name in kinds if isinstance(value, kind)), type(value).__name__)
