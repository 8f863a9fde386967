"""Training samples [sep C_pi(1) sep C_pi(2) ... sep D], pieces tokenised separately.

sep is the separator's token ids (one id such as end-of-text, or a text such as "\n\n" tokenised
once): exactly what verification put between a context and the document."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Piece:
    piece_id: str
    token_ids: tuple[int, ...]
    score: float = 0.0  # best dI of the context; decides which contexts stay when space is short


@dataclass(frozen=True)
class Sample:
    doc_id: str
    token_ids: tuple[int, ...]
    context_ids: tuple[str, ...]
    context_scores: tuple[float, ...] = ()  # the kept contexts' best dI, in context_ids order

    def __len__(self) -> int:
        return len(self.token_ids)


class SampleTooLong(ValueError):
    pass


def separator_ids(separator: int | str, tokenize: Callable[[str], list[int]]) -> tuple[int, ...]:
    """The configured separator as token ids: an id as it is, a text as the tokenizer splits it."""
    if isinstance(separator, int):
        return (separator,)
    ids = tuple(tokenize(separator))
    if not ids:
        raise ValueError(f"the separator text {separator!r} tokenises to no token")
    return ids


def document_seed(doc_id: str, seed: int) -> int:
    """A per-document seed independent of Python's hash randomisation: a replay rebuilds the sample."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{doc_id}".encode()).digest()[:8], "little")


def build_sample(
    doc_id: str,
    doc_tokens: tuple[int, ...],
    contexts: list[Piece],
    separator: tuple[int, ...],
    seed: int,
    max_len: int,
) -> Sample:
    """Contexts in a seeded random order, then the document; each piece starts with the separator.

    When the whole does not fit in max_len, the contexts with the lowest score go first; the
    document itself is never cut.
    """
    k = len(separator)
    if len(doc_tokens) + k > max_len:
        raise SampleTooLong(f"document of {len(doc_tokens)} tokens does not fit a {max_len}-token sequence")
    budget = max_len - len(doc_tokens) - k
    kept: list[Piece] = []
    for piece in sorted(contexts, key=lambda p: (-p.score, p.piece_id)):
        if len(piece.token_ids) + k <= budget:
            kept.append(piece)
            budget -= len(piece.token_ids) + k
    kept.sort(key=lambda p: p.piece_id)
    random.Random(document_seed(doc_id, seed)).shuffle(kept)
    tokens: list[int] = []
    for piece in kept:
        tokens.extend(separator)
        tokens.extend(piece.token_ids)
    tokens.extend(separator)
    tokens.extend(doc_tokens)
    return Sample(doc_id, tuple(tokens), tuple(p.piece_id for p in kept), tuple(p.score for p in kept))
