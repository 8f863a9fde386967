"""The screen before exact verification (verify.screen): it only removes candidates, what it keeps is
measured exactly as without it, its numbers are the plain forwards of its views, and it pays its way."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from noise import TINY_DTYPE, close
from test_verify import SEP, TEXTS, make_record

from entropylong_streamer.config import Config
from entropylong_streamer.measurements import MemoryCache
from entropylong_streamer.method.dependency import Criterion
from entropylong_streamer.method.screen import (
    ScreenParams,
    aligned_view,
    passes,
    rival_gains,
    screened_anchors,
    view_cost,
    window,
)
from entropylong_streamer.services.transformers_engine import TransformersEngine
from entropylong_streamer.stages.verify import VerifyStage

LONG = " ".join(TEXTS) * 3  # a context long enough that its view is a small part of it


@pytest.fixture(scope="module")
def engine(model_cache):
    return TransformersEngine("tiny", model_cache, max_tokens=1024, dtype=TINY_DTYPE)


@pytest.fixture(scope="module")
def records(engine):
    out = []
    for seed in (1, 2, 3):
        rng = np.random.default_rng(seed)
        doc = [int(t) for t in rng.integers(3, 5000, size=300)]
        h, _ = engine.score([SEP, *doc])
        anchors = sorted(rng.choice([t for t in range(40, len(doc)) if h[t] >= 1.0], size=6, replace=False).tolist())
        out.append(make_record(engine, doc, anchors, [(LONG, anchors[:3]), (LONG[::-1], anchors[2:]),
                                                      (TEXTS[seed], anchors[1:4])]))
    return out


def stage(engine, screen=None, cache=None, model_key="tiny"):
    return VerifyStage(engine, Criterion(0.05), None, (SEP,), "v", all_anchors=True, screen=screen, cache=cache,
                       model_key=model_key)


def pairs_of(outputs):
    return {(r.doc_id, i, c.context_doc_id, p.anchor_index): p for i, r in enumerate(outputs)
            for c in r.contexts for p in r.pairs if p.context_id == c.context_id}


@given(st.dictionaries(st.integers(0, 200), st.floats(0, 20), min_size=1), st.integers(1, 10))
def test_the_screened_anchors_are_the_least_likely_in_document_order(nll, k):
    chosen = screened_anchors(nll, k)
    assert chosen == sorted(chosen) and len(chosen) == min(k, len(nll))
    left = set(nll) - set(chosen)
    assert all(nll[t] >= nll[u] for t in chosen for u in left)


@given(st.lists(st.integers(0, 30), max_size=80), st.lists(st.lists(st.integers(0, 30), max_size=6), max_size=3),
       st.integers(1, 20))
def test_the_aligned_view_holds_the_most_rare_tokens_the_windows_share(context, windows, size):
    got = aligned_view(context, windows, size)
    wanted = {t for w in windows for t in w}

    def shared(lo: int) -> int:
        return sum(t in wanted and context.count(t) <= 2 for t in context[lo : lo + size])

    if len(context) <= size:
        assert got == (0, len(context))
    elif got is None:
        assert shared(0) == 0 and all(shared(i) == 0 for i in range(len(context) - size + 1))
    else:
        lo, hi = got
        assert hi - lo == size and all(shared(i) <= shared(lo) for i in range(len(context) - size + 1))
        assert all(shared(i) < shared(lo) for i in range(lo))  # the earliest of the best


def test_views_windows_and_the_pass_rule():
    doc = list(range(100, 200))
    assert window(doc, 10, 4) == doc[6:11] and window(doc, 2, 4) == doc[:3]
    # [sep view] once, then [sep window] up to the anchor's prediction for each window
    assert view_cost(1, 50, [5, 3]) == 1 + 50 + (1 + 4) + (1 + 2)
    assert passes([4.0, 2.0], [3.9, 1.0], 0.3) and not passes([4.0, 2.0], [3.9, 1.5], 0.3)
    assert not passes([0.0], [-1.0], 0.0)  # nothing to lower
    # beyond the rival's gain: (3 - 2) / 4 = 0.25; a rival that made it worse counts as no gain
    assert not passes([4.0], [1.0], 0.3, [2.0]) and passes([4.0], [1.0], 0.3, [-1.0])


def test_shadow_judges_every_context_and_measures_every_context_exactly(engine, records):
    exact = stage(engine)
    plain = exact.process(records).outputs
    shadow = stage(engine, ScreenParams(context_tokens=16, window=8, max_anchors=3, threshold=0.5, shadow=True))
    judged = shadow.process(records).outputs
    # the same forwards in the same batches as without the screen: the same records, bit for bit
    assert [r.model_dump(exclude={"costs", "screened"}) for r in judged] == \
        [r.model_dump(exclude={"costs", "screened"}) for r in plain]
    assert sum(len(r.screened) for r in judged) == shadow.stats["contexts_screened"] > 0
    assert all(r.costs["screen"].lm_tokens > 0 for r in judged)
    assert shadow.stats["lm_tokens"] == exact.stats["lm_tokens"] + shadow.stats["screen_lm_tokens"]


def test_the_screens_numbers_are_the_plain_forwards_of_its_views(engine, records):
    screen = ScreenParams(context_tokens=16, window=8, max_anchors=3, shadow=True)
    (out,) = stage(engine, screen).process(records[:1]).outputs
    doc = out.token_ids
    for s in out.screened:
        ids = next(c for c in out.contexts if c.context_id == s.context_id).token_ids
        # the 16 tokens sharing most rare tokens with the windows; these candidates carry no spans: else the head
        lo, hi = aligned_view(ids, [window(doc, t, 8) for t in s.anchors], 16) or (0, 16)
        for t, nll, nll_view in zip(s.anchors, s.nll, s.nll_view, strict=True):
            w = window(doc, t, 8)
            assert close(nll, float(engine.score([SEP, *w], [len(w) - 1])[1][0]))
            plain = [SEP, *ids[lo:hi], SEP, *w]
            assert close(nll_view, float(engine.score(plain, [len(plain) - 2])[1][0]))


def test_what_passes_is_measured_exactly_and_what_does_not_is_not_measured(engine, records):
    exact = stage(engine)
    plain = pairs_of(exact.process(records).outputs)
    for threshold in (0.0, 0.5, 0.99):
        on = stage(engine, ScreenParams(context_tokens=16, window=8, max_anchors=3, threshold=threshold))
        out = on.process(records).outputs
        kept = pairs_of(out)
        dropped = {(r.doc_id, i, s.context_doc_id) for i, r in enumerate(out) for s in r.screened if not s.passed}
        assert on.stats["contexts_screened_out"] == len(dropped)
        assert not any(k[:3] in dropped for k in kept)
        # every pair it measured is the exact run's (the rivals it dropped may change a verdict: not here, epsilon)
        assert kept.keys() <= plain.keys()
        assert all(close(kept[k].nll_ctx, plain[k].nll_ctx) and kept[k].accepted == plain[k].accepted
                   for k in kept)
        assert len(kept) + sum(1 for k in plain if k[:3] in dropped) == len(plain)
        if threshold == 0.99:  # next to nothing passes: the views cost less than the forwards they save
            assert len(dropped) >= on.stats["contexts_screened"] - 1
            assert on.stats["lm_tokens"] < exact.stats["lm_tokens"] / 2


def test_a_context_is_not_screened_where_its_view_would_not_pay_or_its_pairs_are_cached(engine, records):
    never = stage(engine, ScreenParams(context_tokens=16, window=8, max_anchors=3, max_share=0.01))
    never.process(records)
    assert never.stats["contexts_screened"] == 0 and never.stats["contexts_not_worth_screening"] > 0
    cache = MemoryCache()
    stage(engine, cache=cache).process(records)  # every pair measured and cached
    cached = stage(engine, ScreenParams(context_tokens=16, window=8, max_anchors=3, threshold=0.99), cache=cache)
    cached.process(records)
    assert cached.stats["contexts_screened"] == 0 and cached.stats["lm_tokens"] == 0


def test_the_screens_settings_are_part_of_the_verify_version_only_while_it_is_on():
    cfg = Config().copy_with({"verify.criterion": "specific"})  # "on" is for the specific criterion
    assert cfg.copy_with({"verify.screen_window": 9}).version("verify") == cfg.version("verify")
    on = cfg.copy_with({"verify.screen": "on"})
    assert on.version("verify") != cfg.version("verify")
    assert on.copy_with({"verify.screen_window": 9}).version("verify") != on.version("verify")
    shadow = cfg.copy_with({"verify.screen": "shadow"})
    assert shadow.version("verify") not in (cfg.version("verify"), on.version("verify"))


@given(st.lists(st.tuples(st.lists(st.integers(0, 6), min_size=1, max_size=4, unique=True), st.data()), max_size=6),
       st.integers(1, 3))
def test_each_contexts_rival_is_the_rank_th_best_other_gain_at_its_anchor(views, rank):
    drawn = []
    for anchors, data in views:
        base = data.draw(st.lists(st.floats(0, 10), min_size=len(anchors), max_size=len(anchors)))
        view = data.draw(st.lists(st.floats(0, 10), min_size=len(anchors), max_size=len(anchors)))
        drawn.append((anchors, base, view))
    got = rival_gains(drawn, Criterion(kind="specific", max_sources=rank).rival)
    for i, (anchors, _, _) in enumerate(drawn):
        for j, t in enumerate(anchors):
            others = sorted((b[k] - v[k] for m, (a, b, v) in enumerate(drawn) if m != i
                             for k in range(len(a)) if a[k] == t), reverse=True)
            assert got[i][j] == (others[rank - 1] if len(others) >= rank else 0.0)


def test_under_the_specific_criterion_every_verdict_is_the_unscreened_builds(engine, records):
    """A context the screen removed may be the rival an accepted pair had to beat: it is measured at
    that anchor, so no verdict changes; only pairs go missing (the recall the screen costs)."""
    def specific(screen=None):
        return VerifyStage(engine, Criterion(kind="specific", nll_threshold=0.0), None, (SEP,), "v",
                           all_anchors=True, screen=screen, model_key="tiny")

    exact = specific()
    plain = pairs_of(exact.process(records).outputs)
    assert sum(p.accepted for p in plain.values()) > 0
    recalled = 0
    for threshold in (0.0, 0.5, 0.99):
        on = specific(ScreenParams(context_tokens=16, window=8, max_anchors=3, threshold=threshold))
        kept = pairs_of(on.process(records).outputs)
        assert kept.keys() <= plain.keys()
        assert all(close(kept[k].nll_ctx, plain[k].nll_ctx) and kept[k].accepted == plain[k].accepted
                   for k in kept)
        # a rival is measured only where a pair is accepted, and only at that anchor
        assert on.stats["rival_pairs_measured"] <= sum(1 for k in kept if any(
            kept[j].accepted for j in kept if j[:2] == k[:2] and j[3] == k[3]))
        recalled += on.stats["rival_pairs_measured"]
    assert recalled > 0
