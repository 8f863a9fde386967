import json

import pyarrow as pa
import pyarrow.parquet as pq

from entropylong_streamer.sources import BadRow, doc_id_for, read_documents


def test_jsonl_parquet_and_text_directories_with_reasons_for_bad_rows(tmp_path):
    (tmp_path / "a.jsonl").write_text("\n".join([
        json.dumps({"id": "x", "text": "first document", "url": "http://e/1"}),
        "{not json",
        json.dumps({"text": ""}),
        json.dumps({"text": 5}),
        json.dumps(["list"]),
        json.dumps({"id": "row-7", "title": "no text here"}),
    ]) + "\n")
    pq.write_table(pa.table({"id": ["p"], "text": ["parquet doc"], "url": ["u"]}), tmp_path / "b.parquet")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "c.txt").write_text("text file doc")
    (tmp_path / "dir" / "bin.txt").write_bytes(b"\xff\xfe\x00bad")
    (tmp_path / "dir" / "x.exe").write_bytes(b"MZ")
    items = list(read_documents([tmp_path / "a.jsonl", tmp_path / "b.parquet", tmp_path / "dir",
                                 tmp_path / "missing.jsonl"]))
    docs = [i for i in items if not isinstance(i, BadRow)]
    reasons = sorted(i.reason.split(":")[0] for i in items if isinstance(i, BadRow))
    assert [d.text for d in docs] == ["first document", "parquet doc", "text file doc"]
    assert docs[0].url == "http://e/1" and docs[0].doc_id == doc_id_for("first document")
    # the source's own ids travel with the documents (doc_id stays the content hash: dedup needs it)
    assert [(d.source_id, d.source) for d in docs] == [("x", f"{tmp_path / 'a.jsonl'}:1"),
                                                       ("p", f"{tmp_path / 'b.parquet'}#0"),
                                                       ("", str(tmp_path / "dir" / "c.txt"))]
    assert reasons == ["'text' is a number, not a string", "empty text", "file is not UTF-8 text", "invalid JSON",
                       "line is not a JSON object", "no such file", "no text", "unsupported file type .exe"]
    # a bad row keeps its own id, and says what is wrong in the file's terms
    missing = next(i for i in items if isinstance(i, BadRow) and i.reason.startswith("no text"))
    assert missing == BadRow(f"{tmp_path / 'a.jsonl'}:6", "no text: the row has no 'text' field, or it is null",
                             "row-7")


def test_doc_id_depends_on_the_text_only():
    assert doc_id_for("same text") == doc_id_for("same text\n") != doc_id_for("other text")
