"""The context window of a long pool document: most retrieved spans whole, centred, never the head by default."""

from hypothesis import given, settings
from hypothesis import strategies as st

from entropylong_streamer.method.context_window import char_window, context_window, token_spans


def _brute_best(n, spans, size):
    return max((sum(a >= s and b <= s + size for a, b in spans) for s in range(0, n - size + 1)), default=0)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 300), st.lists(st.tuples(st.integers(0, 299), st.integers(1, 60)), max_size=6),
       st.integers(1, 200))
def test_the_window_fits_and_holds_as_many_retrieved_spans_as_any_window_could(n, raw, size):
    spans = [(a, min(a + w, n)) for a, w in raw if a < n]
    start, end = context_window(n, spans, size)
    assert 0 <= start <= end <= n and end - start == min(n, size)
    if n > size:
        held = sum(a >= start and b <= end for a, b in spans)
        assert held == _brute_best(n, spans, size)
        if spans and held == 0:  # every span is longer than the window: it starts inside the first
            first = min(spans)
            assert start <= first[0] < end or start == n - size


def test_the_spans_are_centred_and_the_head_is_the_fallback():
    assert context_window(1000, [(500, 520)], 100) == (460, 560)
    assert context_window(1000, [], 100) == (0, 100)
    assert context_window(1000, [(10, 20)], 100) == (0, 100)  # clamped at the document's start
    assert context_window(1000, [(980, 1000)], 100) == (900, 1000)
    assert context_window(50, [(10, 20)], 100) == (0, 50)


def test_character_and_token_spans_agree():
    text = "alpha beta gamma delta"
    offsets = [(0, 5), (5, 10), (10, 16), (16, 22)]
    assert token_spans(offsets, [(6, 9), (11, 22)]) == [(1, 2), (2, 4)]
    assert text[slice(*char_window(offsets, (1, 3)))] == " beta gamma"
