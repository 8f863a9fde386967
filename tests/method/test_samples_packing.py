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
