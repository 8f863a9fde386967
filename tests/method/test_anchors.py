import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from entropylong_streamer.method.anchors import AnchorParams, is_layout, query_span, select_anchors, threshold


def test_spikes_above_tau_are_anchors_and_early_positions_excluded():
    h = np.ones(100)
    h[[3, 40, 80]] = 10.0
    chosen = select_anchors(h, AnchorParams(alpha=2.0, min_position=8, max_anchors=10, merge_distance=4))
    assert chosen.anchors == [40, 80] and chosen.leaders == [40, 80] and chosen.capped == 0


def test_close_anchors_share_the_highest_ones_query_and_are_all_kept():
    h = np.ones(100)
    h[50], h[53], h[60], h[90] = 9.0, 10.0, 8.0, 8.5
    chosen = select_anchors(h, AnchorParams(alpha=1.0, min_position=0, merge_distance=8))
    assert chosen.anchors == [50, 53, 60, 90]
    assert chosen.leaders == [53, 53, 53, 90]  # 60 is 7 from 53: it shares 53's query, never dropped


def test_the_cap_keeps_the_highest_entropy_and_counts_the_rest():
    h = np.ones(200)
    h[[20, 40, 60, 80, 100]] = [5.0, 9.0, 6.0, 8.0, 7.0]
    chosen = select_anchors(h, AnchorParams(alpha=1.0, min_position=0, max_anchors=3, merge_distance=1))
    assert chosen.anchors == [40, 80, 100] and chosen.capped == 2


@settings(max_examples=80, deadline=None)
@given(st.lists(st.floats(0, 12), min_size=0, max_size=300), st.floats(0, 3), st.integers(0, 20),
       st.integers(1, 400), st.integers(1, 20))
def test_anchor_invariants(values, alpha, min_pos, cap, merge):
    h = np.array(values, dtype=np.float64)
    chosen = select_anchors(h, AnchorParams(alpha, min_pos, cap, merge))
    anchors, leaders = chosen.anchors, chosen.leaders
    assert anchors == sorted(set(anchors)) and len(anchors) <= cap and len(leaders) == len(anchors)
    if h.size <= min_pos:
        assert anchors == [] and chosen.capped == 0
        return
    tau = threshold(h[min_pos:], alpha)  # the first positions take no part in tau
    above = [t for t in range(min_pos, h.size) if h[t] > tau]
    # every position above tau is an anchor, unless the cap bit (and then it is counted)
    assert len(anchors) + chosen.capped == len(above) and set(anchors) <= set(above)
    if chosen.capped:
        assert min(h[t] for t in anchors) >= max(h[t] for t in set(above) - set(anchors))
    lead = {t for t, k in zip(anchors, leaders, strict=True) if t == k}
    for t, k in zip(anchors, leaders, strict=True):
        assert k in lead and abs(t - k) < merge or t == k
        assert h[k] >= h[t]  # a follower shares the query of an anchor at least as uncertain
    assert all(abs(a - b) >= merge for a in lead for b in lead if a != b)  # leaders' queries are apart


def test_query_span_clips_to_document():
    assert query_span(3, 16, 10) == (0, 10)
    assert query_span(50, 16, 100) == (34, 67)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0, 10, allow_nan=False), min_size=0, max_size=120), st.data())
def test_layout_tokens_are_never_anchors_and_leave_the_rest_as_they_were(h, data):
    """Every position above tau that is not layout is an anchor as before; no layout position is one."""
    layout = np.array(data.draw(st.lists(st.booleans(), min_size=len(h), max_size=len(h))), bool)
    params = AnchorParams(alpha=0.5, min_position=2, max_anchors=10_000)
    plain = select_anchors(np.array(h), params)
    chosen = select_anchors(np.array(h), params, layout)
    assert chosen.anchors == [t for t in plain.anchors if not layout[t]]
    assert chosen.layout == sum(layout[t] for t in plain.anchors)


def test_a_token_without_a_letter_or_digit_is_layout():
    for text in ("\n", "\t\t", " ", "«", " |", "»", ")", " -->", "</", "...", " *", ""):
        assert is_layout(text), text
    for text in (" the", "5", " x", "é", "数", "_a", " 0x3f"):
        assert not is_layout(text), text
