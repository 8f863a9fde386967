"""The span a pair is judged on: the word the anchor's token belongs to, and the token that ends it.

One token says little about whether a context states the document's fact. A context that shares
only some of the fact's pieces (another entity whose name starts or ends the same way, another year
of the same century) lowers the loss at the anchor as much as the true source does, and then
predicts its own continuation. Summed over the anchor's whole word and the token that ends it, its
loss stays high where the words differ; the source's is low over all of it.
"""

from __future__ import annotations

from collections.abc import Sequence


def starts_word(text: str, offsets: Sequence[tuple[int, int]], i: int) -> bool:
    """Token i starts with whitespace, or has no characters (a special token)."""
    a, b = offsets[i]
    return a >= b or text[a].isspace()


def ends_with_space(text: str, offsets: Sequence[tuple[int, int]], i: int) -> bool:
    """Token i ends with whitespace, or has no characters."""
    a, b = offsets[i]
    return a >= b or text[b - 1].isspace()


def word_span(text: str, offsets: Sequence[tuple[int, int]], t: int, cap: int) -> tuple[int, int]:
    """[start, end) of anchor t's span: the tokens of its word (back to the one that starts it: a
    token that starts with whitespace, or follows one that ends with it) and the token that ends
    the word (one that starts with whitespace), at most cap tokens, the anchor always among them.
    A token without characters (a special token) starts and ends words. cap 1: the anchor alone."""
    cap = max(cap, 1)
    start = t
    while (start > 0 and start > t - (cap - 1) and not starts_word(text, offsets, start)
           and not ends_with_space(text, offsets, start - 1)):
        start -= 1
    end = t + 1
    limit = min(start + cap, len(offsets))
    while end < limit:
        ends_word = starts_word(text, offsets, end)
        end += 1
        if ends_word:
            break
    return start, end


def word_spans(text: str, offsets: Sequence[tuple[int, int]], anchors: Sequence[int],
               cap: int) -> dict[int, tuple[int, int]]:
    """word_span of every anchor."""
    return {t: word_span(text, offsets, t, cap) for t in anchors}
