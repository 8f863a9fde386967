"""Ingest: JSONL, Parquet, WARC/WET and directories of text files -> Doc records with content-derived ids.

FineWeb(-Edu) rows (id, text, url, ...) work as they are. The doc_id is a hash of the text, so an
identical document always gets the same id and is processed once however often it is ingested.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from entropylong_streamer.topics import Doc

TEXT_SUFFIXES = {".txt", ".md", ".rst", ".text"}


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


def read_jsonl(path: Path) -> Iterator[Doc | BadRow]:
    with open(path, encoding="utf-8", errors="surrogateescape") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                yield BadRow(f"{path}:{n}", f"invalid JSON: {exc.msg}")
                continue
            except RecursionError:  # nesting deeper than the parser's stack
                yield BadRow(f"{path}:{n}", "invalid JSON: nested too deeply")
                continue
            if not isinstance(row, dict):
                yield BadRow(f"{path}:{n}", "line is not a JSON object")
                continue
            yield make_doc(row.get("text"), row.get("url"), f"{path}:{n}", row.get("id"))


def read_parquet(path: Path, batch_size: int = 1024) -> Iterator[Doc | BadRow]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid/OSError variants for bad files
        yield BadRow(str(path), f"unreadable Parquet: {exc}")
        return
    if "text" not in pf.schema_arrow.names:
        yield BadRow(str(path), "Parquet file has no 'text' column")
        return
    cols = ["text"] + [c for c in ("url", "id") if c in pf.schema_arrow.names]
    n = 0
    for batch in pf.iter_batches(batch_size=batch_size, columns=cols):
        data = batch.to_pydict()
        for i, text in enumerate(data["text"]):
            yield make_doc(text, data.get("url", [None] * len(data["text"]))[i], f"{path}#{n}",
                           data.get("id", [None] * len(data["text"]))[i])
            n += 1


def read_text_file(path: Path) -> Iterator[Doc | BadRow]:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        yield BadRow(str(path), "file is not UTF-8 text")
        return
    yield make_doc(text, "", str(path))


def iter_paths(paths: list[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from (p for p in sorted(path.rglob("*")) if p.is_file())
        else:
            yield path


def read_documents(paths: list[Path], html_extractor: str = "trafilatura") -> Iterator[Doc | BadRow]:
    """Every document in the given files and directories, in a stable order."""
    from .web import is_warc, read_warc

    for path in iter_paths(paths):
        if not path.exists():
            yield BadRow(str(path), "no such file")
        elif is_warc(path):
            yield from read_warc(path, html_extractor)
        elif path.suffix == ".jsonl":
            yield from read_jsonl(path)
        elif path.suffix == ".parquet":
            yield from read_parquet(path)
        elif path.suffix in TEXT_SUFFIXES:
            yield from read_text_file(path)
        else:
            yield BadRow(str(path), f"unsupported file type {path.suffix or '(none)'}")
