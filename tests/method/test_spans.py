from hypothesis import given
from hypothesis import strategies as st

from entropylong_streamer.method.spans import span_ends, word_span_end


def pieces_offsets(pieces: list[str]) -> tuple[str, list[tuple[int, int]]]:
    offsets, at = [], 0
    for p in pieces:
        offsets.append((at, at + len(p)))
        at += len(p)
    return "".join(pieces), offsets


def test_a_span_runs_to_the_token_that_ends_the_word():
    text, offsets = pieces_offsets(["Station", " visited", ":", " Mir", "wick", "r", "ro", "\n", "Found"])
    ends = span_ends(text, offsets, [3, 4, 6], cap=8)
    assert ends == {3: 8, 4: 8, 6: 8}  # " Mir" -> "wick" "r" "ro" and the newline that ends the name
    assert word_span_end(text, offsets, 1, 8) == 4  # " visited" ":" and " Mir", which starts the next word


def test_the_cap_bounds_a_span_and_cap_one_is_the_anchor_alone():
    text, offsets = pieces_offsets([" pg", "_", "stat", "_", "activity", "().", " is"])
    assert word_span_end(text, offsets, 0, 3) == 3
    assert word_span_end(text, offsets, 0, 1) == 1
    assert word_span_end(text, offsets, 0, 100) == 7
    assert word_span_end(text, offsets, 6, 8) == 7  # the document's last token: its span ends there


def test_a_token_without_characters_ends_a_word():
    text, offsets = pieces_offsets(["Mir", "wick"])
    offsets.insert(1, (3, 3))  # a special token between them
    assert word_span_end(text, offsets, 0, 8) == 2


@given(st.lists(st.sampled_from(["a", "bc", " d", "\n", " ", "e.", "(", ""]), min_size=1, max_size=30),
       st.integers(1, 12), st.data())
def test_span_ends_are_word_bounded(pieces, cap, data):
    text, offsets = pieces_offsets(pieces)
    t = data.draw(st.integers(0, len(pieces) - 1))
    end = word_span_end(text, offsets, t, cap)
    assert t < end <= min(t + cap, len(pieces))

    def ends_word(i: int) -> bool:
        a, b = offsets[i]
        return a >= b or text[a].isspace()

    assert not any(ends_word(i) for i in range(t + 1, end - 1))  # nothing inside the span ends the word
    assert end == min(t + cap, len(pieces)) or ends_word(end - 1)  # it stops at the cap, the text's end or a word end
