"""Bad records on every topic, fed through handle_batch (agents/workers.py) to the real stage that consumes that topic
(the tiny model, an in-memory pool, a real shard directory): each one becomes an output, a skip
(another config version) or a dead letter with a reason. No stage raises, none stalls."""

import logging

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from entropylong_streamer.agents.changelog_cache import ChangelogCache
from entropylong_streamer.agents.worker_loop import Message
from entropylong_streamer.agents.workers import handle_batch
from entropylong_streamer.method.anchors import AnchorParams
from entropylong_streamer.method.dependency import Criterion
from entropylong_streamer.method.near_dup import NearDuplicateRule
from entropylong_streamer.services.shards import ShardSet
from entropylong_streamer.services.transformers_engine import TransformersEngine
from entropylong_streamer.stages.entropy import EntropyStage
from entropylong_streamer.stages.pack import PackStage
from entropylong_streamer.stages.retrieve import Hit, RetrievalStage
from entropylong_streamer.stages.verify import VerifyStage
from entropylong_streamer.topics import (
    ANCHORS,
    CANDIDATES,
    DEAD_LETTER,
    DEPENDENCIES,
    DOCS,
    MEASUREMENTS,
    SCORES,
    SHARD_READY,
    Anchor,
    AnchorsRecord,
    Candidate,
    CandidatesRecord,
    Context,
    DependenciesRecord,
    Doc,
    LMCost,
    Pair,
    RecordError,
)

V = "v1"


class Embedder:
    def embed(self, texts):
        out = np.zeros((len(texts), 8), np.float32)
        for i, t in enumerate(texts):
            out[i, len(t) % 8] = 1.0
        return out


class Pool:
    needs_vectors = True

    def search(self, queries, vectors, k, exclude_doc_id):
        return [[Hit("c0", "other", "an unrelated chunk of text about rivers", 0.5)][:k] for _ in queries]


@pytest.fixture(scope="module")
def stages(model_cache, tmp_path_factory):
    engine = TransformersEngine("tiny", model_cache, max_tokens=256, batch_tokens=1024)
    shards = ShardSet(tmp_path_factory.mktemp("shards"), V)
    return {
        "docs": (DOCS, ANCHORS, EntropyStage(engine, AnchorParams(1.0, 2, 4, 2), 3, (0,), V, max_doc_tokens=200)),
        "anchors": (ANCHORS, CANDIDATES, RetrievalStage(Embedder(), Pool(), 2, NearDuplicateRule(), V, max_anchors=4)),
        "candidates": (CANDIDATES, DEPENDENCIES, VerifyStage(engine, Criterion(0.4), 32, (0,), V, max_anchors=4,
                                                             max_candidates=8)),
        "dependencies": (DEPENDENCIES, None, PackStage(shards, 512, (0,), 0, 1, 30.0, "t")),
    }


def valid(topic: str):
    anchors = AnchorsRecord(doc_id="d", text="ab cd ef", token_ids=[5, 6, 7], token_offsets=[(0, 2), (3, 5), (6, 8)],
                            config_version=V,
                            anchors=[Anchor(index=1, char_start=3, char_end=5, entropy=2.0, nll=2.0, query="cd")],
                            cost=LMCost(lm_tokens=4.0, flops=1e6, seconds=0.01))
    return {
        "docs": Doc(doc_id="d", text="a river otter"),
        "anchors": anchors,
        "candidates": CandidatesRecord(anchors=anchors, config_version=V, candidates=[
            Candidate(context_id="c", context_doc_id="o", text="an otter", score=1.0, anchor_indices=[1])]),
        "dependencies": DependenciesRecord(doc_id="d", text="ab", token_ids=[5, 6], config_version=V,
                                           contexts=[Context(context_id="c", context_doc_id="o", text="x",
                                                             token_ids=[9])],
                                           pairs=[Pair(context_id="c", anchor_index=1, char_start=0, char_end=1, h=2,
                                                       h_ctx=1, nll=2, nll_ctx=1, d_i=0.5, accepted=True)],
                                           costs={"verify": LMCost(lm_tokens=9.0, flops=1e7, seconds=0.02)}),
    }[topic]


JSONISH = st.recursive(st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.floats() | st.text(max_size=20)
                       | st.binary(max_size=20),
                       lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                     max_size=4), max_leaves=12)


@st.composite
def bad_bytes(draw, topic: str) -> bytes:
    """Bytes that no consumer may turn into a valid record of the topic."""
    data = valid(topic).model_dump(mode="python")
    kind = draw(st.sampled_from(["garbage", "not_a_map", "wrong_type", "missing", "schema", "bad_utf8", "extra"]))
    if kind == "garbage":
        raw = draw(st.binary(min_size=0, max_size=64))
        try:
            unpacked = msgpack.unpackb(raw, raw=False)
        except Exception:
            return raw
        return raw if not isinstance(unpacked, dict) else b"\xc1"
    if kind == "not_a_map":
        return msgpack.packb(draw(JSONISH.filter(lambda v: not isinstance(v, dict))), use_bin_type=True)
    # a field left at None has no wrong type to draw: any value of its model's is right
    key = draw(st.sampled_from(sorted(k for k in data if k != "schema_version" and data[k] is not None)))
    if kind == "wrong_type":  # (pydantic's lax mode rightly takes 1 for 1.0, b"x" for "x": not wrong types)
        old = data[key]
        lax = (int, float) if isinstance(old, (int, float)) else (str, bytes) if isinstance(old, (str, bytes)) else ()
        data[key] = draw(JSONISH.filter(lambda v: v is not None and type(v) is not type(old)
                                        and not isinstance(v, (bool, *lax))))
    elif kind == "missing":
        record = type(valid(topic))
        if not record.model_fields[key].is_required():  # where it came from, what it cost: optional
            key = "text" if "text" in data else "config_version"
        del data[key]
    elif kind == "schema":  # neither the record's version nor one it upgrades from
        known = {type(valid(topic)).SCHEMA_VERSION, *type(valid(topic)).UPGRADES_FROM}
        data["schema_version"] = draw(st.integers(-5, 1000).filter(lambda v: v not in known))
    elif kind == "bad_utf8":  # a str field holding bytes that are not UTF-8, sent as a raw msgpack str
        data["doc_id" if "doc_id" in data else "config_version"] = b"\xff\xfe"
        return msgpack.packb(data, use_bin_type=False)
    else:
        data[draw(st.text(min_size=1, max_size=8).filter(lambda k: k not in data))] = 1
    return msgpack.packb(data, use_bin_type=True)


def run(stages, topic: str, raw: bytes):
    in_spec, out_spec, stage = stages[topic]
    return handle_batch(stage.name, [Message(topic, 0, 7, b"k", raw)], in_spec, out_spec, stage.process, V)


TOPICS = ["docs", "anchors", "candidates", "dependencies"]


@pytest.mark.parametrize("topic", TOPICS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(data=st.data())
def test_undecodable_records_become_dead_letters(stages, topic, data):
    raw = data.draw(bad_bytes(topic))
    outs, dead = run(stages, topic, raw)
    assert not outs and len(dead) == 1
    letter = DEAD_LETTER.decode(dead[0].value)
    assert letter.reason.startswith("decode: ") and letter.payload == raw and letter.offset == 7


SPECS = {"docs": DOCS, "anchors": ANCHORS, "candidates": CANDIDATES, "dependencies": DEPENDENCIES}


@pytest.mark.parametrize("topic", TOPICS)
def test_a_valid_record_passes(stages, topic):
    outs, dead = run(stages, topic, SPECS[topic].encode(valid(topic)))
    assert not dead and (outs or topic == "dependencies")  # the packer buffers: no output record


def absurd(topic: str, kind: str):
    """Records that decode but make no sense: each must be refused with a reason, quickly."""
    base = valid("anchors")
    if topic == "docs":
        return {"huge": Doc(doc_id="d", text="word " * 400_000),  # 2 MB
                "binaryish": Doc(doc_id="d", text="\x00\x01\x02\ufffd" * 100),
                "one_token": Doc(doc_id="d", text="a")}[kind]
    if topic == "anchors":
        many = [Anchor(index=i % 3, char_start=0, char_end=1, entropy=1, nll=1, query="q") for i in range(100_000)]
        return {"beyond_doc": base.model_copy(update={"anchors": [base.anchors[0].model_copy(update={"index": 99})]}),
                "too_many": base.model_copy(update={"anchors": many}),
                "offsets_mismatch": base.model_copy(update={"token_offsets": [(0, 1)]})}[kind]
    if topic == "candidates":
        cand = valid("candidates")
        c0 = cand.candidates[0]
        not_an_anchor = [c0.model_copy(update={"anchor_indices": [2]})]
        return {"not_an_anchor": cand.model_copy(update={"candidates": not_an_anchor}),
                "too_many": cand.model_copy(update={"candidates": [c0] * 10_000}),
                "beyond_doc": cand.model_copy(update={"anchors": base.model_copy(update={"anchors": [
                    base.anchors[0].model_copy(update={"index": 50})]}), "candidates": [
                    c0.model_copy(update={"anchor_indices": [50]})]}),
                "token_beyond_vocab": cand.model_copy(update={"anchors": base.model_copy(
                    update={"token_ids": [5, 10**9, 7]})})}[kind]
    dep = valid("dependencies").model_copy(update={"doc_id": f"bad-{kind}"})  # not a duplicate of another test's
    return {"unknown_context": dep.model_copy(update={"contexts": []}),
            "negative_token": dep.model_copy(update={"token_ids": [-1, 5]}),
            "huge_token": dep.model_copy(update={"token_ids": [2**40]})}[kind]


ABSURD = [("docs", "huge"), ("docs", "binaryish"), ("docs", "one_token"), ("anchors", "beyond_doc"),
          ("anchors", "too_many"), ("anchors", "offsets_mismatch"), ("candidates", "not_an_anchor"),
          ("candidates", "too_many"), ("candidates", "beyond_doc"), ("candidates", "token_beyond_vocab"),
          ("dependencies", "unknown_context"), ("dependencies", "negative_token"), ("dependencies", "huge_token")]


@pytest.mark.parametrize(("topic", "kind"), ABSURD)
def test_records_that_decode_but_make_no_sense_are_refused_with_a_reason(stages, topic, kind):
    import time

    spec = SPECS[topic]
    t0 = time.perf_counter()
    try:
        raw = spec.encode(absurd(topic, kind))
    except (RecordError, ValueError):
        return  # the schema refuses to even build it
    outs, dead = run(stages, topic, raw)
    elapsed = time.perf_counter() - t0
    if topic == "docs" and kind == "binaryish":  # odd but valid text: scored like any other
        assert outs or dead
        return
    assert not outs and len(dead) == 1, (outs, dead)
    reason = DEAD_LETTER.decode(dead[0].value).reason
    assert not reason.startswith("error:"), reason  # a named rule, not an exception leaking through
    assert elapsed < 60, f"{topic}/{kind} took {elapsed:.0f} s"


@given(raw=st.binary(max_size=64))
@settings(max_examples=50, deadline=None)
def test_shard_ready_and_changelog_records_refuse_bad_bytes(raw):
    try:
        SHARD_READY.decode(raw)
    except RecordError:
        pass
    else:
        raise AssertionError("decoded garbage")
    for spec in (MEASUREMENTS, SCORES):
        cache = ChangelogCache.__new__(ChangelogCache)  # only _apply: no broker needed
        cache.spec, cache._to_value, cache.data = spec, (lambda m: (1,)), {}
        logging.getLogger("entropylong_streamer.agents.changelog_cache").disabled = True
        assert cache._apply(b"k", raw) in (0, 1)
