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
    anchors: tuple[int, ...] = ()  # the document tokens it was accepted at (the anchors it resolves)


@dataclass(frozen=True)
class Dependency:
    """A verified (context, anchor) pair as the sample holds it: positions in the sample's tokens."""

    context_id: str
    anchor_index: int  # the anchor's token in the document
    anchor: int  # ... and in the sample
    context_start: int  # the context's first token (after its separator)
    context_end: int  # one past its last

    @property
    def from_end(self) -> int:
        """Tokens from the context's end to the anchor: how far the model must look back at least."""
        return self.anchor - self.context_end

    @property
    def from_start(self) -> int:
        return self.anchor - self.context_start


@dataclass(frozen=True)
class Sample:
    doc_id: str
    token_ids: tuple[int, ...]
    context_ids: tuple[str, ...]
    context_scores: tuple[float, ...] = ()  # the kept contexts' best dI, in context_ids order
    dependencies: tuple[Dependency, ...] = ()  # every accepted pair of a kept context, by position
    offered: int = 0  # verified contexts the document had; len(context_ids) of them fit
    source_id: str = ""  # the document's own id in its source (JSONL/Parquet id, WARC-Record-ID)
    url: str = ""
    rescore: str = ""  # the model version that asked for the document again (policy.rescore_last_shards)

    @property
    def key(self) -> str:
        return sample_key(self.doc_id, self.rescore)

    def __len__(self) -> int:
        return len(self.token_ids)


def sample_key(doc_id: str, rescore: str) -> str:
    """What the packer deduplicates by: the document, and the model version that asked for it again. Not the
    version that scored it: a batch that comes again after its worker moved to a newer version is the same
    sample, packed once."""
    return f"{doc_id}@{rescore}" if rescore else doc_id


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

    As many contexts as fit in max_len (pack.sample_tokens), chosen best first: highest dI, then
    the most anchors resolved; the document itself is never cut.
    """
    k = len(separator)
    if len(doc_tokens) + k > max_len:
        raise SampleTooLong(f"document of {len(doc_tokens)} tokens does not fit a {max_len}-token sequence")
    budget = max_len - len(doc_tokens) - k
    kept: list[Piece] = []
    for piece in sorted(contexts, key=lambda p: (-p.score, -len(p.anchors), p.piece_id)):
        if len(piece.token_ids) + k <= budget:
            kept.append(piece)
            budget -= len(piece.token_ids) + k
    kept.sort(key=lambda p: p.piece_id)
    random.Random(document_seed(doc_id, seed)).shuffle(kept)
    tokens: list[int] = []
    spans = []
    for piece in kept:
        tokens.extend(separator)
        spans.append((piece, len(tokens), len(tokens) + len(piece.token_ids)))
        tokens.extend(piece.token_ids)
    tokens.extend(separator)
    doc_start = len(tokens)
    tokens.extend(doc_tokens)
    deps = sorted((Dependency(p.piece_id, t, doc_start + t, start, end)
                   for p, start, end in spans for t in set(p.anchors)), key=lambda d: (d.anchor, d.context_start))
    return Sample(doc_id, tuple(tokens), tuple(p.piece_id for p in kept), tuple(p.score for p in kept),
                  tuple(deps), len(contexts))
