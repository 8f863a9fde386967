from hypothesis import given, settings
from hypothesis import strategies as st

from entropylong_streamer.method.templates import (
    in_template_ngram,
    line_hash,
    line_prefixes,
    split_lines,
    split_ngrams,
    template_spans,
)


def test_lines_are_found_by_any_character_and_blank_lines_are_none():
    text = "Home | Docs | Search\n\n  The otter   eats fish.\r\nCreated using Sphinx"
    lines = split_lines(text)
    assert lines.hash_at(0) == lines.hash_at(19) == line_hash("Home | Docs | Search")
    assert lines.hash_at(20) is None and lines.hash_at(21) is None  # the newline, the blank line
    assert lines.hash_at(text.index("eats")) == line_hash("The otter eats fish.")  # whitespace normalised
    assert lines.hash_at(len(text) - 1) == line_hash("Created using Sphinx")
    assert lines.hash_at(len(text) + 5) is None


def test_a_line_is_a_template_once_min_docs_documents_hold_it():
    lines = split_lines("Report a Bug | Show Source\nThe tree is 40 m tall.")
    nav, fact = lines.hashes
    assert template_spans(lines, {nav: 10, fact: 1}, 10) == {nav}
    assert template_spans(lines, {nav: 9}, 10) == set()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet="ab \t", max_size=6), max_size=8), st.data())
def test_every_character_belongs_to_its_own_line(parts, data):
    text = "\n".join(parts)
    lines = split_lines(text)
    assert len(lines.hashes) == sum(bool(p.strip()) for p in parts)
    if text:
        i = data.draw(st.integers(0, len(text) - 1))
        line_no = text.count("\n", 0, i)
        line = parts[line_no] if text[i] != "\n" else ""
        assert lines.hash_at(i) == (line_hash(line) if line.strip() else None)


def test_a_token_is_in_every_ngram_that_holds_its_word():
    text = "Prev  Up  Chapter 5. Data Definition  Home  Next\nThe otter eats fish."
    grams = split_ngrams(text, 3)
    words = ["Prev", "Up", "Chapter", "5", "Data", "Definition", "Home", "Next", "The", "otter", "eats", "fish"]
    assert len(grams.hashes) == len(words) - 2
    at = text.index("Home")
    # " Home" as a token (its leading spaces included) lies in the 3-grams starting at Data, Definition, Home
    assert grams.covering(at - 2, at + 4) == sorted({grams.hashes[4], grams.hashes[5], grams.hashes[6]})
    assert grams.covering(at - 2, at) == []  # the spaces alone: no word
    assert grams.covering(0, 1) == [grams.hashes[0]]
    counts = {grams.hashes[6]: 10}  # "Home Next The" recurs in ten pool pages
    assert in_template_ngram(grams, counts, 10, at, at + 4)
    assert not in_template_ngram(grams, counts, 10, text.index("otter"), text.index("otter") + 5)
    assert split_ngrams("two words", 3).hashes == []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["a", "b", "cd", "e1"]), min_size=0, max_size=30), st.integers(1, 7), st.data())
def test_covering_equals_the_ngrams_whose_words_overlap_the_span(words, n, data):
    text = " ".join(words)
    grams = split_ngrams(text, n)
    lo = data.draw(st.integers(0, len(text)))
    hi = data.draw(st.integers(lo, len(text)))
    spans, at = [], 0
    for w in words:
        spans.append((at, at + len(w)))
        at += len(w) + 1
    touched = [i for i, (a, b) in enumerate(spans) if a < hi and lo < b]
    want = {grams.hashes[g] for i in touched for g in range(max(0, i - n + 1), min(i, len(words) - n) + 1)}
    assert grams.covering(lo, hi) == sorted(want)


def test_a_labels_words_have_the_hash_of_the_lines_opening_up_to_them():
    a = "Library in use: Falsorzan\nWritten by: Kawick Peshushu\n"
    b = "Field log 2\nLibrary in use: Mirwickrro Tal\n"
    pa, pb = line_prefixes(a, 3), line_prefixes(b, 3)
    at = lambda text, word: (text.index(word), text.index(word) + len(word))  # noqa: E731
    for word in ("Library", "in", "use"):
        assert pa.of(*at(a, word)) == pb.of(*at(b, word)) is not None
    assert pa.of(*at(a, "Library")) != pa.of(*at(a, "in"))  # "Library" and "Library in" are two prefixes
    assert pa.of(*at(a, "Falsorzan")) is None  # the fourth word: beyond n
    assert pa.of(*at(a, "Written")) != pb.of(*at(b, "Field"))
    assert pa.of(a.index("\nWritten"), a.index("Written") + 3) == pa.of(*at(a, "Written"))  # "\nWri": its word
    assert len(pa.distinct()) == 6 and len(line_prefixes(a, 0).distinct()) == 0


@given(st.lists(st.lists(st.sampled_from(["Name", "Type", "the", "x1", "9"]), max_size=5), min_size=1, max_size=6),
       st.integers(1, 4))
def test_a_prefix_hash_depends_on_the_opening_words_alone(lines, n):
    text = "\n".join(" ".join(ws) for ws in lines)
    # the same lines in another order, spaced otherwise, each with more words after
    other = "\n".join("  ".join(ws) + " | tail more" for ws in reversed(lines))

    def per_line(hashes, counts):
        out, at = [], 0
        for c in counts:
            out.append(hashes[at : at + c])
            at += c
        return out

    mine = per_line(line_prefixes(text, n).hashes, [min(n, len(ws)) for ws in lines])
    theirs = per_line(line_prefixes(other, n).hashes, [min(n, len(ws) + 2) for ws in reversed(lines)])[::-1]
    for m, t in zip(mine, theirs, strict=True):
        assert m == t[: len(m)]  # equal opening words, equal hashes, whatever follows
        assert len(set(m)) == len(m)  # each longer opening is a prefix of its own
