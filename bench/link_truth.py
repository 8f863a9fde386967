"""Hyperlinks as truth, and page chrome at two grains, for the real-documentation benches.

A body link from target page D to pool page B is a human-written statement that D depends on B
(bench/debian_docs.body_links: navigation links are chrome and do not count). Links are a subset
of the true dependencies: they compare criteria and retrieval, they are not the whole truth.

Chrome: an accepted pair whose anchor lies on a line, or in a word 6-gram, that at least
`min_docs` pool pages hold (counted exactly here, over the bench's pool).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from entropylong_streamer.method.templates import in_template_ngram, split_lines, split_ngrams
from entropylong_streamer.topics import DependenciesRecord


@dataclass(frozen=True)
class Page:
    doc_id: str
    name: str  # the HTML file's name: what links point at
    text: str
    links: tuple[tuple[int, int, str], ...] = ()  # (start, end, target page name) of each body link's text


class PoolCounts:
    """How many pool pages hold each line and each word 6-gram."""

    def __init__(self, pool_texts: list[str]) -> None:
        self.lines: Counter[int] = Counter()
        self.ngrams: Counter[int] = Counter()
        for text in pool_texts:
            self.lines.update(split_lines(text).distinct())
            self.ngrams.update(split_ngrams(text).distinct())

    def chrome(self, text: str, spans: list[tuple[int, int]], min_docs: int) -> list[tuple[bool, bool]]:
        """For each character span of the text: (on a template line, in a template 6-gram)."""
        lines, grams = split_lines(text), split_ngrams(text)
        return [(self.lines.get(lines.hash_of_token(a, b), 0) >= min_docs,
                 in_template_ngram(grams, self.ngrams, min_docs, a, b)) for a, b in spans]


def without_ngram_chrome(rec: DependenciesRecord, counts: PoolCounts, min_docs: int) -> DependenciesRecord:
    """The record as an n-gram template rule would leave it: pairs at anchors inside a word 6-gram that
    min_docs pool pages hold are template pairs, never accepted."""
    flags = counts.chrome(rec.text, [(p.char_start, p.char_end) for p in rec.pairs], min_docs)
    pairs = [p.model_copy(update={"accepted": p.accepted and not gram, "template": p.template or gram})
             for p, (_, gram) in zip(rec.pairs, flags, strict=True)]
    return rec.model_copy(update={"pairs": pairs})


@dataclass
class Truth:
    linked: int = 0  # (target, linked pool page) pairs
    retrieved: int = 0  # of those, the page came to verification as a context
    accepted: int = 0  # of those retrieved, at least one pair with it accepted
    link_anchors: int = 0  # anchors inside a link's text whose linked page was measured there
    link_anchors_resolved: int = 0  # of those, the linked page accepted at that anchor
    accepted_pairs: int = 0
    accepted_linked: int = 0  # accepted pairs whose context is a page the target links to
    chrome_line: int = 0  # accepted pairs anchored on a template line
    chrome_ngram: int = 0  # accepted pairs anchored in a template 6-gram

    def add(self, page: Page, rec: DependenciesRecord, by_name: dict[str, str], counts: PoolCounts,
            min_docs: int) -> None:
        linked = {by_name[t] for _, _, t in page.links if t in by_name}
        measured = {c.context_doc_id for c in rec.contexts}
        accepted = [p for p in rec.pairs if p.accepted]
        doc_of = {c.context_id: c.context_doc_id for c in rec.contexts}
        accepted_docs = {doc_of[p.context_id] for p in accepted}
        self.linked += len(linked)
        self.retrieved += len(linked & measured)
        self.accepted += len(linked & measured & accepted_docs)
        for a, b, target in page.links:
            doc = by_name.get(target)
            at = [p for p in rec.pairs if doc_of[p.context_id] == doc and p.char_start < b and a < p.char_end]
            anchors = {p.anchor_index for p in at}
            self.link_anchors += len(anchors)
            self.link_anchors_resolved += len({p.anchor_index for p in at if p.accepted})
        self.accepted_pairs += len(accepted)
        self.accepted_linked += sum(doc_of[p.context_id] in linked for p in accepted)
        for line, gram in counts.chrome(rec.text, [(p.char_start, p.char_end) for p in accepted], min_docs):
            self.chrome_line += line
            self.chrome_ngram += gram

    def cells(self) -> str:
        share = lambda a, b: f"{a / b:.0%}" if b else "-"  # noqa: E731
        return (f"{self.retrieved:>4}/{self.linked:<4}{share(self.retrieved, self.linked):>5}"
                f"{self.accepted:>6}/{self.retrieved:<4}{share(self.accepted, self.retrieved):>5}"
                f"{self.link_anchors_resolved:>6}/{self.link_anchors:<4}"
                f"{share(self.accepted_linked, self.accepted_pairs):>8}"
                f"{share(self.chrome_line, self.accepted_pairs):>7}{share(self.chrome_ngram, self.accepted_pairs):>7}")


HEADER = (f"{'retrieved/linked':>17}{'accepted/retr.':>17}{'link anchors':>12}{'->linked':>8}"
          f"{'line':>7}{'6-gram':>7}")
