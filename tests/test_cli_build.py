"""`elong build`: batch mode from the command line, on the tiny model and an embedded milvus-lite file."""

import json
import re
import statistics

import pytest
from noise import EXACT_DI
from typer.testing import CliRunner

from entropylong_streamer.cli import app
from entropylong_streamer.demo_corpus import write_demo_corpus
from entropylong_streamer.logs import counted
from entropylong_streamer.services.shards import read_shard
from entropylong_streamer.sources import doc_id_for

FIELDS = {"doc_id", "source_id", "url", "source", "context_id", "context_doc_id", "anchor", "anchor_span", "H",
          "H_ctx", "NLL", "NLL_ctx", "dI", "accepted", "retrieved", "template", "round", "in_sample",
          "distance_from_context_end", "distance_from_context_start", "config_version", "word_span", "word_NLL",
          "word_NLL_ctx", "sample_doc_id", "depth", "context_source_id", "context_url"}


def test_build_writes_dependencies_with_anchor_spans_and_shards(tmp_path, model_cache):
    docs = tmp_path / "docs.jsonl"
    write_demo_corpus(docs, 4, min_chars=400, max_chars=900)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "models").symlink_to(model_cache, target_is_directory=True)
    sets = ["model.path='tiny'", f"data_dir='{tmp_path / 'data'}'", "entropy.alpha=1.0", "retrieval.top_k=2",
            "retrieval.chunk_tokens=32", "retrieval.chunk_overlap=4", "pack.seq_len=4096", "verify.epsilon=0.1",
            "verify.criterion='entropy'",
            "door.min_words=1", "door.max_mean_word_length=40.0", "door.max_duplicate_line_ratio=1.0"]
    args = ["build", "--docs", str(docs), "--corpus", str(docs), "--out", str(tmp_path / "out")]
    for s in sets:
        args += ["--set", s]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    texts = {json.loads(line)["text"] for line in docs.read_text().splitlines()}
    rows = [json.loads(line) for line in (tmp_path / "out" / "dependencies.jsonl").read_text().splitlines()]
    assert rows and all(set(r) == FIELDS for r in rows)
    by_doc = {doc_id_for(t): t for t in texts}
    lines = [json.loads(line) for line in docs.read_text().splitlines()]
    own_id = {doc_id_for(x["text"]): x["id"] for x in lines}
    assert all(r["source_id"] == own_id[r["doc_id"]] and r["source"].startswith(f"{docs}:") for r in rows)
    for r in rows:
        start, end = r["anchor_span"]
        assert 0 <= start < end <= len(by_doc[r["doc_id"]])
        assert r["context_doc_id"] != r["doc_id"] and r["context_id"].startswith(r["context_doc_id"])
        # the context's document named as the user's file names it, beside its hash
        assert (r["context_source_id"], r["context_url"]) == (own_id[r["context_doc_id"]],
                                                              f"pydoc:{own_id[r['context_doc_id']]}")
        # the row's own numbers: dI from the same fp32 H and H' (tests/noise.py EXACT_DI)
        assert abs(r["dI"] - (r["H"] - r["H_ctx"]) / r["H"]) < EXACT_DI and r["accepted"] == (r["dI"] > 0.1)
    shard_dirs = [p for p in (tmp_path / "out" / "shards").glob("*/shard-*") if p.is_dir()]
    packed = [d for s in shard_dirs for seq in read_shard(s) for d in seq["doc_ids"]]
    assert sorted(packed) == sorted(by_doc)
    named = {d: sid for s in shard_dirs for seq in read_shard(s) for d, sid in zip(seq["doc_ids"], seq["source_ids"],
                                                                                    strict=True)}
    assert named == {d: own_id[d] for d in by_doc}  # the trainer's shards name the user's documents
    placed = [r["distance_from_context_end"] for r in rows if r["in_sample"]]
    assert placed and all(d > 0 for d in placed)  # seq_len 4096 leaves room for every accepted context
    assert sum(r["accepted"] for r in rows) == len(placed)
    summary = " ".join(result.output.split())
    assert f"dependency distance (context end to anchor) median {statistics.median(placed):,.0f}" in summary
    # what the LM work cost per emitted token, by stage
    said = re.search(r"LM cost: ([\d.]+) LM tokens per emitted token \(entropy ([\d.]+), verify ([\d.]+); "
                     r"floor ([\d.]+): each distinct token", summary)
    # three figures printed to two decimals: their rounding adds up to 0.015 at most
    assert said and float(said[1]) == pytest.approx(float(said[2]) + float(said[3]), abs=0.0151) and float(said[3]) > 0
    assert 0 < float(said[4]) <= 1 and float(said[1]) >= float(said[4])  # a cold run costs at least its floor

    # The same build into the same --out: nothing packed twice, and the summary says where the set stands
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    said = " ".join(again.output.split())
    assert "-> 0 new shards (0 samples)" in said
    assert f"{counted(len(shard_dirs), 'shard')}, {len(by_doc)} samples;" in said
    assert f"{len(by_doc)} of these documents were in it already" in said
    assert "LM cost: nothing run, every measurement read from the cache (entropy 4 documents" in said
    assert [json.loads(line) for line in (tmp_path / "out" / "dependencies.jsonl").read_text().splitlines()] == rows

    # `elong report` over the build's output, with no --set: the build's own configuration (its folder keeps
    # it) finds the shard set; every record matched to its sample, a report written
    kept = json.loads((tmp_path / "out" / "config.json").read_text())
    assert kept["model"]["path"] == "tiny" and kept["verify"]["criterion"] == "entropy"
    report = CliRunner().invoke(app, ["report", "--batch", str(tmp_path / "out"), "--max-docs", "2"])
    assert report.exit_code == 0, report.output
    said = " ".join(report.output.split())
    assert f"configuration: the build's, {tmp_path / 'out' / 'config.json'}" in said
    written = json.loads((tmp_path / "out" / "report" / "report.json").read_text())
    own = [r for r in rows if r["depth"] == 1]  # every measured pair once; pack.depth 2 adds its samples' deeper edges
    assert written["inputs"]["matched"] == len(by_doc) and written["dependencies"]["pairs"] == len(own) < len(rows)
    assert "data quality" in report.output

    # Two more documents, built into the same --out with no --set: the build's configuration again, the same
    # shard set grows, and the report speaks of the whole set (every build's documents), as it says
    more = tmp_path / "more.jsonl"
    write_demo_corpus(more, 6, min_chars=400, max_chars=900)
    more.write_text("".join(more.read_text().splitlines(keepends=True)[4:]))
    grown = CliRunner().invoke(app, ["build", "--docs", str(more), "--corpus", str(docs),
                                     "--out", str(tmp_path / "out")])
    assert grown.exit_code == 0, grown.output
    assert "configuration: the build's" in " ".join(grown.output.split())
    added = {doc_id_for(json.loads(line)["text"]) for line in more.read_text().splitlines()}
    assert len(added) == 2 and not added & set(by_doc)
    report = CliRunner().invoke(app, ["report", "--batch", str(tmp_path / "out"), "--max-docs", "2"])
    assert report.exit_code == 0, report.output
    written = json.loads((tmp_path / "out" / "report" / "report.json").read_text())
    assert written["inputs"]["matched"] == written["scope"]["samples"] == len(by_doc) + 2
    assert f"{len(by_doc) + 2} samples; {len(by_doc) + 2} of them measured here" in " ".join(report.output.split())

    # A build's replay: its last inputs built again under its configuration with the change on top; the
    # changed stages say so, a new shard set grows beside the old, the measurements come from the caches
    same = CliRunner().invoke(app, ["replay", "--batch", str(tmp_path / "out")])
    assert same.exit_code == 0 and "no stage's version changes" in same.output
    offset = CliRunner().invoke(app, ["replay", "--batch", str(tmp_path / "out"), "--from-offset", "3"])
    assert offset.exit_code == 2 and "replay a running stack's topics" in " ".join(offset.output.split())
    replay = CliRunner().invoke(app, ["replay", "--batch", str(tmp_path / "out"), "--set", "verify.epsilon=0.2"])
    assert replay.exit_code == 0, replay.output
    said = " ".join(replay.output.split())
    assert said.count("configuration: the build's") == 1  # the change's, not the old one's too
    assert "verify, pack change" in said and str(more) in said and "nothing run, every measurement read" in said
    assert len(list((tmp_path / "out" / "shards").glob("*/manifest.jsonl"))) == 2


def test_report_without_a_build_says_what_is_missing(tmp_path):
    result = CliRunner().invoke(app, ["report", "--batch", str(tmp_path), "--set", f"data_dir='{tmp_path}'"])
    assert result.exit_code == 1 and "not found: build with" in result.output.replace("\n", " ")


def test_a_bad_configuration_value_is_refused_with_the_field_named(tmp_path):
    result = CliRunner().invoke(app, ["build", "--docs", "x", "--out", str(tmp_path), "--set", "verify.epsilon=oops"])
    assert result.exit_code == 2 and "epsilon" in result.output


def test_missing_inputs_an_out_file_and_a_bad_model_path_are_refused_before_any_model_loads(tmp_path):
    (tmp_path / "file").write_text("x")
    result = CliRunner().invoke(app, ["build", "--docs", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "file"),
                                      "--set", f"data_dir='{tmp_path / 'data'}'", "--set", "model.path='/no/model'"])
    assert result.exit_code == 2
    out = " ".join(result.output.split())
    assert "nope.jsonl: no such file or directory" in out and "is a file, not a directory" in out
    assert "model.path: model spec '/no/model'" in out and "Traceback" not in result.output
    assert not (tmp_path / "data").exists()  # nothing was loaded or converted


def test_a_model_path_that_is_a_directory_without_a_model_is_refused_in_one_line(tmp_path):
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    (empty / "config.json").write_text("{}")
    docs = tmp_path / "docs.jsonl"
    docs.write_text('{"text": "a document"}\n')
    for args in (["build", "--docs", str(docs), "--out", str(tmp_path / "out")], ["worker", "entropy"],
                 ["report", "--batch", str(tmp_path / "out")]):
        result = CliRunner().invoke(app, [*args, "--set", f"data_dir='{tmp_path / 'data'}'",
                                          "--set", f"model.path='{empty}'"])
        out = " ".join(result.output.split())
        assert result.exit_code == 2, (args, result.output)
        assert f"{empty} is a directory but not a Hugging Face model: it has no config.json with a model_type, " \
               "no *.safetensors weights, no tokenizer.json or tokenizer_config.json" in out, out
        assert "Traceback" not in result.output and len(result.output.splitlines()) <= 10  # two lines, long paths


def test_a_build_that_reads_no_usable_document_exits_non_zero_with_the_reasons(tmp_path):
    docs = tmp_path / "docs.jsonl"
    docs.write_text('{"id": 1}\nnot json\n')
    result = CliRunner().invoke(app, ["build", "--docs", str(docs), "--out", str(tmp_path / "out"),
                                      "--set", f"data_dir='{tmp_path / 'data'}'", "--set", "model.path='tiny'"])
    assert result.exit_code == 1
    out = " ".join(result.output.split())
    assert "dead letters: 2" in out and "no usable document was read: every row of the 1 file was turned away" in out
    assert "dependencies.jsonl" not in out and "new shard" not in out  # what was not written is not named
    rows = [json.loads(line) for line in (tmp_path / "out" / "dead-letter.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(r["stage"] == "ingest" for r in rows)
    assert (rows[0]["source_id"], rows[0]["reason"]) == ("1", "no text: the row has no 'text' field, or it is null")
    assert not (tmp_path / "data" / "models").exists()  # no model was loaded
    listed = CliRunner().invoke(app, ["dead-letters", "--batch", str(tmp_path / "out")])
    table = " ".join(listed.output.split())
    assert listed.exit_code == 0 and "2 dead letters" in table and "ingest" in table, listed.output
    again = CliRunner().invoke(app, ["dead-letters", "--batch", str(tmp_path / "out"), "--redrive"])
    assert again.exit_code == 1 and "running the build again" in " ".join(again.output.split())


def test_an_empty_file_or_folder_says_why_nothing_was_built(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty.jsonl").write_text("")
    for docs, why in ((tmp_path / "empty", "--docs names no file (an empty directory?)"),
                      (tmp_path / "empty.jsonl", "no document in the 1 file read (empty?)")):
        result = CliRunner().invoke(app, ["build", "--docs", str(docs), "--out", str(tmp_path / "out"),
                                          "--set", f"data_dir='{tmp_path / 'data'}'", "--set", "model.path='tiny'"])
        out = " ".join(result.output.split())
        assert result.exit_code == 1 and f"no usable document was read: {why}; nothing was built" in out, out
        assert "dependencies.jsonl" not in out and "shards" not in out


def test_help_answers_to_h_and_the_version_is_printed():
    assert CliRunner().invoke(app, ["-h"]).exit_code == 0
    build_help = " ".join(CliRunner().invoke(app, ["build", "-h"]).output.split())
    assert "output directory" in build_help and "retrieval pool" in build_help
    assert "repeat --docs for several" in build_help and "LIST" not in build_help
    for command in ("build", "status", "replay", "ingest", "up", "report"):
        shown = CliRunner().invoke(app, [command, "-h"], env={"COLUMNS": "120"}).output
        assert "<bool>" not in shown and "<list[str]>" not in shown and "KEY=VALUE" in shown, command
    assert "produced" not in CliRunner().invoke(app, ["status", "-h"]).output
    up_help = " ".join(CliRunner().invoke(app, ["up", "-h"]).output.split())
    assert "--detach start everything" in up_help  # a flag shows no value placeholder
    worker_help = " ".join(CliRunner().invoke(app, ["worker", "--help"]).output.split())
    assert "entropy, index, retrieval, verify, pack or trainer" in worker_help
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and "entropylong-streamer" in result.output


def test_commands_that_need_the_stack_say_in_one_line_that_no_broker_answers(tmp_path):
    from entropylong_streamer.services.processes import free_port

    docs = tmp_path / "docs.jsonl"
    docs.write_text('{"id": "a", "text": "some words to ingest here"}\n')
    nowhere = ["--set", f"kafka.bootstrap_servers='127.0.0.1:{free_port()}'", "--set", f"data_dir='{tmp_path}'"]
    commands = (["status", "--interval", "0"], ["ingest", str(docs)], ["report"],
                ["replay", "--set", "verify.epsilon=0.3"], ["dead-letters"])
    for args in commands:
        result = CliRunner().invoke(app, [*args, *nowhere])
        out = " ".join(result.output.split())
        assert result.exit_code == 1, (args, result.output)
        assert "no Kafka broker answers at 127.0.0.1:" in out and "elong up --detach" in out, (args, out)
        assert "Traceback" not in result.output and len(result.output.splitlines()) <= 6  # two lines, wrapped at 80
