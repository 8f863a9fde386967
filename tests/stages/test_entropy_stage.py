"""The entropy stage on the tiny model: a batch gives what documents scored alone give."""

import numpy as np
import pytest
from noise import TINY_DTYPE, assert_exact

from entropylong_streamer.measurements import MemoryCache, scores_key, token_digest, unpack_scores
from entropylong_streamer.method.anchors import AnchorParams, is_layout, threshold
from entropylong_streamer.services.transformers_engine import TransformersEngine
from entropylong_streamer.stages.entropy import EntropyStage
from entropylong_streamer.topics import Doc

TEXTS = [
    "The river Ouse floods the meadows near York in most winters, and the city keeps its barriers ready.",
    "Kafka partitions a topic; each consumer of a group reads some partitions and commits offsets.",
    "zq 81 kk pp ! lorem 0x3f otters do not file tax returns in March, said nobody at all, ever.",
    "Short one.",
]


@pytest.fixture(scope="module")
def engine(model_cache):
    return TransformersEngine("tiny", model_cache, max_tokens=4096, batch_tokens=1024, dtype=TINY_DTYPE)


def entropy_array(stage: EntropyStage, rec) -> np.ndarray:
    """A record's per-token entropy, as its stage keeps it (fp32, in the scores cache)."""
    return unpack_scores(stage.cache.get(scores_key(stage.model_key, rec.doc_id, token_digest(rec.token_ids))))[0]


def make_stage(engine, **kw):
    return EntropyStage(engine, AnchorParams(alpha=0.5, min_position=2, max_anchors=4, merge_distance=2),
                        window=3, separator=(0,), config_version="v1", **{"cache": MemoryCache(), **kw})


def docs(texts):
    return [Doc(doc_id=f"d{i}", text=t, source="test") for i, t in enumerate(texts)]


def test_a_batch_equals_each_document_alone(engine):
    stage = make_stage(engine)
    together = stage.process(docs(TEXTS)).outputs
    alone_stages = [make_stage(engine) for _ in TEXTS]
    alone = [s.process([d]).outputs[0] for s, d in zip(alone_stages, docs(TEXTS), strict=True)]
    assert [r.doc_id for r in together] == [r.doc_id for r in alone]
    for a, b, by in zip(together, alone, alone_stages, strict=True):
        assert_exact(entropy_array(stage, a), entropy_array(by, b))
        assert [x.index for x in a.anchors] == [x.index for x in b.anchors]
    assert stage.stats["lm_tokens"] == sum(len(r.token_ids) for r in together)


def test_record_carries_entropy_of_every_token_and_anchors_above_tau(engine):
    stage = make_stage(engine)
    rec = stage.process(docs(TEXTS[:1])).outputs[0]
    h = entropy_array(stage, rec)
    assert h.shape == (len(rec.token_ids),)
    tau = threshold(h[2:], 0.5)
    assert rec.anchors and all(a.index >= 2 and h[a.index] > tau - 1e-2 for a in rec.anchors)
    leaders = [a for a in rec.anchors if a.leader is None]
    for a in leaders:  # the query window is the decoded tokens around the anchor
        assert a.query == engine.decode(rec.token_ids[max(0, a.index - 3) : a.index + 4])
        assert rec.text[a.char_start : a.char_end].strip() in a.query
    for a in rec.anchors:  # a follower has no query of its own: it shares a nearby leader's
        if a.leader is not None:
            assert a.query == "" and abs(a.leader - a.index) < 2 and a.leader in {x.index for x in leaders}


def test_every_anchor_above_tau_is_kept_and_the_cap_is_counted(engine):
    def stage(cap):
        return EntropyStage(engine, AnchorParams(alpha=0.0, min_position=2, max_anchors=cap, merge_distance=16),
                            window=3, separator=(0,), config_version="v", cache=MemoryCache())

    full = stage(512)
    (rec,) = full.process(docs(TEXTS[:1])).outputs
    h = entropy_array(full, rec)
    layout = [is_layout(rec.text[a:b]) for a, b in rec.token_offsets]
    above = [t for t in range(2, len(h)) if h[t] > threshold(h[2:], 0.0) + 1e-2 and not layout[t]]
    assert set(above) <= {a.index for a in rec.anchors}  # merging shares queries, never drops an anchor
    assert sum(a.leader is None for a in rec.anchors) < len(rec.anchors)
    assert full.stats["anchors_capped"] == 0
    capped = stage(3)
    (few,) = capped.process(docs(TEXTS[:1])).outputs
    assert len(few.anchors) == 3 and capped.stats["docs_capped"] == 1
    assert capped.stats["anchors_capped"] == len(rec.anchors) - 3


def test_a_text_separator_scores_the_document_after_all_its_tokens(engine):
    sep = (198, 198)
    stage = EntropyStage(engine, AnchorParams(alpha=0.5, min_position=2), window=3, separator=sep,
                         config_version="v", cache=MemoryCache())
    (rec,) = stage.process(docs(TEXTS[:1])).outputs
    h, _ = engine.score([*sep, *rec.token_ids])
    assert_exact(entropy_array(stage, rec), h[1:])  # position k - 1 + t predicts token t


def test_long_documents_use_windows_and_oversized_ones_are_refused(model_cache):
    small = TransformersEngine("tiny", model_cache, max_tokens=32, overlap=8, dtype=TINY_DTYPE)
    long_text = " ".join(TEXTS[:3]) * 3
    stage = make_stage(small, max_doc_tokens=400)
    result = stage.process(docs([long_text, long_text * 4, "x"]))
    (rec,) = result.outputs
    assert len(rec.token_ids) > 32 and entropy_array(stage, rec).shape == (len(rec.token_ids),)
    reasons = sorted(r.reason.split(":")[1].strip() for r in result.rejects)
    assert reasons == ["too_long", "too_short"]
    assert stage.stats["dropped_too_long"] == 1 and stage.stats["forwarded"] == 1


def test_a_new_alpha_reselects_anchors_from_cached_scores_without_lm_work(engine, tmp_path):
    from entropylong_streamer.measurements import MemoryCache

    cache = MemoryCache()
    first = make_stage(engine, cache=cache)
    first.process(docs(TEXTS))
    assert first.stats["docs_scored"] == 4 and first.stats["lm_tokens"] > 0
    uncached = make_stage(engine)
    charged = [r.cost for r in uncached.process(docs(TEXTS)).outputs]
    assert sum(c.lm_tokens for c in charged) == pytest.approx(uncached.stats["lm_tokens"])
    assert all(c.lm_tokens > 0 and c.flops > 0 and c.reused == 0 for c in charged)
    cache.save(tmp_path / "scores.msgpack")

    def stage(**kw):
        return EntropyStage(engine, AnchorParams(alpha=-0.5, min_position=1, max_anchors=6, merge_distance=1),
                            window=5, separator=(0,), config_version="v2", **kw)

    replay = stage(cache=MemoryCache.load(tmp_path / "scores.msgpack"))
    again = replay.process(docs(TEXTS)).outputs
    assert replay.stats["lm_tokens"] == 0 and replay.stats["docs_cached"] == 4
    fresh = stage().process(docs(TEXTS)).outputs
    measured = [r.model_dump(exclude={"cost"}) for r in fresh]
    assert [r.model_dump(exclude={"cost"}) for r in again] == measured  # exact, fp32 in the cache
    assert all(r.cost.reused == 1 and r.cost.lm_tokens == 0 for r in again)
    assert sum(len(r.anchors) for r in again) > sum(len(r.anchors) for r in first.process(docs(TEXTS)).outputs)
    other_model = make_stage(engine, cache=cache, model_key="other")
    other_model.process(docs(TEXTS[:1]))
    assert other_model.stats["docs_scored"] == 1  # the key names the model: no reuse across models


def test_no_anchor_is_a_layout_token(engine):
    """Navigation chrome: tabs, bars and arrows between words. Their entropy counts in tau but none of
    them is an anchor."""
    nav = "\n".join(f"«  Prev  |  Up  |  Chapter {i}. Data  |  Home  |  Next  »\n\t\t-- {i} --\n" for i in range(12))
    stage = EntropyStage(engine, AnchorParams(alpha=-1.0, min_position=2, max_anchors=4096), window=3,
                         separator=(0,), config_version="v", cache=MemoryCache())
    (rec,) = stage.process(docs([nav])).outputs
    assert rec.anchors and all(any(c.isalnum() for c in rec.text[a.char_start : a.char_end]) for a in rec.anchors)
    assert stage.stats["layout_positions_skipped"] > 0
    h = entropy_array(stage, rec)
    layout = [is_layout(rec.text[a:b]) for a, b in rec.token_offsets]
    tau = threshold(h[2:], -1.0)
    assert {a.index for a in rec.anchors} == {t for t in range(2, len(h)) if h[t] > tau and not layout[t]}
