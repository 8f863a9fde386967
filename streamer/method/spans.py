"""The span a pair is judged on: the anchor's token and the rest of its word.

One token says little about whether a context states the document's fact. A context that shares
only the fact's first pieces (another entity whose name starts the same way, another year of the
same century) lowers the loss at the anchor as much as the true source does, and then predicts
its own continuation. Summed over the anchor's word and the token that ends it, its loss rises
where the words part; the source's stays low to the end.
"""

from __future__ import annotations

from collections.abc import Sequence


def word_span_end(text: str, offsets: Sequence[tuple[int, int]], t: int, cap: int) -> int:
    """The end (exclusive) of anchor t's span: t, the tokens that continue its word, and the token
    that ends the word (one that starts with whitespace, or has no characters), at most cap tokens.
    cap 1: the anchor alone."""
    end = t + 1
    limit = min(t + max(cap, 1), len(offsets))
    while end < limit:
        a, b = offsets[end]
        ends_word = a >= b or text[a].isspace()
        end += 1
        if ends_word:
            break
    return end


def span_ends(text: str, offsets: Sequence[tuple[int, int]], anchors: Sequence[int], cap: int) -> dict[int, int]:
    """word_span_end of every anchor."""
    return {t: word_span_end(text, offsets, t, cap) for t in anchors}
