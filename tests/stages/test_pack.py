"""Packer: samples, dedup, atomic shards readable with StreamingDataset, orphans after a crash."""

import json

import pytest

from entropylong_streamer.method.packing import Sequence
from entropylong_streamer.method.samples import Sample
from entropylong_streamer.services.shards import ShardSet, read_shard
from entropylong_streamer.stages.pack import PackStage
from entropylong_streamer.topics import Context, DependenciesRecord, Pair

SEP = 0


def deps(doc_id, n_tokens, accepted=True):
    ctx = Context(context_id=f"{doc_id}-c", context_doc_id="other", text="c", token_ids=[7, 8, 9])
    pair = Pair(context_id=ctx.context_id, anchor_index=1, char_start=0, char_end=1, h=2.0, h_ctx=0.5, nll=2.0,
                nll_ctx=0.5, d_i=0.75, accepted=accepted)
    return DependenciesRecord(doc_id=doc_id, text="t", token_ids=list(range(1, n_tokens + 1)), contexts=[ctx],
                              pairs=[pair], config_version="v")


def stage(tmp_path, seq_len=64, per_shard=2):
    return PackStage(ShardSet(tmp_path, "v1"), seq_len, (SEP,), seed=0, sequences_per_shard=per_shard,
                     max_wait_s=60, domain="test")


@pytest.mark.parametrize("n_docs,seq_len", [(1, 64), (7, 64), (20, 128)])
def test_shards_hold_every_sample_whole_once(tmp_path, n_docs, seq_len):
    p = stage(tmp_path, seq_len)
    p.process([deps(f"d{i}", 5 + 3 * i % 40, accepted=i % 2 == 0) for i in range(n_docs)])
    ready = p.flush()
    assert ready.samples == n_docs
    seen = {}
    for seq in read_shard(ready.path):
        ids = seq["input_ids"].tolist()
        assert seq["input_ids"].dtype.name == "uint32" and seq["length"] == len(ids) <= seq_len
        for doc_id, (s, e) in zip(seq["doc_ids"], seq["indices"].reshape(-1, 2), strict=True):
            seen[doc_id] = ids[s:e]
    assert set(seen) == {f"d{i}" for i in range(n_docs)}
    for i in range(n_docs):
        sample = seen[f"d{i}"]
        doc = list(range(1, 5 + 3 * i % 40 + 1))
        assert sample[0] == SEP and sample[-len(doc) - 1:] == [SEP, *doc]
        assert (sample[:4] == [SEP, 7, 8, 9]) == (i % 2 == 0)  # only accepted contexts are trained
    report = p.shards.entries[-1]
    contexts = (n_docs + 1) // 2
    assert report["fill_ratio"] == pytest.approx(ready.tokens / (ready.sequences * seq_len))
    assert report["samples_per_sequence"] == pytest.approx(n_docs / ready.sequences)
    assert report["contexts_per_sequence"] == pytest.approx(contexts / ready.sequences)
    assert report["mean_context_di"] == pytest.approx(0.75)


def test_a_document_already_in_the_shard_set_is_not_packed_again(tmp_path):
    p = stage(tmp_path)
    p.process([deps("a", 5)])
    p.flush()
    p2 = stage(tmp_path)  # a restarted packer
    p2.process([deps("a", 5), deps("b", 5), deps("b", 5)])
    assert p2.flush().samples == 1 and p2.stats["duplicates_skipped"] == 2


def test_a_shard_without_a_manifest_line_is_an_orphan_removed_on_restart(tmp_path):
    p = stage(tmp_path)
    p.process([deps("a", 5)])
    p.flush()
    manifest = tmp_path / "v1" / "manifest.jsonl"
    entry = json.loads(manifest.read_text())
    (tmp_path / "v1" / "shard-000001").mkdir()  # renamed into place, then the process died
    manifest.write_text(manifest.read_text() + '{"shard_id": "shard-0000')  # torn append
    # every reader (status, report, the packer) sees the durable shard alone, before any repair
    from entropylong_streamer.quality.report import read_shard_set
    from entropylong_streamer.services.shards import read_manifest

    assert read_manifest(tmp_path / "v1") == read_shard_set(tmp_path / "v1").manifest == [entry]
    again = ShardSet(tmp_path, "v1")
    assert [e["shard_id"] for e in again.entries] == [entry["shard_id"]]
    assert not (tmp_path / "v1" / "shard-000001").exists()
    assert again.next_shard_id() == "shard-000001"


def test_a_document_longer_than_a_sequence_is_rejected_with_a_reason(tmp_path):
    p = stage(tmp_path, seq_len=16)
    res = p.process([deps("big", 40)])
    assert res.rejects and res.rejects[0].reason.startswith("pack: too_long")


def test_streaming_dataset_reads_what_read_shard_reads_and_read_shard_holds_no_descriptors(tmp_path):
    import os

    from entropylong_streamer.services.shards import import_streaming

    p = stage(tmp_path, 128)
    p.process([deps(f"d{i}", 5 + i, accepted=True) for i in range(9)])
    ready = p.flush()
    ours = read_shard(ready.path)
    ds = import_streaming().StreamingDataset(local=str(ready.path), shuffle=False, batch_size=1)  # as ProLong
    theirs = [ds[i] for i in range(len(ds))]
    assert len(ours) == len(theirs) == ready.sequences
    for a, b in zip(ours, theirs, strict=True):
        assert a["doc_ids"] == b["doc_ids"] and a["length"] == b["length"] and a["domain"] == b["domain"]
        assert a["input_ids"].tolist() == b["input_ids"].tolist() and a["indices"].tolist() == b["indices"].tolist()
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(20):  # a rolling trainer reads shard after shard for days
        read_shard(ready.path)
    assert len(os.listdir("/proc/self/fd")) == before


def test_shards_say_where_each_dependency_is_and_samples_stop_at_sample_tokens(tmp_path):
    p = PackStage(ShardSet(tmp_path, "v1"), 64, (SEP,), seed=0, sequences_per_shard=2, max_wait_s=60,
                  domain="test", sample_tokens=12)
    rec = deps("a", 5)
    second = Context(context_id="a-d", context_doc_id="another", text="d", token_ids=[4] * 6)
    rec = rec.model_copy(update={"contexts": [*rec.contexts, second], "pairs": [
        *rec.pairs, rec.pairs[0].model_copy(update={"context_id": "a-d", "anchor_index": 3, "d_i": 0.5})]})
    p.process([rec, deps("b", 5)])
    # a: [SEP 7 8 9] [SEP 1..5] = 10 tokens; the 6-token context would make 17 > 12
    assert p.stats["contexts_left_out"] == 1 and p.stats["contexts_packed"] == 2
    ready = p.flush()
    rows = [(seq["input_ids"].tolist(), seq["dependencies"]) for seq in read_shard(ready.path)]
    found = 0
    for ids, deps_of_seq in rows:
        for anchor, start, end in deps_of_seq:
            assert ids[start:end] == [7, 8, 9] and ids[anchor] == 2  # token 1 of the document (1..5)
            found += 1
    assert found == 2
    entry = p.shards.entries[-1]
    assert entry["sample_tokens"]["max"] == 10 and entry["dependency_distance"]["median"] == 2
    assert entry["sample_lengths"] == [10, 10] and entry["dependency_distances"] == [2, 2]


def test_the_shard_set_opens_as_one_dataset_while_it_grows(tmp_path):
    from entropylong_streamer.services.shards import import_streaming

    streaming = import_streaming()
    p = stage(tmp_path, 128)
    seen = []
    for wave in range(2):
        p.process([deps(f"w{wave}d{i}", 5 + i) for i in range(4)])
        p.flush()
        ds = streaming.StreamingDataset(local=str(p.shards.dir), shuffle=False, batch_size=1)  # as ProLong
        seen.append(sorted(d for i in range(len(ds)) for d in ds[i]["doc_ids"]))
    assert seen[0] == [f"w0d{i}" for i in range(4)]
    assert seen[1] == sorted([f"w0d{i}" for i in range(4)] + [f"w1d{i}" for i in range(4)])
    again = ShardSet(tmp_path, "v1")  # reopened: the root index is rewritten over the durable shards only
    assert len(json.loads((again.dir / "index.json").read_text())["shards"]) == len(again.entries)


def test_each_shard_adds_only_its_own_index_to_the_root_index(tmp_path, make_shards, monkeypatch):
    """A long-running packer writes thousands of shards: the root index reads the new shard's index.json
    alone, never the set's again, and stays what mosaicml-streaming's merge of every shard would be."""
    from pathlib import Path

    make_shards(tmp_path, 3)
    shards = ShardSet(tmp_path, "v")
    reads: list[str] = []
    text = Path.read_text

    def counted(path, *args, **kwargs):
        if path.name == "index.json":
            reads.append(path.parent.name)
        return text(path, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", counted)
    for n in range(3, 6):
        reads.clear()
        seq = Sequence(64)
        seq.samples.append(Sample(f"new{n}", (0, 5, 6, 7), ()))
        seq.used = 4
        entry = shards.write([seq], "test")
        assert reads == [entry["shard_id"]] == [f"shard-{n:06d}"]
    monkeypatch.undo()
    merged = json.loads((shards.dir / "index.json").read_text())["shards"]
    own = [i for e in shards.entries for i in json.loads((Path(e["path"]) / "index.json").read_text())["shards"]]
    assert [m["raw_data"]["basename"] for m in merged] == [
        f"{e['shard_id']}/{i['raw_data']['basename']}" for e in shards.entries
        for i in json.loads((Path(e["path"]) / "index.json").read_text())["shards"]]
    assert len(merged) == len(own) and [m["samples"] for m in merged] == [i["samples"] for i in own]


def test_a_document_sent_again_for_a_newer_model_version_is_a_new_sample_and_its_text_is_kept(tmp_path):
    """policy.rescore_last_shards: a document the trainer sent back for version V packs again, once per V;
    the same document scored by another version without being asked (a batch that came again after its
    worker moved on) is a duplicate. Each shard keeps its samples' documents for that rescoring."""
    from entropylong_streamer.policy import rescore_documents
    from entropylong_streamer.services.shards import read_documents

    def by(version, doc_id="d1", rescore=""):
        rec = deps(doc_id, 9).model_copy(update={"text": f"text of {doc_id}", "url": f"https://x/{doc_id}",
                                                 "rescore": rescore})
        return rec.model_copy(update={"model_versions": {"entropy": version, "verify": version}} if version else {})

    p = stage(tmp_path)
    p.process([by(""), by("", "d2")])
    p.flush()
    p.process([by(""), by("v000001-aa"), by("v000002-ab", rescore="v000002-ab"),
               by("v000003-ab", rescore="v000002-ab")])  # the base again, a replay under v1; v2's rescoring twice
    assert p.stats["duplicates_skipped"] == 3 and list(p.buffer) == ["d1@v000002-ab"]
    p.flush()
    reopened = stage(tmp_path)
    reopened.process([by("v000002-ab", rescore="v000002-ab"), by("v000004-cd", rescore="v000004-cd")])
    assert list(reopened.buffer) == ["d1@v000004-cd"]  # the manifest remembers what was packed for whom
    first, second = reopened.shards.entries
    assert "rescores" not in first and second["doc_ids"] == ["d1"] and second["rescores"] == ["v000002-ab"]
    assert read_documents(first["path"]) == [
        {"doc_id": "d1", "text": "text of d1", "url": "https://x/d1", "source": "", "source_id": ""},
        {"doc_id": "d2", "text": "text of d2", "url": "https://x/d2", "source": "", "source_id": ""}]
    docs, missing = rescore_documents([first["path"], second["path"]], "v000004-cd")
    assert [(d.doc_id, d.text, d.rescore) for d in docs] == [("d1", "text of d1", "v000004-cd"),
                                                              ("d2", "text of d2", "v000004-cd")]
    assert missing == 0


def chain(doc_id, tokens, context_doc, window, anchors):
    """A record whose one verified context is `window` of context_doc, resolving `anchors`."""
    ctx = Context(context_id=context_doc, context_doc_id=context_doc, text="w", token_ids=list(window))
    pairs = [Pair(context_id=context_doc, anchor_index=a, char_start=0, char_end=1, h=2.0, h_ctx=0.5, nll=2.0,
                  nll_ctx=0.5, d_i=0.75, accepted=True) for a in anchors]
    return DependenciesRecord(doc_id=doc_id, text="t", token_ids=list(tokens), contexts=[ctx], pairs=pairs,
                              config_version="v")


def test_depth_two_puts_a_contexts_own_context_before_it_from_what_any_earlier_batch_made_known(tmp_path):
    a, b, c = range(100, 140), range(200, 230), range(300, 320)
    # D rests on b[5:15]; b, packed earlier by a packer since restarted, rests on c[0:8] at b's token 9
    first = PackStage(ShardSet(tmp_path, "v1"), 256, (SEP,), 0, 1, 60, "test", depth=2)
    first.process([chain("b", b, "c", c[0:8], [9]), chain("a", a, "c", c[0:4], [1])])
    first.flush()
    restarted = PackStage(ShardSet(tmp_path, "v1"), 256, (SEP,), 0, 1, 60, "test", depth=2)
    restarted.process([chain("d", range(1, 9), "b", b[5:15], [3])])
    ready = restarted.flush()
    (seq,) = read_shard(ready.path)
    ids = seq["input_ids"].tolist()
    assert ids == [SEP, *c[0:8], SEP, *b[5:15], SEP, *range(1, 9)]
    assert seq["contexts"] == [["c", 1, 9, 2], ["b", 10, 20, 1]]
    deps_by_depth = dict(zip(seq["dependency_depths"], seq["dependencies"], strict=True))
    assert deps_by_depth[2] == [10 + 4, 1, 9] and ids[10 + 4] == b[9]  # b's token 9, resolved by c
    assert deps_by_depth[1] == [21 + 3, 10, 20]
    flat = PackStage(ShardSet(tmp_path / "flat", "v1"), 256, (SEP,), 0, 1, 60, "test")
    flat.process([chain("d", range(1, 9), "b", b[5:15], [3])])
    assert read_shard(flat.flush().path)[0]["input_ids"].tolist() == ids[9:]
