"""CE-versus-context curves on the real (tiny) model: every point is the plain forward it stands for."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from noise import TINY_DTYPE, assert_exact

from entropylong_streamer.quality.contexts import CONDITIONS, Prefixes
from entropylong_streamer.quality.curves import (
    FULL,
    DocCurves,
    effective_length,
    fit_budget,
    length_grid,
    lm_tokens,
    measure,
    summarize,
)
from entropylong_streamer.services.transformers_engine import TransformersEngine

SEP = 0


@pytest.fixture(scope="module")
def engine(model_cache):
    return TransformersEngine("tiny", model_cache, max_tokens=1024, dtype=TINY_DTYPE)


def docs(n=5):
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        budget = int(rng.integers(0, 90)) if i else 0  # one document without context
        doc = tuple(int(t) for t in rng.integers(1, 500, int(rng.integers(5, 40))))
        out.append(Prefixes(f"d{i}", doc, anchors=tuple(sorted({int(a) for a in rng.integers(0, len(doc), 3)})),
                            **{c: tuple(int(t) for t in rng.integers(1, 500, budget)) for c in CONDITIONS}))
    return out


def test_length_grid():
    assert length_grid(0) == [0, FULL]
    assert length_grid(300) == [0, 16, 64, 256, FULL]
    assert length_grid(256) == [0, 16, 64, FULL]


def test_every_point_is_the_plain_forward_of_its_context(engine):
    ds, grid = docs(), [0, 16, 64, FULL]
    curves = measure(engine, ds, grid, (SEP,), batch_docs=2)
    for dc in curves:
        p = dc.prefixes
        for cond in CONDITIONS:
            for length in grid:
                n = effective_length(length, len(p.verified))
                ctx = p.of(cond)[len(p.of(cond)) - n:] if n else ()
                ids = [*ctx, SEP, *p.doc]
                _, nll = engine.score(ids, range(len(ctx), len(ids) - 1))
                assert_exact(dc.nll[(cond, length)], nll)
        assert all(np.array_equal(dc.nll[(c, 0)], dc.nll[("verified", 0)]) for c in CONDITIONS)


def test_identical_inputs_run_once(engine):
    ds = docs()
    before = engine.lm_tokens
    measure(engine, ds, [0, 16, 64, 1000, FULL], (SEP,))
    # 1000 and FULL are the same input for every document here (prefixes < 90 tokens): counted once
    expected = 0
    for p in ds:
        lengths = {effective_length(x, len(p.verified)) for x in (16, 64, 1000, FULL)} - {0}
        expected += len(p.doc) + len(CONDITIONS) * sum(n + len(p.doc) for n in lengths)
    assert engine.lm_tokens - before == expected


def test_summary_means_are_token_weighted_over_documents(engine):
    ds, grid = docs(), [0, 64, FULL]
    curves = measure(engine, ds, grid, (SEP,))
    points = summarize(curves, grid)
    assert [pt["context_tokens"] for pt in points] == grid
    for pt, length in zip(points, grid, strict=True):
        for cond in CONDITIONS:
            every = np.concatenate([dc.nll[(cond, length)] for dc in curves])
            at = np.concatenate([dc.nll[(cond, length)][list(dc.prefixes.anchors)] for dc in curves])
            # token-weighted means of the same fp32 values, summed in another order: ~1e-7 relative
            assert math.isclose(pt["all"]["ce"][cond], float(every.mean()), rel_tol=1e-5)
            assert math.isclose(pt["anchors"]["ce"][cond], float(at.mean()), rel_tol=1e-5)
        gap = pt["all"]["gap_to_verified"]["random"]["gap"]
        assert math.isclose(gap, pt["all"]["ce"]["random"] - pt["all"]["ce"]["verified"], abs_tol=1e-9)  # same floats
        assert pt["mean_context_tokens"] == np.mean([effective_length(length, len(dc.prefixes.verified))
                                                     for dc in curves])
    assert points[0]["all"]["gap_to_verified"]["unverified"]["gap"] == 0  # no context: the same forward


def test_a_prefix_longer_than_the_models_context_is_scored_on_what_fits(model_cache):
    short = TransformersEngine("tiny", model_cache, max_tokens=48, dtype=TINY_DTYPE)
    ds = docs()
    curves = measure(short, ds, [0, 16, FULL], (SEP,))
    for dc in curves:
        p = dc.prefixes
        room = 48 - 1 - len(p.doc)
        assert dc.seen(FULL) == max(0, min(len(p.verified), room))
        n = dc.seen(FULL)
        ids = [*(p.verified[len(p.verified) - n:] if n else ()), SEP, *p.doc]
        assert len(ids) <= 48
        _, nll = short.score(ids, range(n, len(ids) - 1))
        assert_exact(dc.nll[("verified", FULL)], nll)
    assert any(len(dc.prefixes.verified) > dc.seen(FULL) for dc in curves)  # the limit bit somewhere


def test_a_budget_is_met_exactly_by_what_measure_runs(engine):
    ds, grid = docs(8), [0, 16, 64, FULL]
    everything = sum(lm_tokens(DocCurves(p), grid, (SEP,)) for p in ds)
    plan = fit_budget([DocCurves(p) for p in ds], grid, (SEP,), everything // 2)
    assert 0 < len(plan.curves) < len(ds) and plan.left_out_documents == len(ds) - len(plan.curves)
    before = engine.lm_tokens
    measure(engine, plan.curves, plan.grid, (SEP,))
    # the plan counts each distinct forward whole; the engine may run a shared prefix once
    assert 0.9 * plan.lm_tokens <= engine.lm_tokens - before <= plan.lm_tokens <= everything // 2


def test_known_no_context_scores_are_used_not_run(engine):
    ds, grid = docs(), [0, 16, FULL]
    plain = measure(engine, ds, grid, (SEP,))
    known = [DocCurves(p) for p in ds]
    for dc, ref in zip(known, plain, strict=True):
        dc.known[("verified", 0)] = ref.nll[("verified", 0)]
    before = engine.lm_tokens
    measure(engine, known, grid, (SEP,))
    ran_without, before = engine.lm_tokens - before, engine.lm_tokens
    measure(engine, ds, grid, (SEP,))
    saved = engine.lm_tokens - before - ran_without  # the [sep D] forwards (their separator may be shared)
    assert sum(len(p.doc) for p in ds) <= saved <= sum(1 + len(p.doc) for p in ds)
    for dc, ref in zip(known, plain, strict=True):
        for key, nll in ref.nll.items():
            assert_exact(dc.nll[key], nll)


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(0, 8), budget=st.integers(0, 3000))
def test_fit_budget_keeps_a_prefix_of_the_documents_within_the_budget(seed, n, budget):
    rng = np.random.default_rng(seed)
    ds = []
    for i in range(n):
        size = int(rng.integers(0, 400))
        doc = tuple(range(1, int(rng.integers(2, 60))))
        ds.append(Prefixes(f"d{i}", doc, (0,), **{c: tuple(range(size)) for c in CONDITIONS}))
    grid = length_grid(max((len(p.verified) for p in ds), default=0))
    curves = [DocCurves(p) for p in ds]
    plan = fit_budget(curves, grid, (SEP,), budget)
    cost = [lm_tokens(dc, plan.grid, (SEP,)) for dc in curves]
    assert plan.curves == curves[: len(plan.curves)]  # the given order, no skipping to cheaper ones
    assert plan.lm_tokens == sum(cost[: len(plan.curves)]) <= budget
    if len(plan.curves) < n:  # the next one would not have fitted
        assert plan.lm_tokens + cost[len(plan.curves)] > budget
    assert plan.grid[0] == 0 and plan.grid[-1] == FULL
    assert sorted(plan.grid[1:-1] + plan.left_out_lengths) == grid[1:-1]
    if plan.left_out_lengths:  # lengths only go while the first document does not fit with them
        last = min(plan.left_out_lengths)
        assert lm_tokens(curves[0], sorted(plan.grid[:-1] + [last]) + [FULL], (SEP,)) > budget
    assert bool(plan.needed) == (n > 0 and not plan.curves)
