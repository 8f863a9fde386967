import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from entropylong_streamer.topics import (
    ALL_TOPICS,
    ANCHORS,
    CANDIDATES,
    DEAD_LETTER,
    DEPENDENCIES,
    DOCS,
    DROPPED,
    MEASUREMENTS,
    MODEL_VERSIONS,
    SCORES,
    SHARD_READY,
    VERIFIED,
    Anchor,
    AnchorsRecord,
    Candidate,
    CandidatesRecord,
    Context,
    DeadLetter,
    DependenciesRecord,
    Doc,
    DroppedDoc,
    LMCost,
    Measured,
    ModelVersion,
    Pair,
    RecordError,
    Scored,
    ShardReady,
    VerifiedContext,
    VerifiedRecord,
)

ANCHORS_REC = AnchorsRecord(
    doc_id="d", text="hello world!", token_ids=[1, 2, 3], token_offsets=[(0, 5), (5, 11), (11, 12)],
    config_version="v1",
    anchors=[Anchor(index=1, char_start=5, char_end=11, entropy=2.0, nll=3.0, query="world"),
             Anchor(index=2, char_start=11, char_end=12, entropy=1.5, nll=3.0, query="", leader=1)],
)
EXAMPLES = {
    "docs": (DOCS, Doc(doc_id="d", text="hello", url="u")),
    "anchors": (ANCHORS, ANCHORS_REC),
    "candidates": (CANDIDATES, CandidatesRecord(anchors=ANCHORS_REC, config_version="v2", candidates=[
        Candidate(context_id="c:0", context_doc_id="c", text="ctx", score=0.5, anchor_indices=[1])])),
    "dependencies": (DEPENDENCIES, DependenciesRecord(
        doc_id="d", text="t u", token_ids=[1, 2], config_version="v3",
        contexts=[Context(context_id="c:0", context_doc_id="c", text="ctx", token_ids=[4])],
        pairs=[Pair(context_id="c:0", anchor_index=1, char_start=0, char_end=1, h=2.0, h_ctx=1.0, nll=3.0,
                    nll_ctx=1.0, d_i=0.5, accepted=True)])),
    "shard-ready": (SHARD_READY, ShardReady(shard_id="s", path="/p", config_version="v", sequences=1,
                                            samples=2, tokens=3)),
    "dead-letter": (DEAD_LETTER, DeadLetter(stage="x", reason="y", topic="t", payload=b"\xff")),
    "measurements": (MEASUREMENTS, Measured(h_ctx=1.5, nll_ctx=2.5)),
    "scores": (SCORES, Scored(h_f32=b"\x00\x00\xc0?", nll_f32=b"\x00\x00 @")),
    "model-versions": (MODEL_VERSIONS, ModelVersion(version="v000002-ab", path="/m/v2", base_model="smollm2",
                                                    config_version="v", step=8, shards_seen=2, last_shard="v/s1")),
    "dropped": (DROPPED, DroppedDoc(doc_id="d", url="u", source="f.jsonl:3", rule="near_duplicate",
                                    detail="estimated Jaccard 0.91", duplicate_of="e")),
    "verified": (VERIFIED, VerifiedRecord(doc_id="d", config_version="v3", token_ids=b"\x01\x00\x00\x00", contexts=[
        VerifiedContext(context_id="c:0", context_doc_id="c", token_ids=b"\x04\x00\x00\x00", score=0.5,
                        anchors=[0])])),
}


def test_every_topic_has_an_example():
    assert {t.name for t in ALL_TOPICS} == set(EXAMPLES)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_round_trip(name):
    spec, rec = EXAMPLES[name]
    assert spec.decode(spec.encode(rec)) == rec


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_unknown_schema_version_is_refused(name):
    spec, rec = EXAMPLES[name]
    data = rec.model_dump(mode="python")
    data["schema_version"] = 99
    with pytest.raises(RecordError, match="schema_version"):
        spec.decode(msgpack.packb(data, use_bin_type=True))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_crash_decoding(raw):
    for spec in ALL_TOPICS:
        try:
            spec.decode(raw)
        except RecordError:
            pass


def test_wrong_types_and_empty_text_are_refused_with_a_reason():
    with pytest.raises(RecordError, match="schema mismatch"):
        DOCS.decode(msgpack.packb({"schema_version": 1, "doc_id": 3, "text": "x"}))
    with pytest.raises(RecordError, match="empty text"):
        DOCS.decode(msgpack.packb({"schema_version": 1, "doc_id": "d", "text": "   "}))
    with pytest.raises(RecordError, match="empty record"):
        DOCS.decode(b"")


def test_a_follower_must_name_a_leading_anchor_of_its_record():
    data = ANCHORS_REC.model_dump()
    data["anchors"][1]["leader"] = 7  # no anchor 7
    with pytest.raises(RecordError, match="leader"):
        ANCHORS.decode(msgpack.packb(data, use_bin_type=True))
    data["anchors"][1]["leader"] = 2  # itself, a follower
    with pytest.raises(RecordError, match="leader"):
        ANCHORS.decode(msgpack.packb(data, use_bin_type=True))


def test_records_written_before_costs_were_recorded_are_read_without_them():
    """Anchors of schema 2 and dependencies of schema 1 (no cost fields) drain after an upgrade."""
    old = ANCHORS_REC.model_dump(mode="python", exclude={"cost"}) | {"schema_version": 2}
    rec = ANCHORS.decode(msgpack.packb(old, use_bin_type=True))
    assert rec == ANCHORS_REC and rec.cost is None and rec.schema_version == 4
    with_cost = ANCHORS_REC.model_copy(update={"cost": LMCost(lm_tokens=12.5, flops=3e9, seconds=0.25)})
    assert ANCHORS.decode(ANCHORS.encode(with_cost)).cost == with_cost.cost
    DEPS_REC = EXAMPLES["dependencies"][1]
    deps = DEPENDENCIES.decode(DEPENDENCIES.encode(DEPS_REC)).model_dump(mode="python", exclude={"costs"})
    rec = DEPENDENCIES.decode(msgpack.packb(deps | {"schema_version": 1}, use_bin_type=True))
    assert rec.costs == {} and rec.schema_version == DependenciesRecord.SCHEMA_VERSION and rec.pairs == DEPS_REC.pairs


def test_records_written_before_model_versions_read_as_measured_by_model_path():
    """Docs of schema 1, anchors of 3, dependencies of 2: no version fields, so the frozen model's."""
    doc = DOCS.decode(msgpack.packb({"schema_version": 1, "doc_id": "d", "text": "t"}, use_bin_type=True))
    assert doc.rescore == "" and doc.schema_version == 2
    old = ANCHORS_REC.model_dump(mode="python", exclude={"model_version"}) | {"schema_version": 3}
    assert ANCHORS.decode(msgpack.packb(old, use_bin_type=True)).model_version == ""
    deps = EXAMPLES["dependencies"][1].model_dump(mode="python", exclude={"model_versions"}) | {"schema_version": 2}
    rec = DEPENDENCIES.decode(msgpack.packb(deps, use_bin_type=True))
    assert rec.model_versions == {}
    scored_again = rec.model_copy(update={"model_versions": {"entropy": "v000004-ab", "verify": "v000004-ab"}})
    assert DEPENDENCIES.decode(DEPENDENCIES.encode(scored_again)).model_versions["entropy"] == "v000004-ab"


def test_an_anchors_record_of_schema_1_is_read_without_its_per_token_entropy():
    """Records the previous release wrote (entropy_f16, which nothing read) drain after an upgrade."""
    old = ANCHORS_REC.model_dump(mode="python", exclude={"cost"}) | {"schema_version": 1,
                                                                     "entropy_f16": b"\x00\x3c" * 3}
    rec = ANCHORS.decode(msgpack.packb(old, use_bin_type=True))
    assert rec == ANCHORS_REC and rec.schema_version == 4 and rec.cost is None
    assert len(ANCHORS.encode(ANCHORS_REC)) < len(msgpack.packb(old, use_bin_type=True))
    with pytest.raises(RecordError, match="unknown schema_version 5"):
        ANCHORS.decode(msgpack.packb(old | {"schema_version": 5}, use_bin_type=True))
    with pytest.raises(RecordError, match="unknown schema_version 0"):  # no other topic reads older records
        DOCS.decode(msgpack.packb({"schema_version": 0, "doc_id": "d", "text": "t"}, use_bin_type=True))
