import random
import string

import pytest
import torch

from entropylong_streamer.services.models import load_causal_lm

SENTENCE = "The quick brown fox jumps over the lazy dog near the quiet river bank."


def _entropies(model, ids: list[int]) -> torch.Tensor:
    """Entropy (nats) of the next-token distribution at every position."""
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([ids])).logits[0].float()
    logp = torch.log_softmax(logits, dim=-1)
    return -(logp.exp() * logp).sum(-1)


def test_tiny_loads_identically_twice(model_cache):
    a, tok_a = load_causal_lm("tiny", model_cache)
    b, tok_b = load_causal_lm("tiny", model_cache)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert len(tok_a) == len(tok_b)


def test_tiny_shape_and_forward(model_cache):
    model, tok = load_causal_lm("tiny", model_cache, threads=1)
    assert not model.training
    assert model.dtype == torch.float32
    assert model.config.vocab_size == len(tok)
    assert model.config.hidden_size == 64 and model.config.num_attention_heads == 2
    ids = [0] + tok("hello world, tiny model", add_special_tokens=False).input_ids
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([ids])).logits
    assert logits.shape == (1, len(ids), len(tok))
    assert torch.isfinite(logits).all()


def test_unknown_spec_is_a_clear_error(model_cache, tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(ValueError, match="no-such-model"):
        load_causal_lm(str(missing), model_cache)


def test_smollm2_tokenizer_adds_no_bos(model_cache):
    _, tok = load_causal_lm("tiny", model_cache)  # tiny carries SmolLM2's tokenizer
    ids = tok("Hello world").input_ids
    assert ids and ids[0] != 0
    assert tok.convert_ids_to_tokens(0) == "<|endoftext|>"


@pytest.mark.slow
def test_smollm2_entropy_low_on_repeats_high_on_noise(model_cache):
    model, tok = load_causal_lm("smollm2", model_cache)
    assert not model.training and model.dtype == torch.float32
    assert model.config.vocab_size == len(tok)
    assert not hasattr(model.config, "quantization_config")

    sent = tok(" " + SENTENCE, add_special_tokens=False).input_ids
    ids = [0] + sent * 6
    h = _entropies(model, ids)
    # h[p] predicts ids[p + 1]: the positions predicting the last repetition's tokens.
    last = h[len(ids) - len(sent) - 1 : len(ids) - 1]
    assert last.mean().item() < 1.0

    rng = random.Random(0)
    noise = "".join(rng.choice(string.ascii_lowercase) for _ in range(300))
    noise_ids = [0] + tok(noise, add_special_tokens=False).input_ids
    assert _entropies(model, noise_ids)[1:].mean().item() > last.mean().item() + 1.0

    # A second load uses the safetensors copy and gives the same weights.
    again, _ = load_causal_lm("smollm2", model_cache)
    assert torch.equal(again.model.embed_tokens.weight, model.model.embed_tokens.weight)
