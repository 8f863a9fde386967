"""The constructed catalogue corpus keeps its promises: one source per fact, lookalikes, near copies."""

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from bench.corpora.lookalike_corpus import catalogue_corpus
from entropylong_streamer.method.near_dup import NearDuplicateRule


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 24), st.integers(1, 4), st.integers(3, 5), st.integers(0, 1000))
def test_every_fact_has_exactly_one_source_and_lookalikes(docs, per_doc, lookalikes, seed):
    c = catalogue_corpus(docs, per_doc, lookalikes, seed)
    entries = {e.entry_id: e for e in c.entries}
    pool_texts = [t for _, t in c.pool()]
    for doc in c.docs:
        assert doc.facts and len({f.source_id for f in doc.facts}) == min(per_doc, 4)
        for f in doc.facts:
            value = doc.text[f.char_start : f.char_end]
            assert doc.text[f.char_start - 2 : f.char_start] == ": " and doc.text[f.char_end] == "\n"
            assert value in entries[f.source_id].values
            # the value is stated by its source and by no other pool document but the doc's own near copy
            holders = [t for t in pool_texts if f": {value}\n" in t]
            assert len(holders) == 2 and entries[f.source_id].text in holders
    kinds = Counter(e.kind for e in c.entries)
    cited = Counter(e.kind for e in c.entries if any(f.source_id == e.entry_id for d in c.docs for f in d.facts))
    assert all(kinds[k] - 1 >= lookalikes for k in cited)  # >= `lookalikes` same-template entries per source


def test_near_copies_are_the_same_document_by_the_doors_rule():
    rule = NearDuplicateRule()
    c = catalogue_corpus(16)
    for doc, (_, copy) in zip(c.docs, c.near_copies, strict=True):
        assert copy != doc.text and rule.same(rule.signature(doc.text), rule.signature(copy))
