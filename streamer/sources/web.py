"""Crawl output: WARC (HTML responses, main text extracted) and WET (text conversions) records -> Docs.

Every response or conversion record becomes a document or a bad row with its reason (not HTML,
nothing left after extraction, an unreadable archive); requests, metadata, warcinfo and revisit
records are not documents. The extractor is configuration (`door.html_extractor`):
bench/extraction.py measures both on generated pages.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from entropylong_streamer.topics import Doc

from .rows import BadRow, make_doc

WARC_SUFFIXES = (".warc", ".warc.gz", ".wet", ".wet.gz", ".warc.zst", ".wet.zst")
HTML_TYPES = ("text/html", "application/xhtml+xml")


def is_warc(path: Path) -> bool:
    return path.name.endswith(WARC_SUFFIXES)


def trafilatura_text(html: str) -> str:
    import trafilatura

    return trafilatura.extract(html, include_comments=False, include_tables=True) or ""


def resiliparse_text(html: str) -> str:
    from resiliparse.extract.html2text import extract_plain_text

    return extract_plain_text(html, main_content=True)


EXTRACTORS: dict[str, Callable[[str], str]] = {"trafilatura": trafilatura_text, "resiliparse": resiliparse_text}


def decode_html(body: bytes, content_type: str) -> str:
    """The declared charset if it decodes, else the detected one (resiliparse)."""
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding

    declared = content_type.partition("charset=")[2].split(";")[0].strip().strip('"') if content_type else ""
    if declared:
        try:
            return body.decode(declared)
        except (LookupError, UnicodeDecodeError):
            pass
    return bytes_to_str(body, detect_encoding(body))


def read_warc(path: Path, extractor: str = "trafilatura") -> Iterator[Doc | BadRow]:
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    extract = EXTRACTORS[extractor]
    wanted = WarcRecordType.response | WarcRecordType.conversion | WarcRecordType.resource
    records = 0
    try:
        with open(path, "rb") as fh:
            for rec in ArchiveIterator(fh, parse_http=True):
                records += 1
                where = f"{path}@{rec.stream_pos}"
                if rec.record_type in (WarcRecordType.no_type, WarcRecordType.unknown):
                    yield BadRow(where, "malformed WARC record: no known WARC-Type")
                    continue
                if not rec.record_type & wanted:
                    continue  # requests, metadata, warcinfo, revisits: not documents
                url = rec.headers.get("WARC-Target-URI") or ""
                record_id = rec.headers.get("WARC-Record-ID") or ""
                body = rec.reader.read()
                if rec.headers.get("Content-Length") is None or len(body) < rec.content_length:
                    yield BadRow(where, "truncated record: the archive ends inside it")
                    continue
                if rec.record_type == WarcRecordType.conversion:  # WET: the crawler's own text
                    yield make_doc(body.decode("utf-8", errors="replace"), url, where, record_id)
                    continue
                ctype = (rec.http_headers.get("Content-Type") if rec.http_headers else None) or \
                    rec.headers.get("Content-Type") or ""
                if not ctype.lower().startswith(HTML_TYPES):
                    yield BadRow(where, f"not HTML: {ctype.split(';')[0] or 'no content type'}")
                    continue
                status = rec.http_headers.status_code if rec.http_headers else 200
                if status != 200:
                    yield BadRow(where, f"HTTP status {status}")
                    continue
                text = extract(decode_html(body, ctype))
                yield (make_doc(text, url, where, record_id) if text.strip()
                       else BadRow(where, "no main text in the HTML"))
    except (OSError, ValueError, RuntimeError) as exc:  # a truncated or corrupt archive: the rest of it is lost
        yield BadRow(str(path), f"unreadable WARC: {type(exc).__name__}: {exc}")
        return
    if not records:
        yield BadRow(str(path), "no WARC records in the file")
