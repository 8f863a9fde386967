"""Where documents come from: files and directories (JSONL, Parquet, text, WARC/WET), each read into
documents or bad rows with their reasons. Not stages: `elong ingest` and `elong build` read through them
and send what they read past the door (streamer/ingest.py)."""

from .files import iter_paths, read_documents
from .rows import BadRow, doc_id_for, make_doc

__all__ = ["BadRow", "doc_id_for", "iter_paths", "make_doc", "read_documents"]
