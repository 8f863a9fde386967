"""The transformers engine: batching and windows change nothing but cost; SmolLM2 behaves."""

import random
import string

import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from noise import TINY_DTYPE, assert_exact

from entropylong_streamer.method.windows import plan_windows
from entropylong_streamer.services.lm import ScoreRequest
from entropylong_streamer.services.transformers_engine import TransformersEngine

SEP = 0


@pytest.fixture(scope="module")
def tiny(model_cache):
    return TransformersEngine("tiny", model_cache, max_tokens=4096, dtype=TINY_DTYPE)


@pytest.fixture(scope="module")
def smollm2(model_cache):
    return TransformersEngine("smollm2", model_cache, max_tokens=4096)


def reference(engine, ids):
    """H and NLL at every position from one plain forward over the whole logits tensor."""
    with torch.inference_mode():
        z = engine.model(torch.tensor([ids])).logits[0, :-1].double()
    lse = torch.logsumexp(z, -1)
    h = lse - (torch.softmax(z, -1) * z).sum(-1)
    nll = lse - z.gather(1, torch.tensor(ids[1:])[:, None]).squeeze(1)
    return h.numpy(), nll.numpy()


def assert_close(h, nll, ref_h, ref_nll):
    assert_exact(h, ref_h)  # the tiny model runs in float64 here: tests/noise.py says why
    assert_exact(nll, ref_nll)


docs = st.lists(st.lists(st.integers(1, 49151), min_size=2, max_size=120), min_size=1, max_size=6)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(docs)
def test_batched_scores_equal_the_plain_forward(tiny, batch):
    tiny.batch_tokens = 512  # several documents per forward, padded to the longest
    got = tiny.score_many([ScoreRequest([SEP, *d]) for d in batch])
    for d, (h, nll) in zip(batch, got, strict=True):
        ref_h, ref_nll = reference(tiny, [SEP, *d])
        assert h.shape == (len(d),)
        assert_close(h, nll, ref_h, ref_nll)


prefixed = st.tuples(st.lists(st.integers(1, 49151), min_size=1, max_size=40),
                     st.lists(st.lists(st.integers(1, 49151), min_size=2, max_size=80), min_size=1, max_size=5))


# picks: per request, offsets that become its scored positions (mod its length), so that a case is
# an explicit value @example can pin.
picks = st.lists(st.sets(st.integers(0, 79), min_size=1, max_size=8), min_size=5, max_size=5)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prefixed, picks)
# CI drew this one in fp32: H 4.4e-4 from the plain forward (rounding: tests/noise.py)
@example(([5313, 1, 1, 500, 44, 1, 953, 1, 1], [[15, 1]]), [{0}] * 5)
def test_a_shared_prefix_is_computed_once_and_changes_no_score(tiny, case, picks):
    prefix, rests = case
    tiny.batch_tokens = 256
    head = [SEP, *prefix]
    requests = [ScoreRequest([*head, *r], sorted({len(head) + x % (len(r) - 1) for x in pick}), prefix=len(head))
                for r, pick in zip(rests, picks, strict=False)]
    other = ScoreRequest([SEP, 7, 8, 9, 10], prefix=2)  # its prefix is its own: a plain forward
    before = tiny.lm_tokens
    got = tiny.score_many([*requests, other])
    ran = tiny.lm_tokens - before
    for req, (h, nll) in zip([*requests, other], got, strict=True):
        ref_h, ref_nll = reference(tiny, list(req.ids))
        positions = req.positions if req.positions is not None else range(len(req.ids) - 1)
        assert_close(h, nll, ref_h[list(positions)], ref_nll[list(positions)])
    run_to_last = [r.positions[-1] + 1 for r in requests]
    shared = len(head) if len(requests) > 1 else 0  # a prefix of one request is not worth sharing
    assert ran == sum(run_to_last) - shared * (len(requests) - 1) + len(other.ids) - 1


def test_positions_subset_and_lm_token_count(tiny):
    ids = [SEP] + list(range(100, 160))
    full_h, _ = tiny.score(ids)
    before = tiny.lm_tokens
    h, _ = tiny.score(ids, [3, 10, 20])
    assert_exact(h, full_h[[3, 10, 20]])
    assert tiny.lm_tokens - before == 21  # only the prefix up to the last scored position runs
    with pytest.raises(ValueError, match="positions"):
        tiny.score(ids, [len(ids) - 1])


def test_long_documents_are_scored_in_windows_not_truncated(model_cache):
    engine = TransformersEngine("tiny", model_cache, max_tokens=64, overlap=16, dtype=TINY_DTYPE)
    rng = random.Random(1)
    ids = [SEP] + [rng.randrange(1, 49152) for _ in range(300)]
    before = engine.lm_tokens
    h, nll = engine.score(ids)
    assert h.shape == (len(ids) - 1,)  # every position scored
    windows = plan_windows(len(ids), 64, 16)
    assert engine.lm_tokens - before == sum(w.end - 1 - w.start for w in windows)  # inputs run
    for w in windows:  # each position equals a plain forward over its window
        ref_h, ref_nll = reference(engine, ids[w.start : w.end])
        got = slice(w.first, w.end - 1)
        assert_close(h[got], nll[got], ref_h[w.first - w.start :], ref_nll[w.first - w.start :])
    # The first window's positions see their whole prefix, exactly as an unlimited engine does.
    wide = TransformersEngine("tiny", model_cache, max_tokens=4096, dtype=TINY_DTYPE)
    assert_exact(h[:63], wide.score(ids)[0][:63])


def test_smollm2_is_sure_of_repeated_text(smollm2):
    sentence = "The committee approved the new budget for the northern railway line after a long debate. "
    n = len(smollm2.tokenize(sentence).ids)
    h, _ = smollm2.score([SEP] + smollm2.tokenize(sentence * 4).ids)
    first, repeats = h[:n].mean(), h[2 * n :].mean()
    assert repeats < 1.5 and repeats < first / 3


def test_smollm2_is_unsure_of_random_strings(smollm2):
    rng = random.Random(0)
    noise = " ".join("".join(rng.choices(string.ascii_letters + string.digits, k=rng.randint(3, 9)))
                     for _ in range(60))
    prose = "The committee approved the new budget for the northern railway line after a long debate."
    h_noise = smollm2.score([SEP] + smollm2.tokenize(noise).ids)[0][8:]
    h_prose = smollm2.score([SEP] + smollm2.tokenize(prose).ids)[0][8:]
    assert h_noise.mean() > 4.0 and h_noise.mean() > h_prose.mean() + 1.0


def test_each_request_is_charged_its_share_and_the_shares_add_up_to_the_engine_counts(tiny):
    """Charges split the call's tokens and seconds by the tokens each request ran; FLOPs of a request
    with nothing shared are exactly the FLOP model's forward of its tokens and scored positions."""
    from entropylong_streamer.services.flops import FlopModel

    rng = random.Random(4)
    ids = [[rng.randrange(3, 4000) for _ in range(n)] for n in (30, 60, 45)]
    requests = [ScoreRequest(ids[0], [3, 10, 28]), ScoreRequest(ids[1]), ScoreRequest(ids[2], [40])]
    before = (tiny.lm_tokens, tiny.busy_seconds, tiny.flops)
    _, charges = tiny.score_charged(requests)
    ran = tiny.lm_tokens - before[0]
    assert ran == 29 + 59 + 41  # each runs to its last scored position
    assert sum(c.lm_tokens for c in charges) == pytest.approx(ran)
    assert sum(c.seconds for c in charges) == pytest.approx(tiny.busy_seconds - before[1])
    assert sum(c.flops for c in charges) == pytest.approx(tiny.flops - before[2])
    assert [c.lm_tokens for c in charges] == pytest.approx([29, 59, 41])
    model = FlopModel.of_config(tiny.model.config.to_dict())
    expected = [model.forward(29, 3), model.forward(59, 59), model.forward(41, 1)]
    assert [c.flops for c in charges] == pytest.approx(expected)

    # Three requests sharing a 20-token prefix: it runs once, and each is charged a third of it.
    prefix = ids[1][:20]
    shared = [ScoreRequest([*prefix, *ids[k][:10]], [25], prefix=20) for k in range(3)]
    before = tiny.lm_tokens
    _, charges = tiny.score_charged(shared)
    assert tiny.lm_tokens - before == 20 + 3 * 6
    assert [c.lm_tokens for c in charges] == pytest.approx([(20 + 18) / 3] * 3)


def test_the_flop_model_counts_the_parameters_of_the_real_models(tiny, smollm2):
    from entropylong_streamer.services.flops import FlopModel

    for engine in (tiny, smollm2):
        m = engine.model
        body = sum(p.numel() for p in m.base_model.parameters()) - m.get_input_embeddings().weight.numel()
        assert FlopModel.of_config(m.config.to_dict()).body == body


def test_a_prefix_kept_across_calls_is_not_run_again_and_changes_no_score(model_cache, tiny):
    """model.prefix_cache_mib: the second call that starts with the same [sep C] runs only what follows it."""
    kept = TransformersEngine("tiny", model_cache, max_tokens=4096, prefix_cache_bytes=64 << 20, dtype=TINY_DTYPE)
    rng = random.Random(7)
    prefix = [rng.randrange(3, 4000) for _ in range(40)]
    requests = [ScoreRequest([*prefix, *[rng.randrange(3, 4000) for _ in range(12)]], [41, 50], prefix=40)
                for _ in range(2)]
    first, _ = kept.score_charged(requests[:1])
    assert kept.lm_tokens == 51 and len(kept.prefix_cache) == 1
    second, charges = kept.score_charged(requests[1:])
    assert kept.lm_tokens == 51 + 11 and charges[0].lm_tokens == 11 and kept.prefix_tokens_reused == 40
    for got, req in zip([*first, *second], requests, strict=True):
        want = tiny.score(req.ids, req.positions)
        assert_close(got[0], got[1], want[0], want[1])


@given(st.lists(st.tuples(st.integers(0, 9), st.integers(1, 50)), max_size=40), st.integers(1, 120))
def test_the_prefix_cache_keeps_the_most_recent_within_its_budget(uses, budget):
    from entropylong_streamer.services.prefix_cache import PrefixCache

    cache, recent = PrefixCache(budget), []
    sizes = {}
    for key, size in uses:
        size = sizes.setdefault(key, size)
        if cache.get((key,)) is None:
            cache.put((key,), f"kv{key}", size)
        recent = [k for k in recent if k != key] + [key]
        assert cache.bytes <= budget
        # what it holds is a most-recent run of keys: nothing older is held while something newer was dropped
        held = [k for k in recent if (k,) in cache]
        fits = [k for k in recent if sizes[k] <= budget]  # a prefix over the whole budget is never kept
        assert held == fits[len(fits) - len(held):] and (held or not fits) and held[-1:] == fits[-1:]
