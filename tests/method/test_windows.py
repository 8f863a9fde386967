import pytest
from hypothesis import given
from hypothesis import strategies as st

from entropylong_streamer.method.batching import length_batches, padded_tokens
from entropylong_streamer.method.windows import plan_windows


@st.composite
def window_cases(draw):
    max_tokens = draw(st.integers(2, 300))
    overlap = draw(st.integers(0, max_tokens - 2))
    n = draw(st.integers(1, 3000))
    return n, max_tokens, overlap


@given(window_cases())
def test_every_position_scored_once_within_the_window_limit(case):
    n, max_tokens, overlap = case
    windows = plan_windows(n, max_tokens, overlap)
    scored = [p for w in windows for p in w.scored]
    assert scored == list(range(n - 1))  # each position once, in order: nothing truncated
    for w in windows:
        assert 0 <= w.start <= w.first and w.end <= n
        assert w.end - w.start <= max_tokens


@given(window_cases())
def test_positions_keep_their_whole_prefix_or_at_least_the_overlap(case):
    n, max_tokens, overlap = case
    for w in plan_windows(n, max_tokens, overlap):
        for p in w.scored:
            if w.start == 0:
                continue  # the whole prefix is in view
            assert p >= max_tokens - 1  # only positions the first window cannot hold move on
            assert p - w.start >= overlap


def test_a_document_that_fits_is_one_window():
    assert len(plan_windows(100, 100, 10)) == 1
    assert len(plan_windows(101, 100, 10)) == 2


def test_bad_overlap_is_refused():
    with pytest.raises(ValueError, match="overlap"):
        plan_windows(10, 8, 7)


@given(st.lists(st.integers(1, 500), max_size=60), st.integers(1, 2000))
def test_length_batches_partition_and_respect_the_budget(lengths, budget):
    batches = length_batches(lengths, budget)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        width = max(lengths[i] for i in b)
        assert len(b) == 1 or len(b) * width <= budget
        assert lengths[b[0]] == width  # the longest first: it sets the batch's width


def test_sorting_keeps_padding_small():
    lengths = [10, 500, 12, 498, 11, 499]
    batches = length_batches(lengths, 1000)
    assert padded_tokens(lengths, batches) - sum(lengths) <= 5
