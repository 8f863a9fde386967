import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from entropylong_streamer.method.anchors import AnchorParams, query_span, select_anchors, threshold


def test_spikes_above_tau_are_anchors_and_early_positions_excluded():
    h = np.ones(100)
    h[[3, 40, 80]] = 10.0
    anchors = select_anchors(h, AnchorParams(alpha=2.0, min_position=8, max_anchors=10, merge_distance=4))
    assert anchors == [40, 80]


def test_close_anchors_merge_into_the_highest():
    h = np.ones(100)
    h[50], h[53] = 9.0, 10.0
    assert select_anchors(h, AnchorParams(alpha=1.0, min_position=0, merge_distance=16)) == [53]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0, 12), min_size=0, max_size=300), st.floats(0, 3), st.integers(0, 20),
       st.integers(1, 8), st.integers(1, 20))
def test_anchor_invariants(values, alpha, min_pos, cap, merge):
    h = np.array(values, dtype=np.float64)
    anchors = select_anchors(h, AnchorParams(alpha, min_pos, cap, merge))
    assert anchors == sorted(anchors) and len(anchors) <= cap
    if anchors:
        tau = threshold(h[min_pos:], alpha)  # the first positions take no part in tau
        assert all(t >= min_pos and h[t] > tau for t in anchors)
        assert all(b - a >= merge for a, b in zip(anchors, anchors[1:], strict=False))


def test_query_span_clips_to_document():
    assert query_span(3, 16, 10) == (0, 10)
    assert query_span(50, 16, 100) == (34, 67)
