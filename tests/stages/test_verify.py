"""Verification on the real (tiny) model: one forward per context equals the naive per-pair dI."""

import numpy as np
import pytest

from entropylong_streamer.method.dependency import Criterion, relative_reduction
from entropylong_streamer.services.lm import TransformersEngine
from entropylong_streamer.stages.verify import VerifyStage
from entropylong_streamer.topics import Anchor, AnchorsRecord, Candidate, CandidatesRecord

SEP = 0


@pytest.fixture(scope="module")
def engine(model_cache):
    return TransformersEngine("tiny", model_cache, max_tokens=1024)


def make_record(engine, doc_tokens, anchors, contexts):
    h, nll = engine.score([SEP, *doc_tokens])
    arec = AnchorsRecord(doc_id="d", text="x", token_ids=doc_tokens, token_offsets=[(i, i + 1) for i in
                         range(len(doc_tokens))], entropy_f16=h.astype("<f2").tobytes(), config_version="v",
                         anchors=[Anchor(index=t, char_start=t, char_end=t + 1, entropy=float(h[t]),
                                         nll=float(nll[t]), query="q") for t in anchors])
    cands = [Candidate(context_id=f"c{i}", context_doc_id=f"o{i}", text=text, score=1.0, anchor_indices=idx)
             for i, (text, idx) in enumerate(contexts)]
    return CandidatesRecord(anchors=arec, candidates=cands, config_version="v")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_forward_per_context_equals_naive_per_pair(engine, seed):
    rng = np.random.default_rng(seed)
    doc = [int(t) for t in rng.integers(3, 5000, size=int(rng.integers(40, 120)))]
    # Anchors are uncertain positions (the entropy stage takes them above tau): dI = (H - H') / H
    # is ill-conditioned where H is near 0, and rounding of 1e-5 would show as 1e-4 there.
    h, _ = engine.score([SEP, *doc])
    uncertain = [t for t in range(8, len(doc)) if h[t] >= 1.0]
    anchors = sorted(rng.choice(uncertain, size=4, replace=False).tolist())
    texts = ["The otter builds a den near the water.", "Milvus stores vectors for search.",
             "Entropy falls when the context explains the next token."]
    contexts = [(t, sorted(rng.choice(anchors, size=int(rng.integers(1, 4)), replace=False).tolist()))
                for t in texts]
    rec = make_record(engine, doc, anchors, contexts)
    stage = VerifyStage(engine, Criterion(epsilon=0.05), max_context_tokens=8, separator_id=SEP,
                        config_version="v2")
    (out,) = stage.process([rec]).outputs
    assert len(out.pairs) == sum(len(idx) for _, idx in contexts)
    for pair in out.pairs:
        ctx = next(c for c in out.contexts if c.context_id == pair.context_id).token_ids
        assert len(ctx) <= 8
        full = [SEP, *ctx, SEP, *doc]  # the naive way: the whole [C; D] for this one pair
        h_ctx, nll_ctx = engine.score(full, [len(ctx) + 1 + pair.anchor_index])
        assert abs(pair.h_ctx - float(h_ctx[0])) <= 1e-4
        assert abs(pair.nll_ctx - float(nll_ctx[0])) <= 1e-4
        assert abs(pair.d_i - relative_reduction(pair.h, float(h_ctx[0]))) <= 1e-4
        assert pair.accepted == (pair.d_i > 0.05)
    naive_tokens = sum(len(c.token_ids) + 2 + len(doc) for c in out.contexts for p in out.pairs
                       if p.context_id == c.context_id)
    assert stage.stats["lm_tokens"] < naive_tokens


def test_loss_aware_criterion_also_needs_the_true_token_to_get_likelier():
    c = Criterion(epsilon=0.4, kind="entropy+loss", nll_threshold=0.2)
    assert c.accepts(h=4.0, h_ctx=1.0, nll=5.0, nll_ctx=1.0)
    assert not c.accepts(h=4.0, h_ctx=1.0, nll=5.0, nll_ctx=6.0)  # confidently wrong
    assert Criterion(epsilon=0.4).accepts(h=4.0, h_ctx=1.0, nll=5.0, nll_ctx=6.0)


def test_a_batch_of_records_equals_each_record_alone(engine):
    records = []
    for seed in (3, 4, 5):
        rng = np.random.default_rng(seed)
        doc = [int(t) for t in rng.integers(3, 5000, size=int(rng.integers(40, 120)))]
        h, _ = engine.score([SEP, *doc])
        anchors = sorted(rng.choice([t for t in range(8, len(doc)) if h[t] >= 1.0], size=3,
                                    replace=False).tolist())
        records.append(make_record(engine, doc, anchors, [("An otter den by the lake.", anchors[:2]),
                                                          ("Vectors in a pool.", anchors[1:])]))

    def stage():
        return VerifyStage(engine, Criterion(epsilon=0.05), max_context_tokens=8, separator_id=SEP,
                           config_version="v2")

    batched = stage()
    together = batched.process(records).outputs
    alone = [stage().process([r]).outputs[0] for r in records]
    for a, b in zip(together, alone, strict=True):
        assert [(p.context_id, p.anchor_index) for p in a.pairs] == [(p.context_id, p.anchor_index) for p in b.pairs]
        assert max(abs(p.h_ctx - q.h_ctx) for p, q in zip(a.pairs, b.pairs, strict=True)) <= 1e-4
    assert batched.stats["pairs"] == sum(len(r.pairs) for r in alone) == 12
