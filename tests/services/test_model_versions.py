"""Continued training of the scoring model and its published versions (policy.follow's supply)."""

import json

import pytest
import torch

from entropylong_streamer.config import TrainerConfig
from entropylong_streamer.services import model_versions
from entropylong_streamer.services.model_versions import published, read_version
from entropylong_streamer.services.models import load_causal_lm
from entropylong_streamer.services.trainer import RollingTrainer
from entropylong_streamer.services.transformers_engine import TransformersEngine


def continued(model_cache, state, versions, **kw):
    cfg = TrainerConfig(model="tiny", from_scratch=False, lr=1e-3, warmup_steps=0, loss_chunk=32, publish_every=2,
                        **kw)
    return RollingTrainer(cfg, model_cache, state, versions)


def rope_base(config) -> float:
    params = getattr(config, "rope_parameters", None)
    return params["rope_theta"] if isinstance(params, dict) else config.rope_theta


def test_continued_training_starts_from_the_weights_and_publishes_every_n_shards(model_cache, make_shards, tmp_path):
    shards = make_shards(tmp_path / "shards", 3)
    base, _ = load_causal_lm("tiny", model_cache)
    t = continued(model_cache, tmp_path / "state", tmp_path / "versions", rope_theta=50_000.0)
    name, weight = next(iter(base.state_dict().items()))
    torch.testing.assert_close(t.model.state_dict()[name], weight)  # its weights, not a fresh init
    assert rope_base(t.model.config) == 50_000.0 != rope_base(base.config)

    t.train_shard(*shards[0])
    assert t.publish_if_due() is None  # 1 of every 2 shards
    t.train_shard(*shards[1])
    v = t.publish_if_due()
    assert v is not None and v.shards == [shards[0][0], shards[1][0]] and v.step == t.step
    assert t.publish_if_due() is None  # published once
    assert [p.version for p in published(tmp_path / "versions")] == [v.version]
    assert read_version(v.path) == v and v.version.startswith("v000002-")

    # A worker loads it like any local model: the trained weights, the trainer's RoPE base.
    loaded, tok = load_causal_lm(v.path, model_cache)
    assert rope_base(loaded.config) == 50_000.0 and tok.vocab_size == t.model.config.vocab_size
    ids = torch.tensor([[0, 11, 42, 7, 99, 5]])
    t.model.eval()
    with torch.no_grad():
        # the same fp32 weights through the same forward: measured bit-identical
        torch.testing.assert_close(loaded(ids).logits, t.model(ids).logits, atol=0, rtol=0)
    text = [0, 11, 42, 7, 99, 5, 3, 8]
    before = TransformersEngine("tiny", model_cache, 64).score(text)[0]
    after = TransformersEngine(v.path, model_cache, 64).score(text)[0]
    assert len(before) == 7 and abs(before - after).max() > 1e-4  # another model scores


def test_a_crash_between_checkpoint_and_publication_publishes_the_same_version_at_restart(
        model_cache, make_shards, tmp_path, monkeypatch):
    shards = make_shards(tmp_path / "shards", 2)
    straight = continued(model_cache, tmp_path / "a", tmp_path / "va")
    for s in shards:
        straight.train_shard(*s)
    expected = straight.publish_if_due()

    crashed = continued(model_cache, tmp_path / "b", tmp_path / "vb")
    for s in shards:
        crashed.train_shard(*s)  # checkpointed
    real_replace = model_versions.os.replace

    def crash_on_rename(src, dst):
        if str(dst).startswith(str(tmp_path / "vb")):
            raise OSError("power cut")
        real_replace(src, dst)

    monkeypatch.setattr(model_versions.os, "replace", crash_on_rename)
    with pytest.raises(OSError, match="power cut"):
        crashed.publish_if_due()
    monkeypatch.undo()
    assert published(tmp_path / "vb") == []  # half-written: never visible
    assert any(p.name.startswith(".tmp-") for p in (tmp_path / "vb").iterdir())

    restarted = continued(model_cache, tmp_path / "b", tmp_path / "vb")
    again = restarted.publish_if_due()
    assert again is not None and again.version == expected.version  # the checkpoint's weights, exactly
    assert [p.name for p in (tmp_path / "vb").iterdir()] == [again.version]  # the torn one is gone
    info = json.loads((tmp_path / "vb" / again.version / "version.json").read_text())
    assert info["step"] == straight.step and info["shards"] == [s for s, _ in shards]


def test_only_the_newest_versions_are_kept(model_cache, make_shards, tmp_path):
    shards = make_shards(tmp_path / "shards", 3)
    cfg = TrainerConfig(model="tiny", from_scratch=False, lr=1e-3, loss_chunk=32, publish_every=1, keep_versions=2)
    t = RollingTrainer(cfg, model_cache, tmp_path / "state", tmp_path / "versions")
    made = []
    for s in shards:
        t.train_shard(*s)
        made.append(t.publish_if_due().version)
    assert [v.version for v in published(tmp_path / "versions")] == made[1:]
