from hypothesis import given
from hypothesis import strategies as st

from entropylong_streamer.method import spans
from entropylong_streamer.method.spans import word_span, word_spans


def pieces_offsets(pieces: list[str]) -> tuple[str, list[tuple[int, int]]]:
    offsets, at = [], 0
    for p in pieces:
        offsets.append((at, at + len(p)))
        at += len(p)
    return "".join(pieces), offsets


def test_a_span_is_the_anchors_whole_word_and_the_token_that_ends_it():
    text, offsets = pieces_offsets(["Station", " visited", ":", " Mir", "wick", "r", "ro", "\n", "Found", " by"])
    # every anchor inside " Mirwickrro" is judged on the whole name and the newline that ends it
    assert word_spans(text, offsets, [3, 4, 6], cap=8) == {3: (3, 8), 4: (3, 8), 6: (3, 8)}
    assert word_span(text, offsets, 1, 8) == (1, 4)  # " visited" ":" and " Mir", which starts the next word
    assert word_span(text, offsets, 8, 8) == (8, 10)  # a line's first word starts after the newline


def test_the_cap_bounds_a_span_around_the_anchor_and_cap_one_is_the_anchor_alone():
    text, offsets = pieces_offsets([" pg", "_", "stat", "_", "activity", "().", " is"])
    assert word_span(text, offsets, 0, 3) == (0, 3)
    assert word_span(text, offsets, 4, 3) == (2, 5)  # two tokens back at most, the anchor kept
    assert word_span(text, offsets, 4, 1) == (4, 5)
    assert word_span(text, offsets, 2, 100) == (0, 7)
    assert word_span(text, offsets, 6, 8) == (6, 7)  # the document's last token: its span ends there


def test_a_token_without_characters_bounds_a_word():
    text, offsets = pieces_offsets(["Mir", "wick", "rro"])
    offsets.insert(1, (3, 3))  # a special token between them
    assert word_span(text, offsets, 0, 8) == (0, 2)
    assert word_span(text, offsets, 2, 8) == (2, 4)


@given(st.lists(st.sampled_from(["a", "bc", " d", "\n", " ", "e.", "(", "f ", ""]), min_size=1, max_size=30),
       st.integers(1, 12), st.data())
def test_spans_are_word_bounded(pieces, cap, data):
    text, offsets = pieces_offsets(pieces)
    t = data.draw(st.integers(0, len(pieces) - 1))
    start, end = word_span(text, offsets, t, cap)
    assert start <= t < end <= len(pieces) and end - start <= cap

    def starts_word(i: int) -> bool:
        return spans.starts_word(text, offsets, i)

    def ends_with_space(i: int) -> bool:
        return spans.ends_with_space(text, offsets, i)

    # nothing between the word's start and the anchor starts a word; it stops at a word start or the cap
    assert not any(starts_word(i) or ends_with_space(i - 1) for i in range(start + 1, t + 1))
    assert start == 0 or start == t - (cap - 1) or starts_word(start) or ends_with_space(start - 1)
    # nothing inside after the anchor starts a word; it stops at the word's end, the cap or the text's end
    assert not any(starts_word(i) for i in range(t + 1, end - 1))
    assert end == min(start + cap, len(pieces)) or starts_word(end - 1)
