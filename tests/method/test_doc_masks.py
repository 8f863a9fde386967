"""Document masks from indices spans: a token sees exactly the earlier tokens of its own sample."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from entropylong_streamer.method import doc_masks


@st.composite
def packed(draw):
    lengths = draw(st.lists(st.integers(1, 12), min_size=1, max_size=6))
    gaps = draw(st.lists(st.integers(0, 3), min_size=len(lengths) + 1, max_size=len(lengths) + 1))
    spans, at = [], gaps[0]
    for n, gap in zip(lengths, gaps[1:], strict=True):
        spans.append((at, at + n))
        at += n + gap
    return spans, at


@given(packed())
def test_mask_positions_and_labels_follow_the_spans(case):
    spans, length = case
    ids = np.arange(100, 100 + length)
    mask = doc_masks.block_causal_mask(spans, length)
    pos = doc_masks.position_ids(spans, length)
    labels = doc_masks.labels(ids, spans)
    owner = {t: i for i, (a, b) in enumerate(spans) for t in range(a, b)}
    for q in range(length):
        for k in range(length):
            same = q in owner and owner.get(k) == owner[q]
            assert mask[q, k] == ((same and k <= q) or q == k)
    for a, b in spans:
        assert pos[a:b].tolist() == list(range(b - a))
        assert labels[a] == doc_masks.IGNORE and labels[a + 1 : b].tolist() == ids[a + 1 : b].tolist()
    outside = [t for t in range(length) if t not in owner]
    assert all(labels[t] == doc_masks.IGNORE for t in outside)


def test_overlapping_spans_are_refused():
    import pytest

    with pytest.raises(ValueError, match="ordered"):
        doc_masks.segment_ids([(0, 4), (3, 6)], 8)
