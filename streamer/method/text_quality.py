"""Simple quality rules for web text (after Gopher's): the first rule a text breaks, or None."""

from __future__ import annotations

import re

_WORD = re.compile(r"\S+")
_ALPHA = re.compile(r"[^\W\d_]")


def quality_problem(text: str, min_words: int, max_words: int, min_mean_word_length: float,
                    max_mean_word_length: float, max_symbol_ratio: float, min_alpha_word_ratio: float,
                    max_duplicate_line_ratio: float) -> tuple[str, str] | None:
    """(rule, detail) of the first rule broken, in the order of the arguments."""
    words = _WORD.findall(text)
    n = len(words)
    if n < min_words:
        return "too_short", f"{n} words < {min_words}"
    if n > max_words:
        return "too_long", f"{n} words > {max_words}"
    mean = sum(len(w) for w in words) / n
    if not min_mean_word_length <= mean <= max_mean_word_length:
        return "mean_word_length", f"{mean:.1f} outside [{min_mean_word_length}, {max_mean_word_length}]"
    symbols = text.count("#") + text.count("...") + text.count("\u2026")
    if symbols / n > max_symbol_ratio:
        return "symbol_ratio", f"{symbols / n:.2f} symbols per word > {max_symbol_ratio}"
    alpha = sum(1 for w in words if _ALPHA.search(w))
    if alpha / n < min_alpha_word_ratio:
        return "alpha_word_ratio", f"{alpha / n:.2f} of words with a letter < {min_alpha_word_ratio}"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if len(lines) > 1:
        repeated = len(lines) - len(set(lines))
        if repeated / len(lines) > max_duplicate_line_ratio:
            return "duplicate_lines", f"{repeated / len(lines):.2f} of lines repeat > {max_duplicate_line_ratio}"
    return None
