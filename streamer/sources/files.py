"""Files and directories -> documents: JSONL and Parquet rows, text files, and (sources/web.py) WARC/WET
records, in a stable order; every bad row a BadRow with its reason (sources/rows.py).

FineWeb(-Edu) rows (id, text, url, ...) work as they are.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from entropylong_streamer.topics import Doc

from .rows import BadRow, make_doc
from .web import is_warc, read_warc

TEXT_SUFFIXES = {".txt", ".md", ".rst", ".text"}


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
