"""Bad files for ingest: whatever bytes a .jsonl, .parquet, WARC or text file holds, reading it never raises;
every line or file becomes a document with valid text or a bad row with a reason."""

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from entropylong_streamer.sources import BadRow, read_documents
from entropylong_streamer.topics import Doc

LINES = st.one_of(
    st.binary(max_size=80).map(lambda b: b.replace(b"\n", b" ").replace(b"\r", b" ")),  # invalid UTF-8 too
    st.builds(lambda t: json.dumps({"text": t}).encode(), st.text(max_size=40)),  # maybe blank, maybe surrogates
    st.builds(lambda v: json.dumps({"text": v}).encode(), st.one_of(st.integers(), st.none(), st.lists(st.booleans()))),
    st.just(b'{"url": "u"}'),  # no text
    st.just(b'["text"]'), st.just(b"3"),  # not an object
    st.integers(1000, 50_000).map(lambda n: b"[" * n + b"]" * n),  # nesting deeper than the parser's stack
    st.just(b'{"text": "\\ud800 lone surrogate"}'),
)


def check(items, path):
    for item in items:
        if isinstance(item, Doc):
            assert item.text.strip()
            item.text.encode("utf-8")  # valid text, nothing else reaches the docs topic
        else:
            assert isinstance(item, BadRow) and item.reason and str(path) in item.where


@given(lines=st.lists(LINES, min_size=1, max_size=12))
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_jsonl_reads_to_documents_or_bad_rows(tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("j") / "f.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    items = list(read_documents([path]))
    blank = [not line.decode("utf-8", "surrogateescape").strip() for line in lines]
    assert len(items) == blank.count(False)  # one per non-blank line
    check(items, path)


@given(raw=st.one_of(st.binary(max_size=300), st.builds(lambda b: b"WARC/1.0\r\n" + b, st.binary(max_size=300))),
       suffix=st.sampled_from([".parquet", ".txt", ".md", ".bin", ".warc", ".warc.gz", ".wet.gz"]))
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_other_file_reads_to_documents_or_bad_rows(tmp_path_factory, raw, suffix):
    path = tmp_path_factory.mktemp("f") / f"f{suffix}"
    path.write_bytes(raw)
    items = list(read_documents([path]))
    assert len(items) == 1 or suffix == ".parquet" or (suffix.startswith((".warc", ".wet")) and items)
    check(items, path)


def test_a_truncated_parquet_file_and_a_missing_file_are_bad_rows(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    good = tmp_path / "good.parquet"
    pq.write_table(pa.table({"text": ["a real document"] * 50, "url": ["u"] * 50}), good)
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    items = list(read_documents([cut, tmp_path / "absent.jsonl"]))
    assert [type(i) for i in items] == [BadRow, BadRow]
    assert "Parquet" in items[0].reason and items[1].reason == "no such file"
