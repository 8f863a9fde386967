from hypothesis import given, settings
from hypothesis import strategies as st

from entropylong_streamer.method.templates import (
    in_template_ngram,
    line_hash,
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
