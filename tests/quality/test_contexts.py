"""The three contexts of the quality report: verified from the shard, baselines on the same budget."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import records

from entropylong_streamer.quality.contexts import (
    PoolChunk,
    ShardMismatch,
    joined,
    prefixes,
    random_prefix,
    unverified_prefix,
    verified_prefix,
)
from entropylong_streamer.stages.pack import sample_from

SEP = 0


def pool_chunks(n, per=12):
    return [PoolChunk(doc_id=f"p{i % 5}" if i % 7 else "d", token_ids=tuple(50_000 + 100 * i + j for j in range(per)))
            for i in range(n)]


@given(records(), st.integers(0, 3))
@settings(max_examples=150, deadline=None)
def test_every_condition_has_the_verified_budget_and_ends_on_a_piece(rec, seed):
    sample = sample_from(rec, (SEP,), seed, 4096)
    pool = pool_chunks(40)
    p = prefixes(rec, list(sample.token_ids), pool, (SEP,), seed)
    assert p.verified + (SEP, *rec.token_ids) == sample.token_ids  # verified is exactly what the shard holds
    budget = len(p.verified)
    assert len(p.unverified) == budget  # every candidate is a superset of the accepted ones: always enough
    assert len(p.random) == budget
    for prefix in (p.unverified, p.random):
        if prefix:  # ends with the last token of a whole piece, right before the document's separator
            last = prefix[-1]
            pieces = [c.token_ids for c in rec.contexts] + [c.token_ids for c in pool]
            assert any(piece[-1] == last for piece in pieces)
    # the unverified baseline draws only on the record's candidates; the random one never on the document
    assert set(p.unverified) <= {SEP} | {t for c in rec.contexts for t in c.token_ids}
    own = {t for c in pool if c.doc_id == rec.doc_id for t in c.token_ids}
    assert not own & set(p.random)
    assert p.anchors == tuple(sorted({q.anchor_index for q in rec.pairs}))


@given(records(), st.integers(0, 3))
@settings(max_examples=60, deadline=None)
def test_a_sample_that_is_not_the_records_is_refused(rec, seed):
    sample = list(sample_from(rec, (SEP,), seed, 4096).token_ids)
    sample[-1] += 1
    with pytest.raises(ShardMismatch):
        verified_prefix(sample, rec.token_ids, (SEP,))


def test_joined_cuts_from_the_left_and_keeps_the_separators():
    assert joined([(1, 2), (3,)], (SEP,), 10) == (SEP, 1, 2, SEP, 3)
    assert joined([(1, 2), (3,)], (SEP,), 3) == (2, SEP, 3)
    assert joined([(1, 2)], (SEP,), 0) == ()


@given(records())
@settings(max_examples=30, deadline=None)
def test_baselines_are_deterministic_per_document_and_seed(rec):
    assert unverified_prefix(rec, (SEP,), 1, 20) == unverified_prefix(rec, (SEP,), 1, 20)
    pool = pool_chunks(30)
    assert random_prefix("x", pool, (SEP,), 1, 50) == random_prefix("x", pool, (SEP,), 1, 50)
    assert random_prefix("x", pool, (SEP,), 1, 50) != random_prefix("y", pool, (SEP,), 1, 50)


def test_a_small_pool_gives_a_shorter_random_prefix_not_an_error():
    assert len(random_prefix("x", pool_chunks(2, per=3), (SEP,), 0, 100)) == 8
