"""Templates: lines that recur across many pool documents (navigation, footers, licence blocks), and
below the line, word n-grams and the opening words of lines (labels) that do.

A dependency whose anchor sits on such a line teaches a model to copy page chrome, not to use
distant knowledge. A line is identified by the hash of its whitespace-normalised text; a line is a
template once at least `min_docs` pool documents hold it (C4 and Gopher remove repeated lines the
same way, by exact line). The counts grow with the pool (stages/index.py records each pool
document's lines; services/line_store.py keeps them).
"""

from __future__ import annotations

import hashlib
import re
from bisect import bisect_right
from dataclasses import dataclass

_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"\w+")
NGRAM_WORDS = 6  # the grain below the line: word 6-grams


def normalize_line(line: str) -> str:
    return _SPACE.sub(" ", line).strip()


def line_hash(line: str) -> int:
    """A signed 64-bit hash of the normalised line (a Milvus INT64)."""
    return int.from_bytes(hashlib.blake2b(normalize_line(line).encode(), digest_size=8).digest(), "little",
                          signed=True)


@dataclass(frozen=True)
class Lines:
    """A text's non-blank lines: their start offsets, ends and hashes, in text order."""

    starts: list[int]
    ends: list[int]
    hashes: list[int]

    def hash_at(self, char: int) -> int | None:
        """The hash of the line holding character `char` (None: a blank line or beyond the text)."""
        i = bisect_right(self.starts, char) - 1
        return self.hashes[i] if i >= 0 and char < self.ends[i] else None

    def hash_of_token(self, char_start: int, char_end: int) -> int | None:
        """The line of a token, by its last character: a leading space or newline of the token
        belongs to no line of its own."""
        return self.hash_at(max(char_start, char_end - 1))

    def distinct(self) -> set[int]:
        return set(self.hashes)


def split_lines(text: str) -> Lines:
    starts, ends, hashes = [], [], []
    at = 0
    for raw in text.splitlines(keepends=True):
        body = raw.rstrip("\r\n")
        if body.strip():
            starts.append(at)
            ends.append(at + len(body))
            hashes.append(line_hash(body))
        at += len(raw)
    return Lines(starts, ends, hashes)


def template_spans(lines: Lines, counts: dict[int, int], min_docs: int) -> set[int]:
    """The hashes of the text's lines that at least min_docs pool documents hold."""
    return {h for h in lines.distinct() if counts.get(h, 0) >= min_docs}


@dataclass(frozen=True)
class Ngrams:
    """A text's word n-grams: the character span of each word, and the hash of the n-gram that starts
    at each word (len(words) - n + 1 of them; none in a text of fewer than n words)."""

    n: int
    word_starts: list[int]
    word_ends: list[int]
    hashes: list[int]

    def covering(self, char_start: int, char_end: int) -> list[int]:
        """The hashes of the n-grams holding a word that overlaps [char_start, char_end)."""
        first = bisect_right(self.word_ends, char_start)  # the first word ending after char_start
        out = []
        w = first
        while w < len(self.word_starts) and self.word_starts[w] < char_end:
            out += self.hashes[max(0, w - self.n + 1) : w + 1]
            w += 1
        return sorted(set(out))

    def distinct(self) -> set[int]:
        return set(self.hashes)


def split_ngrams(text: str, n: int = NGRAM_WORDS) -> Ngrams:
    """Word n-grams (words: runs of letters, digits and underscores, case kept) with their hashes,
    in a domain of their own (a one-line text of n words is not its line's hash)."""
    words = list(_WORD.finditer(text))
    tokens = [m.group() for m in words]
    hashes = [_words_hash("ngram", tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return Ngrams(n, [m.start() for m in words], [m.end() for m in words], hashes)


def _words_hash(domain: str, words: list[str]) -> int:
    data = (domain + "\x00" + "\x00".join(words)).encode()
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little", signed=True)


@dataclass(frozen=True)
class LinePrefixes:
    """Each line's opening words: a line's first k words (k <= n) have a hash (a domain of their own),
    and a word among a line's first n words is held by the prefix that ends with it."""

    n: int
    word_starts: list[int]  # every word within a line's first n words, in text order
    word_ends: list[int]
    hashes: list[int]  # of the prefix that ends with that word

    def of(self, char_start: int, char_end: int) -> int | None:
        """The hash of the prefix ending with the first word that overlaps [char_start, char_end); None:
        no such word among its line's first n words."""
        w = bisect_right(self.word_ends, char_start)
        return self.hashes[w] if w < len(self.word_starts) and self.word_starts[w] < char_end else None

    def distinct(self) -> set[int]:
        return set(self.hashes)


def line_prefixes(text: str, n: int) -> LinePrefixes:
    """The opening words of every line (a label such as "Library in use:" or a table's "Name" column that
    many pool documents open a line with, while the rest of each line differs)."""
    starts, ends, hashes = [], [], []
    at = 0
    for raw in text.splitlines(keepends=True):
        words = list(_WORD.finditer(raw))[:n]
        for k, m in enumerate(words):
            starts.append(at + m.start())
            ends.append(at + m.end())
            hashes.append(_words_hash("prefix", [w.group() for w in words[: k + 1]]))
        at += len(raw)
    return LinePrefixes(n, starts, ends, hashes)


def in_template_ngram(ngrams: Ngrams, counts: dict[int, int], min_docs: int, char_start: int, char_end: int) -> bool:
    """Does a token lie in a word n-gram that at least min_docs pool documents hold?"""
    return any(counts.get(h, 0) >= min_docs for h in ngrams.covering(char_start, char_end))
