"""The report's figures are what the dependencies records and the manifest say, recomputed plainly."""

import math
import re

from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import records

from entropylong_streamer.quality.command import cost_line
from entropylong_streamer.quality.figures import (
    DI_EDGES,
    cost_figures,
    dependency_figures,
    distinct_tokens,
    distribution,
    sample_figures,
)
from entropylong_streamer.topics import LMCost


@st.composite
def record_sets(draw):
    n = draw(st.integers(0, 6))
    return [draw(records(doc_id=f"d{i}")) for i in range(n)]


@given(record_sets())
@settings(max_examples=100, deadline=None)
def test_dependency_figures_agree_with_the_records(recs):
    f = dependency_figures(recs)
    tokens = sum(len(r.token_ids) for r in recs)
    anchors = sum(len({p.anchor_index for p in r.pairs}) for r in recs)
    pairs = [p for r in recs for p in r.pairs]
    accepted = [p for p in pairs if p.accepted]
    assert f["documents"] == len(recs) and f["document_tokens"] == tokens and f["anchors"] == anchors
    assert f["pairs"] == len(pairs) and f["accepted_pairs"] == len(accepted)
    assert math.isclose(f["acceptance_rate"], len(accepted) / len(pairs) if pairs else 0.0)
    assert math.isclose(f["anchors_per_1k_tokens"], 1000 * anchors / tokens if tokens else 0.0)
    assert math.isclose(f["candidates_per_anchor"], len(pairs) / anchors if anchors else 0.0)
    assert f["contexts_accepted"] == sum(len({p.context_id for p in r.pairs if p.accepted}) for r in recs)
    for kind, chosen in (("accepted", accepted), ("rejected", [p for p in pairs if not p.accepted])):
        d = f["d_i"][kind]
        assert d["count"] == len(chosen)
        assert sum(d["histogram"]["counts"]) == len(chosen)  # out-of-range values land in the end bins
        assert d["histogram"]["below"] == sum(p.d_i < DI_EDGES[0] for p in chosen)
        if chosen:
            assert math.isclose(d["mean"], sum(p.d_i for p in chosen) / len(chosen), abs_tol=1e-9)
            assert d["quantiles"]["5"] <= d["quantiles"]["50"] <= d["quantiles"]["95"]


@given(record_sets(), st.data())
@settings(max_examples=60, deadline=None)
def test_template_figures_count_the_dependencies_kept_apart(recs, data):
    from entropylong_streamer.method.dependency import Criterion

    crit = Criterion(0.4)
    marked = []
    for r in recs:  # some anchors on template lines: their pairs are never accepted
        flagged = data.draw(st.sets(st.sampled_from(sorted({p.anchor_index for p in r.pairs}) or [0])))
        pairs = [p.model_copy(update={"template": True, "accepted": False}) if p.anchor_index in flagged else p
                 for p in r.pairs]
        marked.append(r.model_copy(update={"pairs": pairs}))
    t = dependency_figures(marked, crit)["template"]
    template = [p for r in marked for p in r.pairs if p.template]
    passing = sum(crit.accepts(p.h, p.h_ctx, p.nll, p.nll_ctx) for p in template)
    accepted = sum(p.accepted for r in marked for p in r.pairs)
    assert t["pairs"] == len(template) and t["pairs_kept_apart"] == passing and t["accepted_share"] == 0.0
    assert t["anchors"] == sum(len({p.anchor_index for p in r.pairs if p.template}) for r in marked)
    assert math.isclose(t["kept_apart_share"], passing / (passing + accepted) if passing + accepted else 0.0)


@given(st.lists(st.integers(0, 9), max_size=30), st.lists(st.floats(0.01, 1.0), max_size=8))
@settings(max_examples=50, deadline=None)
def test_sample_figures(contexts, fills):
    tokens = [10 * (c + 1) for c in contexts]
    manifest = [{"tokens": 100, "fill_ratio": f} for f in fills]
    f = sample_figures(contexts, tokens, manifest)
    assert f["samples"] == len(contexts) and f["shards"] == len(fills) and f["shard_tokens"] == 100 * len(fills)
    assert f["contexts_per_sample"]["count"] == len(contexts)
    if contexts:
        assert math.isclose(f["tokens_per_sample"]["mean"], sum(tokens) / len(tokens))
    if fills:
        assert math.isclose(f["shard_fill"]["mean"], sum(fills) / len(fills))


def test_an_empty_distribution_says_so():
    assert distribution([]) == {"count": 0, "mean": None, "quantiles": {}, "max": None}


costs = st.builds(LMCost, lm_tokens=st.floats(0, 1e6), flops=st.floats(0, 1e15), seconds=st.floats(0, 1e3),
                  reused=st.integers(0, 50))


@given(record_sets(), st.data(), st.integers(0, 10**6), st.integers(0, 500))
@settings(max_examples=100, deadline=None)
def test_cost_figures_sum_the_records_costs_by_stage(recs, data, emitted, dependencies):
    recs = [r.model_copy(update={"costs": data.draw(st.dictionaries(st.sampled_from(["entropy", "verify"]), costs))})
            for r in recs]
    c = cost_figures(recs, emitted, dependencies)
    for stage in ("entropy", "verify"):
        spent = [r.costs[stage] for r in recs if stage in r.costs]
        if spent:
            assert math.isclose(c["stages"][stage]["lm_tokens"], sum(s.lm_tokens for s in spent), rel_tol=1e-9)
        else:
            assert stage not in c["stages"]
    total = sum(cost.lm_tokens for r in recs for cost in r.costs.values())
    assert math.isclose(c["total"]["lm_tokens"], total, rel_tol=1e-9, abs_tol=1e-6)
    assert c["measurements_reused"] == sum(cost.reused for r in recs for cost in r.costs.values())
    assert c["documents_without_costs"] == sum(not r.costs for r in recs)
    per = c["per_emitted_token"]["lm_tokens"]
    assert per is None if not emitted else math.isclose(per, total / emitted, rel_tol=1e-9, abs_tol=1e-12)
    per = c["per_dependency"]["flops"]
    assert (per is None) == (dependencies == 0)


@given(st.dictionaries(st.sampled_from("abcdef"), st.integers(1, 400), min_size=1),
       st.lists(st.tuples(st.integers(1, 2000), st.lists(st.integers(0, 5), max_size=4, unique=True)), max_size=12))
def test_distinct_tokens_count_each_context_window_once(windows, drawn):
    ids = sorted(windows)
    samples = [(doc + sum(windows[ids[i % len(ids)]] for i in held), [(ids[i % len(ids)], windows[ids[i % len(ids)]])
                                                                        for i in held])
               for doc, held in drawn]
    samples = [(n, list(dict(c).items())) for n, c in samples]  # a sample holds a window once
    docs = sum(n - sum(k for _, k in c) for n, c in samples)
    once = sum(windows[w] for w in {w for _, c in samples for w, _ in c})
    assert distinct_tokens(samples) == docs + once <= sum(n for n, _ in samples)


@given(record_sets(), st.data(), st.integers(1, 10**6), st.integers(0, 500), st.floats(0.05, 1.0))
@settings(max_examples=100, deadline=None)
def test_the_cost_line_says_what_was_run_and_read_and_states_the_floor_only_for_a_cold_run(
        recs, data, emitted, dependencies, share):
    recs = [r.model_copy(update={"costs": data.draw(st.dictionaries(st.sampled_from(["entropy", "verify"]), costs))})
            for r in recs]
    c = cost_figures(recs, emitted, dependencies, max(1, int(emitted * share)))
    line = cost_line(c)
    floor = f"{c['floor_lm_tokens_per_emitted_token']:.2f}: each distinct token of the samples read once"
    if c["measurements_reused"]:
        assert "read from the" in line and f"at least the floor, {floor}" in line
        assert not re.search(r"floor [\d.]+:", line)  # no figure of this run beside a floor it may lie under
        if not c["total"]["lm_tokens"]:
            assert line.startswith("LM cost: nothing run")
        else:
            assert line.startswith("LM work this run: ")
    else:
        assert line.startswith("LM cost: ") and f"floor {floor}" in line and "cache" not in line
