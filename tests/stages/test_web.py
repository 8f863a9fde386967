"""WARC and WET files written here with warcio, from generated HTML pages, read back into documents."""

import io
import random

import pytest
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from bench.corpora.web_pages import pages_from_texts
from entropylong_streamer.sources import BadRow, doc_id_for, read_documents
from entropylong_streamer.topics import Doc

ARTICLES = [(f"Article {i}", "\n\n".join(
    f"Paragraph {j} of article {i} says something specific about topic {random.Random(i * 10 + j).randint(0, 10**6)} "
    "in several plain words so that an extractor keeps it as main content." for j in range(4))) for i in range(6)]


def write_warc(path, records, gzip=True):
    with open(path, "wb") as fh:
        w = WARCWriter(fh, gzip=gzip)
        for kind, url, payload, ctype, status in records:
            if kind == "response":
                http = StatusAndHeaders(status, [("Content-Type", ctype)], protocol="HTTP/1.1")
                rec = w.create_warc_record(url, "response", payload=io.BytesIO(payload), http_headers=http)
            else:
                rec = w.create_warc_record(url, kind, payload=io.BytesIO(payload), warc_content_type=ctype)
            w.write_record(rec)


@pytest.fixture
def crawl(tmp_path):
    pages = pages_from_texts(ARTICLES)
    records = [("request", p.url, b"GET / HTTP/1.1\r\n\r\n", "application/http; msgtype=request", None)
               for p in pages[:2]]
    records += [("response", p.url, p.html.encode("utf-8"), "text/html; charset=utf-8", "200 OK") for p in pages]
    records += [("response", "https://example.org/logo.png", b"\x89PNG....", "image/png", "200 OK"),
                ("response", "https://example.org/gone", b"<html><p>Gone</p></html>", "text/html", "404 Not Found"),
                ("response", "https://example.org/empty", b"<html><body></body></html>", "text/html", "200 OK"),
                ("metadata", "https://example.org/0", b"fetchTimeMs: 12", "application/warc-fields", None)]
    path = tmp_path / "crawl.warc.gz"
    write_warc(path, records)
    return path, pages


@pytest.mark.parametrize("extractor", ["trafilatura", "resiliparse"])
def test_html_responses_become_their_article_and_the_rest_a_reason(crawl, extractor):
    path, pages = crawl
    out = list(read_documents([path], html_extractor=extractor))
    docs = [d for d in out if isinstance(d, Doc)]
    bad = [b for b in out if isinstance(b, BadRow)]
    assert [d.url for d in docs] == [p.url for p in pages]
    for d, page in zip(docs, pages, strict=True):
        for paragraph in page.main_text.split("\n\n")[1:]:  # every paragraph of the article, whole
            assert paragraph in d.text
        assert "Cookie settings" not in d.text and "gtag" not in d.text  # footer and scripts are gone
        assert d.doc_id == doc_id_for(d.text) and d.source.startswith(f"{path}@")
    assert sorted(b.reason for b in bad) == ["HTTP status 404", "no main text in the HTML", "not HTML: image/png"]


def test_wet_conversions_are_taken_as_they_are(tmp_path):
    path = tmp_path / "crawl.warc.wet.gz"
    text = "A plain text conversion of a page.\nSecond line of it."
    write_warc(path, [("warcinfo", "", b"software: test", "application/warc-fields", None),
                      ("conversion", "https://example.org/t", text.encode(), "text/plain", None)])
    (doc,) = read_documents([path])
    assert doc.text == text and doc.url == "https://example.org/t"
    assert doc.source_id.startswith("<urn:uuid:")  # the record's WARC-Record-ID


def test_uncompressed_warc_and_a_declared_latin1_charset(tmp_path):
    path = tmp_path / "crawl.warc"
    body = ("<html><body><article><h1>Café</h1><p>" + "Déjà vu, naïve façade. " * 20 + "</p></article></body></html>")
    write_warc(path, [("response", "https://example.org/fr", body.encode("latin-1"), "text/html; charset=ISO-8859-1",
                       "200 OK")], gzip=False)
    (doc,) = read_documents([path], html_extractor="resiliparse")
    assert "Déjà vu, naïve façade." in doc.text


def test_a_truncated_archive_keeps_what_came_before_and_says_what_broke(crawl, tmp_path):
    path, pages = crawl
    cut = tmp_path / "cut.warc.gz"
    cut.write_bytes(path.read_bytes()[: len(path.read_bytes()) * 2 // 3])
    out = list(read_documents([cut], html_extractor="resiliparse"))
    assert isinstance(out[-1], BadRow) and "truncated record" in out[-1].reason
    assert 0 < sum(isinstance(d, Doc) for d in out) < len(pages)
