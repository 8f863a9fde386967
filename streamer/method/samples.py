"""Training samples [sep C_pi(1) sep C_pi(2) ... sep D], pieces tokenised separately.

sep is the separator's token ids (one id such as end-of-text, or a text such as "\n\n" tokenised
once): exactly what verification put between a context and the document."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass

from .context_window import PairLayout
from .hops import Node, Verified, best_first, grow


@dataclass(frozen=True)
class Piece:
    piece_id: str
    token_ids: tuple[int, ...]
    score: float = 0.0  # best dI of the context; decides which contexts stay when space is short
    anchors: tuple[int, ...] = ()  # the document tokens it was accepted at (the anchors it resolves)
    doc_id: str = ""  # the document it is cut from, where that is not piece_id (retrieval.context "chunk")

    @property
    def source_doc(self) -> str:
        return self.doc_id or self.piece_id


@dataclass(frozen=True)
class Dependency:
    """A verified (context, anchor) pair as the sample holds it: positions in the sample's tokens."""

    context_id: str
    anchor_index: int  # the anchor's token in the document (in target_id's, for a deeper one)
    anchor: int  # ... and in the sample
    context_start: int  # the context's first token (after its separator)
    context_end: int  # one past its last
    target_id: str = ""  # the document whose anchor it resolves (anchor_index is in its tokens); "": the sample's
    depth: int = 1  # 1: a context of the document; 2: a context of one of those; ...

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
    offered: int = 0  # verified contexts the document had; `direct` of them fit
    source_id: str = ""  # the document's own id in its source (JSONL/Parquet id, WARC-Record-ID)
    url: str = ""
    rescore: str = ""  # the model version that asked for the document again (policy.rescore_last_shards)
    context_depths: tuple[int, ...] = ()  # each context's depth, in context_ids order (1: the document's own)
    context_spans: tuple[tuple[int, int], ...] = ()  # each context's [start, end) tokens, in context_ids order

    @property
    def direct(self) -> int:
        """The document's own verified contexts the sample holds (depth 1)."""
        return sum(d == 1 for d in self.context_depths) if self.context_depths else len(self.context_ids)

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
    known: Callable[[str], Verified | None] | None = None,
    depth: int = 1,
) -> Sample:
    """Contexts in a seeded random order, then the document; each piece starts with the separator.

    As many contexts as fit in max_len (pack.sample_tokens), chosen best first: highest dI, then
    the most anchors resolved; the document itself is never cut. With `known` (what is known of the
    documents the contexts are cut from) and depth > 1, the room left takes, level by level, the
    verified contexts of the pieces already in (method/hops.py), no document twice. The deepest level
    comes first, each level in its own seeded order, so every piece stands before the piece it
    resolves, with the rest of its level and the level after it between them (a dependency as far
    back as the sample allows, not beside its target); depth 1 is the sample without them.
    """
    layout = PairLayout(separator, max_len)
    k = len(separator)
    if layout.cost(len(doc_tokens)) > max_len:
        raise SampleTooLong(f"document of {len(doc_tokens)} tokens does not fit a {max_len}-token sequence")
    budget = max_len - layout.cost(len(doc_tokens))
    roots: list[Node] = []
    for piece in sorted(contexts, key=best_first):
        if layout.cost(len(piece.token_ids)) <= budget:
            roots.append(Node(piece, 1))
            budget -= layout.cost(len(piece.token_ids))
    levels = [roots] if roots else []
    if known is not None and depth > 1:
        levels += grow(roots, doc_id, known, depth, budget, layout.cost)
    tokens: list[int] = []
    placed: list[tuple[Node, int, int]] = []
    for level in reversed(levels):
        nodes = sorted(level, key=lambda n: n.piece.piece_id)
        key = doc_id if nodes[0].depth == 1 else f"{doc_id}/{nodes[0].depth}"
        random.Random(document_seed(key, seed)).shuffle(nodes)
        for node in nodes:
            start = len(tokens) + k
            tokens += layout.piece(node.piece.token_ids)
            placed.append((node, start, len(tokens)))
    doc_start = len(tokens) + k
    tokens += layout.piece(doc_tokens)
    start_of = {id(node): start for node, start, _ in placed}
    deps = []
    for node, start, end in placed:
        if node.parent is None:  # it resolves anchors of the document: anchor indices in doc_tokens
            deps += [Dependency(node.piece.piece_id, t, doc_start + t, start, end) for t in set(node.piece.anchors)]
        else:  # anchors of the piece it was verified for, as indices in that piece's document
            at = start_of[id(node.parent)] - node.parent_offset
            deps += [Dependency(node.piece.piece_id, t, at + t, start, end, node.parent.piece.source_doc, node.depth)
                     for t in set(node.piece.anchors)]
    deps.sort(key=lambda d: (d.anchor, d.context_start))
    pieces = [node.piece for node, _, _ in placed]
    return Sample(doc_id, tuple(tokens), tuple(p.piece_id for p in pieces), tuple(p.score for p in pieces),
                  tuple(deps), len(contexts), context_depths=tuple(node.depth for node, _, _ in placed),
                  context_spans=tuple((start, end) for _, start, end in placed))
