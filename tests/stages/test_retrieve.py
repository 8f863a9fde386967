"""Retrieval stage with an in-memory pool (real Milvus runs in tests/integration)."""

import zlib

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from entropylong_streamer.method.near_dup import NearDuplicateRule
from entropylong_streamer.stages.retrieve import Hit, RetrievalStage, is_same_document
from entropylong_streamer.topics import Anchor, AnchorsRecord


class BagOfWordsEmbedder:
    """A bag of words in 64 buckets by crc32, so every process ranks alike (Python's str hash is salted
    per process: a ranking that rested on it was a draw, and CI drew a collision that put the wrong
    chunk first)."""

    def embed(self, texts):
        out = np.zeros((len(texts), 64), np.float32)
        for i, t in enumerate(texts):
            for w in t.lower().split():
                out[i, zlib.crc32(w.encode()) % 64] += 1
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


RULE = NearDuplicateRule()


class ListPool:
    """(chunk_id, doc_id, text) chunks; each chunk is its whole document here (its signature's text)."""

    def __init__(self, chunks, embedder):
        self.chunks = chunks
        self.vecs = embedder.embed([c[2] for c in chunks])
        self.sigs = [tuple(int(x) for x in RULE.signature(c[2])) for c in chunks]

    needs_vectors = True

    def search(self, queries, vectors, k, exclude_doc_id):
        assert len(queries) == len(vectors)
        out = []
        for v in vectors:
            order = np.argsort(-(self.vecs @ v))
            hits = [Hit(*self.chunks[i], float(self.vecs[i] @ v), self.sigs[i]) for i in order
                    if self.chunks[i][1] != exclude_doc_id]
            out.append(hits[:k])
        return out


DOC = "the river otter builds a den near water and eats fish every morning in the cold lake region"


def record(anchors):
    n = 32  # stand-in tokens: retrieval reads only the text and the anchors' queries
    return AnchorsRecord(doc_id="d", text=DOC, token_ids=[1] * n, token_offsets=[(0, 1)] * n, config_version="v",
                         anchors=[Anchor(index=i, char_start=0, char_end=1, entropy=3.0, nll=3.0, query=q)
                                  for i, q in anchors])


def test_the_leakage_guard_is_the_doors_near_duplicate_rule():
    sig = RULE.signature(DOC)

    def hit(doc_id, text):
        return Hit(f"{doc_id}:0", doc_id, text, 1.0, tuple(int(x) for x in RULE.signature(text)))

    assert is_same_document("d", sig, hit("d", "any chunk of the document itself"), RULE)
    assert is_same_document("d", sig, hit("copy", "mirror: " + DOC), RULE)  # a near duplicate, another id
    assert not is_same_document("d", sig, hit("a", "sea otters float on their backs and use rocks as tools"), RULE)
    assert not is_same_document("d", sig, Hit("x:0", "x", DOC, 1.0), RULE)  # no signature: only the id decides


def test_never_returns_the_document_or_a_copy_and_dedups_across_anchors():
    emb = BagOfWordsEmbedder()
    pool = ListPool([
        ("d:0", "d", DOC),  # the document itself
        ("copy:0", "copy", "mirror: " + DOC),  # a near-duplicate under another id
        ("a:0", "a", "otters eat fish and crabs; an otter den is called a holt"),
        ("b:0", "b", "cold lake region weather in the morning is foggy"),
    ], emb)
    stage = RetrievalStage(emb, pool, top_k=2, rule=RULE, config_version="v2")
    res = stage.process([record([(5, "otter den fish"), (9, "otter eats fish")])])
    (out,) = res.outputs
    ids = [c.context_id for c in out.candidates]
    assert "d:0" not in ids and "copy:0" not in ids
    assert len(ids) == len(set(ids))
    a = next(c for c in out.candidates if c.context_id == "a:0")
    assert a.anchor_indices == [5, 9]
    assert stage.stats["leaks_excluded"] >= 1


def test_a_follower_is_measured_against_what_its_leaders_query_found():
    emb = BagOfWordsEmbedder()
    pool = ListPool([("a:0", "a", "otters eat fish and crabs"), ("b:0", "b", "cold lake weather is foggy")], emb)
    rec = record([(4, "otter fish"), (6, "")])
    rec = rec.model_copy(update={"anchors": [rec.anchors[0], rec.anchors[1].model_copy(update={"leader": 4})]})
    stage = RetrievalStage(emb, pool, top_k=1, rule=RULE, config_version="v")
    (out,) = stage.process([rec]).outputs
    assert stage.stats["queries"] == 1 and stage.stats["pairs"] == 2
    (cand,) = out.candidates
    assert cand.context_id == "a:0" and cand.anchor_indices == [4, 6]


def test_anchors_on_lines_many_pool_documents_hold_are_templates_and_query_nothing():
    from memory_stores import MemoryLineStore

    from entropylong_streamer.method.templates import split_lines

    text = "Home | Docs | Report a Bug\nthe otter eats fish every morning"
    emb = CountingEmbedder()
    pool = ListPool([("a:0", "a", "otters eat fish and crabs"), ("b:0", "b", "Home | Docs | Report a Bug")], emb)
    lines = MemoryLineStore()
    nav = split_lines(text).hashes[0]
    for i in range(10):
        lines.add(f"page{i}", [nav])
    n = 16
    nav_anchor = Anchor(index=2, char_start=5, char_end=9, entropy=3.0, nll=3.0, query="Home | Docs")
    fact_anchor = Anchor(index=12, char_start=32, char_end=37, entropy=3.0, nll=3.0, query="otter eats fish")
    rec = AnchorsRecord(doc_id="d", text=text, token_ids=[1] * n, token_offsets=[(0, 1)] * n,
                        config_version="v", anchors=[nav_anchor, fact_anchor])
    stage = RetrievalStage(emb, pool, top_k=2, rule=RULE, config_version="v", lines=lines, template_min_docs=10)
    (out,) = stage.process([rec]).outputs
    assert [a.template for a in out.anchors.anchors] == [True, False]
    assert stage.stats["queries"] == 1 and stage.stats["template_anchors"] == 1
    assert all(c.anchor_indices == [12] for c in out.candidates)
    nine = RetrievalStage(emb, pool, top_k=2, rule=RULE, config_version="v", lines=lines, template_min_docs=11)
    (out,) = nine.process([rec]).outputs
    assert not any(a.template for a in out.anchors.anchors)  # 10 documents are not 11


def test_anchors_inside_word_ngrams_many_pool_documents_hold_are_templates_below_the_line():
    """A navigation bar whose title changes per chapter: no line recurs, its n-grams do."""
    from memory_stores import MemoryLineStore, MemoryNgramStore

    from entropylong_streamer.stages.index import IndexStage
    from entropylong_streamer.topics import Doc

    def bar(title):
        return f"Prev Up Home Next {title} Search Docs\n"

    pool_pages = [(f"p{i}", bar(f"Chapter {i} on topic {i}") + f"page {i} text about thing {i}") for i in range(12)]
    text = bar("Chapter 40 Indexes") + "the otter eats fish every morning"
    emb = CountingEmbedder()
    pool = ListPool([("a:0", "a", "otters eat fish and crabs")], emb)
    lines, ngrams = MemoryLineStore(), MemoryNgramStore()
    chunks = []
    sink = type("Sink", (), {"upsert": lambda self, cs: chunks.extend(cs)})()
    index = IndexStage(tokenizer=WordTokenizer(), sink=sink, size=64, overlap=8, lines=lines, ngrams=ngrams,
                       ngram_words=3)
    index.process([Doc(doc_id=d, text=t) for d, t in pool_pages])
    index.process([Doc(doc_id=d, text=t) for d, t in pool_pages[:3]])  # a replay counts nothing again
    nav_anchor = Anchor(index=2, char_start=text.index("Home") - 1, char_end=text.index("Home") + 4, entropy=3.0,
                        nll=3.0, query="Prev Up Home")
    fact_anchor = Anchor(index=12, char_start=text.index("otter") - 1, char_end=text.index("otter") + 5, entropy=3.0,
                         nll=3.0, query="otter eats fish")
    n = 16
    rec = AnchorsRecord(doc_id="d", text=text, token_ids=[1] * n, token_offsets=[(0, 1)] * n,
                        config_version="v", anchors=[nav_anchor, fact_anchor])
    kw = dict(top_k=2, rule=RULE, config_version="v", lines=lines, template_min_docs=12)
    line_only = RetrievalStage(emb, pool, **kw)
    (out,) = line_only.process([rec]).outputs
    assert not any(a.template for a in out.anchors.anchors)  # every page's bar line is its own
    stage = RetrievalStage(emb, pool, **kw, ngrams=ngrams, ngram_words=3)
    (out,) = stage.process([rec]).outputs
    assert [a.template for a in out.anchors.anchors] == [True, False]
    assert stage.stats["template_anchors_ngram"] == 1 and stage.stats["template_anchors_line"] == 0
    assert stage.stats["queries"] == 1 and all(c.anchor_indices == [12] for c in out.candidates)
    thirteen = RetrievalStage(emb, pool, **{**kw, "template_min_docs": 13}, ngrams=ngrams, ngram_words=3)
    (out,) = thirteen.process([rec]).outputs
    assert not any(a.template for a in out.anchors.anchors)  # 12 pages (the replay added none) are not 13


def test_anchors_on_a_label_many_pool_documents_open_a_line_with_are_templates():
    """A label ("Library in use: <name>"): no line recurs, the line's opening words do; the name does not."""
    from memory_stores import MemoryLineStore

    from entropylong_streamer.stages.index import IndexStage
    from entropylong_streamer.topics import Doc

    pool_pages = [(f"p{i}", f"Field log {i}\nLibrary in use: Lib{i}\nthe otter {i}") for i in range(12)]
    text = "Field log 40\nLibrary in use: Falsorzan\nthe otter eats fish"
    emb = CountingEmbedder()
    pool = ListPool([("a:0", "a", "Falsorzan is a library")], emb)
    lines = MemoryLineStore()
    sink = type("Sink", (), {"upsert": lambda self, cs: None})()
    index = IndexStage(tokenizer=WordTokenizer(), sink=sink, size=64, overlap=8, lines=lines, prefix_words=3)
    index.process([Doc(doc_id=d, text=t) for d, t in pool_pages])
    index.process([Doc(doc_id=d, text=t) for d, t in pool_pages[:3]])  # a replay counts nothing again

    def anchor(index, word):
        at = text.index(word)
        return Anchor(index=index, char_start=at - 1, char_end=at + len(word), entropy=3.0, nll=3.0, query=word)

    n = 16
    rec = AnchorsRecord(doc_id="d", text=text, token_ids=[1] * n, token_offsets=[(0, 1)] * n, config_version="v",
                        anchors=[anchor(4, "Library"), anchor(6, "use"), anchor(8, "Falsorzan")])
    kw = dict(top_k=2, rule=RULE, config_version="v", lines=lines, template_min_docs=12)
    (out,) = RetrievalStage(emb, pool, **kw).process([rec]).outputs
    assert not any(a.template for a in out.anchors.anchors)  # every page's label line is its own
    stage = RetrievalStage(emb, pool, **kw, prefix_words=3)
    (out,) = stage.process([rec]).outputs
    assert [a.template for a in out.anchors.anchors] == [True, True, False]  # "Falsorzan": the fourth word
    assert stage.stats["template_anchors_prefix"] == 2 and stage.stats["template_anchors_line"] == 0
    assert all(c.anchor_indices == [8] for c in out.candidates)
    thirteen = RetrievalStage(emb, pool, **{**kw, "template_min_docs": 13}, prefix_words=3)
    (out,) = thirteen.process([rec]).outputs
    assert not any(a.template for a in out.anchors.anchors)  # 12 pages (the replay added none) are not 13


def test_a_document_without_anchors_passes_with_no_candidates():
    emb = BagOfWordsEmbedder()
    stage = RetrievalStage(emb, ListPool([("a:0", "a", "x y")], emb), 2, RULE, "v")
    (out,) = stage.process([record([])]).outputs
    assert out.candidates == []


class CountingEmbedder(BagOfWordsEmbedder):
    calls = 0

    def embed(self, texts):
        self.calls += 1
        return super().embed(texts)


def test_a_batch_embeds_every_query_window_in_one_call_and_matches_one_by_one():
    emb = CountingEmbedder()
    pool = ListPool([("a:0", "a", "otters eat fish and crabs"), ("b:0", "b", "cold lake weather is foggy"),
                     ("c:0", "c", "a den near water")], emb)
    records = [record([(1, "otter fish"), (4, "lake weather")]), record([]), record([(2, "den water")])]
    batched = RetrievalStage(emb, pool, 2, RULE, "v")
    calls = emb.calls
    together = batched.process(records).outputs
    assert emb.calls - calls == 1 and batched.stats["queries"] == 3
    alone = [RetrievalStage(emb, pool, 2, RULE, "v").process([r]).outputs[0] for r in records]
    assert [o.candidates for o in together] == [o.candidates for o in alone]


class WordTokenizer:
    """One token per word, with its characters: the LM tokenizer's part in cutting context windows."""

    def tokenize(self, text):
        import re

        from entropylong_streamer.services.lm import Tokenized

        words = list(re.finditer(r"\S+", text))
        return Tokenized([len(m.group()) for m in words], [m.span() for m in words])

    def tokenize_many(self, texts):
        return [self.tokenize(t) for t in texts]


def _document_stage(pool_docs, emb, top_k=2, max_tokens=64, cap=None, max_contexts=64, rounds=1):
    from memory_stores import MemoryDocStore

    from entropylong_streamer.method.context_window import PairLayout
    from entropylong_streamer.stages.retrieve import DocumentContexts

    store = MemoryDocStore()
    store.put(pool_docs)
    chunks = []
    for doc_id, text in pool_docs.items():  # 6-word chunks, as the indexer cuts them
        words = text.split()
        chunks += [(f"{doc_id}:{i}", doc_id, " ".join(words[j : j + 6])) for i, j in enumerate(range(0, len(words), 6))]
    docs = DocumentContexts(store, WordTokenizer(), PairLayout((0,), max_tokens), max_context_tokens=cap,
                            max_contexts=max_contexts)
    return RetrievalStage(emb, ListPool(chunks, emb), top_k, RULE, "v", documents=docs, rounds=rounds)


FILLER = " ".join(f"w{i}" for i in range(60))


def test_a_context_is_the_pool_document_cut_around_the_chunks_its_anchors_retrieved():
    emb = BagOfWordsEmbedder()
    manual = f"{FILLER} otters eat fish and crabs daily {FILLER} cold lake weather is foggy today {FILLER}"
    stage = _document_stage({"manual": manual, "short": "a den near water is a holt"}, emb, top_k=1,
                            max_tokens=32 + 2 + 9 + 1)
    rec = record([(4, "otters eat fish crabs"), (9, "cold lake weather foggy")])
    (out,) = stage.process([rec]).outputs
    (cand,) = [c for c in out.candidates if c.context_doc_id == "manual"]
    assert cand.context_id == "manual" and cand.anchor_indices == [4, 9]  # one context for both anchors
    # room: 44 - (9 + 1) - 2 separators = 32 words; the two retrieved chunks are 70 words apart, so
    # the window holds one of them whole, centred, never the document's head
    assert len(cand.text.split()) == 32 and not cand.text.startswith("w0 ")
    (a, b), = cand.spans
    assert cand.text[a:b] in ("otters eat fish and crabs daily", "cold lake weather is foggy today")
    assert stage.stats["contexts_cut"] == 1


def test_top_k_counts_documents_and_max_contexts_keeps_the_most_retrieved():
    emb = BagOfWordsEmbedder()
    pool = {"a": "otter fish otter fish otter fish lake lake fish otter", "b": "otter fish den",
            "c": "lake weather fog", "d": "lake weather rain"}
    rec = record([(1, "otter fish"), (2, "otter fish lake"), (3, "lake weather")])
    (out,) = _document_stage(pool, emb, top_k=2).process([rec]).outputs
    for anchor in (1, 2, 3):
        assert len({c.context_doc_id for c in out.candidates if anchor in c.anchor_indices}) == 2
    assert all(c.context_id == c.context_doc_id and c.text == pool[c.context_id] for c in out.candidates)
    capped = _document_stage(pool, emb, top_k=2, max_contexts=1)
    (one,) = capped.process([rec]).outputs
    most = max(out.candidates, key=lambda c: (len(c.anchor_indices), c.score))
    assert [c.context_id for c in one.candidates] == [most.context_id]
    assert capped.stats["contexts_capped"] == len(out.candidates) - 1


def test_rounds_retrieve_each_anchors_next_top_k_documents_as_later_rounds():
    emb = BagOfWordsEmbedder()
    pool = {"a": "otter fish otter fish otter fish lake lake fish otter", "b": "otter fish den",
            "c": "lake weather fog", "d": "lake weather rain", "e": "otter lake weather"}
    rec = record([(1, "otter fish"), (2, "otter fish lake"), (3, "lake weather")])
    (one,) = _document_stage(pool, emb, top_k=2).process([rec]).outputs
    assert all(c.anchor_rounds == [] for c in one.candidates)  # one round: the record is as before
    three = _document_stage(pool, emb, top_k=2, rounds=3)
    (out,) = three.process([rec]).outputs
    first = {(c.context_id, t) for c in one.candidates for t in c.anchor_indices}
    for anchor in (1, 2, 3):
        mine = {c.context_id: c.rounds()[anchor] for c in out.candidates if anchor in c.anchor_indices}
        assert sorted(mine.values()) == [1, 1, 2, 2, 3][: len(mine)] and len(mine) >= 4  # top_k per round, distinct
        assert {ctx for ctx, r in mine.items() if r == 1} == {ctx for ctx, t in first if t == anchor}
    assert three.stats["pairs"] == len(first) and three.stats["reserve_pairs"] == sum(
        len(c.anchor_indices) for c in out.candidates) - len(first)
    # max_contexts holds in each round
    (kept,) = _document_stage(pool, emb, top_k=2, rounds=3, max_contexts=1).process([rec]).outputs
    firsts = sorted(min(c.rounds().values()) for c in kept.candidates)
    assert firsts == sorted(set(firsts)) and firsts[0] == 1


def test_a_round_one_that_finds_fewer_than_top_k_documents_is_the_same_with_more_rounds():
    """Round 1 reads an anchor's first top_k x overfetch hits whatever the rounds: here they hold two
    documents (one page's many chunks come first); the third, found further down, is round 2's."""
    pool = {"p0": " ".join(["otter"] * 18 + ["w0"]), "p1": " ".join(["otter"] * 30 + ["w1"]), "p2": "otter otter w2"}
    rec, emb = record([(1, "otter")]), BagOfWordsEmbedder()  # p0's and p1's chunks rank above p2's
    (one,) = _document_stage(pool, emb, 3, max_tokens=20, max_contexts=3).process([rec]).outputs
    (two,) = _document_stage(pool, emb, 3, max_tokens=20, max_contexts=3, rounds=2).process([rec]).outputs
    assert [c.context_id for c in one.candidates] == ["p0", "p1"]
    assert {c.context_id: c.rounds()[1] for c in two.candidates} == {"p0": 1, "p1": 1, "p2": 2}


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_more_rounds_only_add_later_pairs_and_leave_round_one_as_it_was(data):
    vocab = ["otter", "fish", "lake", "den", "weather", "fog", "rain", "crab", "holt", "water"]
    pages = data.draw(st.lists(st.lists(st.sampled_from(vocab), min_size=3, max_size=60), min_size=2, max_size=8))
    pool = {f"p{i}": " ".join([*words, f"w{i}"]) for i, words in enumerate(pages)}
    queries = data.draw(st.lists(st.lists(st.sampled_from(vocab), min_size=1, max_size=4), min_size=1, max_size=4))
    rec = record([(3 * i + 1, " ".join(q)) for i, q in enumerate(queries)])
    top_k, rounds = data.draw(st.integers(1, 3)), data.draw(st.integers(2, 3))
    shape = {"max_tokens": data.draw(st.integers(20, 60)), "max_contexts": data.draw(st.integers(1, 8))}
    emb = BagOfWordsEmbedder()
    (one,) = _document_stage(pool, emb, top_k, **shape).process([rec]).outputs
    (many,) = _document_stage(pool, emb, top_k, rounds=rounds, **shape).process([rec]).outputs
    first = [(c.context_id, c.text, c.spans, c.score, [t for t, r in c.rounds().items() if r == 1])
             for c in many.candidates if min(c.rounds().values()) == 1]
    assert first == [(c.context_id, c.text, c.spans, c.score, c.anchor_indices) for c in one.candidates]
    assert all(r <= rounds for c in many.candidates for r in c.rounds().values())


def test_a_lexical_pool_is_searched_by_the_query_words_and_nothing_is_embedded(tmp_path):
    from entropylong_streamer.services.pool import MilvusPool
    from entropylong_streamer.stages.index import Chunk

    pool = MilvusPool(str(tmp_path / "pool.db"), "c", None, 0, mode="lexical")
    texts = {"a": "otters eat fish and crabs; an otter den is called a holt",
             "b": "cold lake region weather in the morning is foggy", "d": DOC}
    pool.upsert([Chunk(chunk_id=f"{d}:0", doc_id=d, text=t, doc_signature=tuple(int(x) for x in RULE.signature(t)))
                 for d, t in texts.items()])
    pool.flush()
    stage = RetrievalStage(None, pool, top_k=1, rule=RULE, config_version="v")
    (out,) = stage.process([record([(5, "what is an otter holt"), (9, "foggy lake weather")])]).outputs
    assert stage.stats["queries"] == 2
    assert {c.context_doc_id: c.anchor_indices for c in out.candidates} == {"a": [5], "b": [9]}
