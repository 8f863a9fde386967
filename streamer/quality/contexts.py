"""The three contexts a document is measured with, on the same token budget.

verified:   the sample as the packer wrote it ([sep C_pi(1) ... sep C_pi(m)], accepted contexts only);
unverified: every retrieved candidate of the document, no dI filter (similarity only);
random:     chunks drawn at random from the retrieval pool (plain concatenation).
Each is what precedes the document's own separator; the two baselines are cut to the verified
prefix's length (from the left, so their last piece ends where the document starts).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from entropylong_streamer.method.samples import document_seed
from entropylong_streamer.topics import DependenciesRecord

CONDITIONS = ("verified", "unverified", "random")


class ShardMismatch(ValueError):
    """A shard's sample does not end with its document's tokens: the records and shards disagree."""


@dataclass(frozen=True)
class PoolChunk:
    doc_id: str
    token_ids: tuple[int, ...]


@dataclass(frozen=True)
class Prefixes:
    doc_id: str
    doc: tuple[int, ...]
    anchors: tuple[int, ...]  # document positions the entropy stage flagged (every measured anchor)
    verified: tuple[int, ...]
    unverified: tuple[int, ...]
    random: tuple[int, ...]

    def of(self, condition: str) -> tuple[int, ...]:
        return getattr(self, condition)


def verified_prefix(sample: Sequence[int], doc: Sequence[int], separator: tuple[int, ...]) -> tuple[int, ...]:
    """What precedes [sep D] in a packed sample."""
    n = len(doc) + len(separator)
    if len(sample) < n or tuple(sample[-n:]) != (*separator, *doc):
        raise ShardMismatch("the sample does not end with [separator, document tokens]")
    return tuple(sample[:-n])


def joined(pieces: Sequence[Sequence[int]], separator: tuple[int, ...], budget: int) -> tuple[int, ...]:
    """[sep P1 sep P2 ...], its last `budget` tokens (all of it when shorter)."""
    out: list[int] = []
    for p in pieces:
        out.extend(separator)
        out.extend(p)
    return tuple(out[len(out) - budget:]) if budget < len(out) else tuple(out)


def unverified_prefix(rec: DependenciesRecord, separator: tuple[int, ...], seed: int, budget: int) -> tuple[int, ...]:
    """Every candidate of the record in the packer's seeded order, as the similarity-only ablation."""
    pieces = sorted(rec.contexts, key=lambda c: c.context_id)
    random.Random(document_seed(rec.doc_id, seed)).shuffle(pieces)
    return joined([c.token_ids for c in pieces], separator, budget)


def random_prefix(doc_id: str, pool: Sequence[PoolChunk], separator: tuple[int, ...], seed: int,
                  budget: int) -> tuple[int, ...]:
    """Pool chunks of other documents, drawn without repeats in a per-document seeded order, until
    the budget is covered (fewer when the pool runs out)."""
    order = list(range(len(pool)))
    random.Random(document_seed(doc_id, seed + 1)).shuffle(order)
    pieces: list[tuple[int, ...]] = []
    covered = 0
    for i in order:
        if covered >= budget:
            break
        chunk = pool[i]
        if chunk.doc_id == doc_id or not chunk.token_ids:
            continue
        pieces.append(chunk.token_ids)
        covered += len(chunk.token_ids) + len(separator)
    return joined(pieces, separator, budget)


def prefixes(rec: DependenciesRecord, sample: Sequence[int], pool: Sequence[PoolChunk],
             separator: tuple[int, ...], seed: int) -> Prefixes:
    verified = verified_prefix(sample, rec.token_ids, separator)
    budget = len(verified)
    return Prefixes(
        doc_id=rec.doc_id, doc=tuple(rec.token_ids),
        anchors=tuple(sorted({p.anchor_index for p in rec.pairs})),
        verified=verified,
        unverified=unverified_prefix(rec, separator, seed, budget) if budget else (),
        random=random_prefix(rec.doc_id, pool, separator, seed, budget) if budget else (),
    )
