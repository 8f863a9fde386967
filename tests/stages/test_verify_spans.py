"""verify.span_tokens: a pair judged on the NLL summed over its anchor's whole word, equal to the naive sums."""

import pytest
from noise import TINY_DTYPE, close

from entropylong_streamer.measurements import MemoryCache
from entropylong_streamer.method.dependency import Criterion
from entropylong_streamer.method.spans import word_span
from entropylong_streamer.services.transformers_engine import TransformersEngine
from entropylong_streamer.stages.verify import VerifyStage
from entropylong_streamer.topics import Anchor, AnchorsRecord, Candidate, CandidatesRecord

SEP = (0,)
DOC = ("The survey log lists the vessel Mirwickrro, built in 1911 under captain Zanquen Velispe, "
       "and the station Gatelufal, run by Kawick Peshushu since 1915, at elevation 3457 metres.")
CONTEXTS = ["Harbour register. Vessel: Mirwickrro. Built: 1911. Captain: Zanquen Velispe.",
            "Weather station list. Station: Gatelufal. Operator: Kawick Peshushu. Established: 1915.",
            "Milvus stores vectors for search."]


@pytest.fixture(scope="module")
def engine(model_cache):
    return TransformersEngine("tiny", model_cache, max_tokens=1024, dtype=TINY_DTYPE)


def record(engine, text=DOC, token_ids=None):
    tok = engine.tokenize(text)
    ids = tok.ids if token_ids is None else token_ids
    h, nll = engine.score([*SEP, *ids], range(len(SEP) - 1, len(SEP) - 1 + len(ids)))
    anchors = [t for t in range(8, len(ids)) if h[t] >= 1.0 and any(c.isalnum() for c in text[slice(*tok.offsets[t])])]
    anchors = anchors[:: max(1, len(anchors) // 10)]
    arec = AnchorsRecord(doc_id="d", text=text, token_ids=ids, token_offsets=tok.offsets, config_version="v",
                         anchors=[Anchor(index=t, char_start=tok.offsets[t][0], char_end=tok.offsets[t][1],
                                         entropy=float(h[t]), nll=float(nll[t]), query="q") for t in anchors])
    cands = [Candidate(context_id=f"c{i}", context_doc_id=f"o{i}", text=c, score=1.0, anchor_indices=anchors[:1])
             for i, c in enumerate(CONTEXTS)]
    return tok, CandidatesRecord(anchors=arec, candidates=cands, config_version="v")


def stage(engine, span_tokens, cache=None):
    return VerifyStage(engine, Criterion(kind="loss", nll_threshold=0.3), max_context_tokens=None, separator=SEP,
                       config_version="v", all_anchors=True, model_key="tiny", cache=cache, span_tokens=span_tokens)


def test_a_pairs_nll_is_the_naive_sum_over_its_anchors_word(engine):
    tok, rec = record(engine)
    (out,) = stage(engine, 8).process([rec]).outputs
    ids = tok.ids
    _, base = engine.score([*SEP, *ids], range(len(ids)))
    assert len(out.pairs) == len(rec.anchors.anchors) * len(CONTEXTS)
    assert any(p.span[1] - p.span[0] > 1 and p.span[0] < p.anchor_index for p in out.pairs)
    for p in out.pairs:
        start, end = word_span(DOC, tok.offsets, p.anchor_index, 8)
        assert p.span == (start, end)
        ctx = next(c for c in out.contexts if c.context_id == p.context_id).token_ids
        k = 2 * len(SEP) + len(ctx)
        h_ctx, with_ctx = engine.score([*SEP, *ctx, *SEP, *ids], [k - 1 + u for u in range(start, end)])
        assert close(p.span_nll, float(sum(base[start:end])))
        assert close(p.span_nll_ctx, float(sum(with_ctx)))
        at = p.anchor_index - start  # the anchor's own H' and NLL', as before
        assert close(p.h_ctx, float(h_ctx[at])) and close(p.nll_ctx, float(with_ctx[at]))
        assert p.judged() == (p.anchor_index, p.h, p.h_ctx, p.span_nll, p.span_nll_ctx)
        assert p.accepted == ((p.span_nll - p.span_nll_ctx) / p.span_nll > 0.3)


def test_span_tokens_one_is_the_anchor_alone(engine):
    _, rec = record(engine)
    (one,) = stage(engine, 1).process([rec]).outputs
    nll = {a.index: a.nll for a in rec.anchors.anchors}
    assert all(p.span is None and p.span_nll is None and p.nll == nll[p.anchor_index] for p in one.pairs)
    assert all(p.judged() == (p.anchor_index, p.h, p.h_ctx, p.nll, p.nll_ctx) for p in one.pairs)


def test_a_replay_of_span_pairs_runs_no_lm_token(engine):
    cache = MemoryCache()
    _, rec = record(engine)
    first = stage(engine, 8, cache)
    (out,) = first.process([rec]).outputs
    assert first.stats["lm_tokens"] > 0 and first.stats["pairs_measured"] == len(out.pairs)  # pairs, not positions
    again = stage(engine, 8, cache)
    (replayed,) = again.process([rec]).outputs
    assert again.stats["lm_tokens"] == 0 and again.stats["pairs_measured"] == 0
    assert again.stats["pairs_cached"] == len(out.pairs) == replayed.costs["verify"].reused
    assert [(p.nll_ctx, p.span_nll, p.span_nll_ctx, p.span) for p in replayed.pairs] == [
        (p.nll_ctx, p.span_nll, p.span_nll_ctx, p.span) for p in out.pairs]


def test_tokens_the_engine_would_not_produce_are_judged_at_the_anchor_alone(engine):
    tok, _ = record(engine)
    _, rec = record(engine, token_ids=list(reversed(tok.ids)))  # not what the text tokenizes to
    s = stage(engine, 8)
    (out,) = s.process([rec]).outputs
    assert out.pairs and all(p.span is None and p.span_nll is None for p in out.pairs)
    assert s.stats["docs_without_spans"] == 1


def test_a_shared_fact_needs_nearly_the_best_gain():
    crit = Criterion(kind="shared", nll_threshold=0.3, rival_quantile=0.75, best_share=0.9)
    # anchor 4: two pages state the name (20 nats -> ~0.5), one shares its first pieces only and then
    # predicts its own continuation (20 -> 9), nine others do nothing for it
    pairs = [(4, 3.0, 1.0, 20.0, 0.5), (4, 3.0, 1.0, 20.0, 1.5), (4, 3.0, 1.0, 20.0, 9.0)] + \
        [(4, 3.0, 2.9, 20.0, 19.0 + 0.1 * k) for k in range(9)]
    assert crit.decide(pairs) == [True, True, False] + [False] * 9
    loose = Criterion(kind="shared", nll_threshold=0.3, rival_quantile=0.75)
    assert loose.decide(pairs)[:3] == [True, True, True]  # best_share 0: the partial match passes too
