from hypothesis import given, settings
from hypothesis import strategies as st

from entropylong_streamer.method.packing import pack
from entropylong_streamer.method.samples import Piece, Sample, SampleTooLong, build_sample

SEP = 0


def test_sample_starts_with_separator_and_ends_with_the_whole_document():
    pieces = [Piece("a", (5, 6), 0.5), Piece("b", (7,), 0.9)]
    s = build_sample("d", (1, 2, 3), pieces, (SEP,), seed=0, max_len=100)
    assert s.token_ids[0] == SEP and s.token_ids[-4:] == (SEP, 1, 2, 3)
    assert sorted(s.context_ids) == ["a", "b"] and len(s) == (1 + 2) + (1 + 1) + (1 + 3)


def test_permutation_is_seeded_per_document():
    pieces = [Piece(str(i), (i + 10,), 1.0) for i in range(8)]
    a = build_sample("doc", (1,), pieces, (SEP,), seed=3, max_len=100)
    assert a == build_sample("doc", (1,), list(reversed(pieces)), (SEP,), seed=3, max_len=100)
    others = {build_sample(f"doc{i}", (1,), pieces, (SEP,), seed=3, max_len=100).context_ids for i in range(5)}
    assert len(others) > 1


def test_low_score_contexts_leave_first_and_the_document_is_never_cut():
    pieces = [Piece("lo", (9,) * 5, 0.1), Piece("hi", (8,) * 5, 0.9)]
    s = build_sample("d", (1, 2), pieces, (SEP,), seed=0, max_len=10)
    assert s.context_ids == ("hi",)
    try:
        build_sample("d", (1,) * 10, [], (SEP,), seed=0, max_len=10)
        raise AssertionError("expected SampleTooLong")
    except SampleTooLong:
        pass


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(1, 64), min_size=0, max_size=60), st.integers(64, 200))
def test_packing_keeps_every_sample_whole_and_within_length(lengths, seq_len):
    samples = [Sample(f"d{i}", tuple([i] * n), ()) for i, n in enumerate(lengths)]
    seqs = pack(samples, seq_len)
    packed = [s for q in seqs for s in q.samples]
    assert sorted(s.doc_id for s in packed) == sorted(s.doc_id for s in samples)
    for q in seqs:
        ids = q.token_ids()
        assert len(ids) == q.used <= seq_len
        for (start, end), s in zip(q.spans(), q.samples, strict=True):
            assert tuple(ids[start:end]) == s.token_ids
    # best fit never opens a sequence while another could hold the sample: at most one is half empty
    assert sum(q.used * 2 <= seq_len for q in seqs) <= 1


def test_contexts_are_chosen_by_dI_then_by_the_anchors_they_resolve():
    pieces = [Piece("one", (9,) * 4, 0.8, (3,)), Piece("many", (8,) * 4, 0.8, (1, 2, 3)), Piece("lo", (7,) * 4, 0.5)]
    s = build_sample("d", (1, 2, 3, 4), pieces, (SEP,), seed=0, max_len=5 + 5 + 4)
    assert s.context_ids == ("many",) and s.offered == 3


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 30), st.lists(st.integers(0, 19), min_size=1, max_size=5)),
                min_size=0, max_size=12),
       st.integers(1, 3), st.integers(30, 400), st.integers(0, 5))
def test_every_kept_dependency_points_at_its_context_and_its_anchor(contexts, k, max_len, seed):
    doc = tuple(range(100, 120))
    sep = tuple(range(k))
    pieces = [Piece(f"c{i}", tuple([1000 + i] * n), 0.5, tuple(anchors)) for i, (n, anchors) in enumerate(contexts)]
    s = build_sample("d", doc, pieces, sep, seed, max_len=max_len + len(doc) + k)
    assert len(s) <= max_len + len(doc) + k
    by_id = {p.piece_id: p for p in pieces}
    placed = {(d.context_id, d.anchor_index) for d in s.dependencies}
    assert placed == {(c, t) for c in s.context_ids for t in by_id[c].anchors}
    for d in s.dependencies:
        assert s.token_ids[d.context_start : d.context_end] == by_id[d.context_id].token_ids
        assert s.token_ids[d.context_start - k : d.context_start] == sep
        assert s.token_ids[d.anchor] == doc[d.anchor_index]
        assert d.from_start - d.from_end == len(by_id[d.context_id].token_ids) and d.from_end > 0
    # every context left out would not have fitted beside those kept
    free = max_len - sum(len(by_id[c].token_ids) + k for c in s.context_ids)
    assert all(len(p.token_ids) + k > free for p in pieces if p.piece_id not in s.context_ids)
