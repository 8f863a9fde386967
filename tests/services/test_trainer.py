"""The rolling trainer: document-masked packed training, exact resume, atomic checkpoints."""

import numpy as np
import pytest
import torch

from entropylong_streamer.config import TrainerConfig
from entropylong_streamer.services import checkpoint
from entropylong_streamer.services.shards import read_shard
from entropylong_streamer.services.trainer import RollingTrainer


def trainer(model_cache, state_dir, **kw):
    cfg = TrainerConfig(model="tiny", lr=1e-3, warmup_steps=2, loss_chunk=32, **kw)
    return RollingTrainer(cfg, model_cache, state_dir)


def test_a_packed_sequence_trains_each_sample_as_if_it_were_alone(model_cache, make_shards, tmp_path):
    (shard_id, path), = make_shards(tmp_path / "shards", 1)
    t = trainer(model_cache, tmp_path / "state")
    seq = read_shard(path)[0]
    with torch.no_grad():
        packed, where = t.token_losses([seq])
        alone, alone_where = [], []
        for a, b in seq["indices"].reshape(-1, 2):
            ids = seq["input_ids"][a:b]
            one = {"input_ids": ids, "indices": np.array([[0, b - a]], np.uint32), "length": b - a}
            loss, pos = t.token_losses([one])
            alone.append(loss)
            alone_where.append(pos)
    assert len(packed) == sum(int(b - a) - 1 for a, b in seq["indices"].reshape(-1, 2))
    # measured: 9.5e-7 apart at most (one fp32 ulp of a loss of 11; tests/noise.py); a mask that let a
    # sample see another would move its losses by tenths of a nat
    torch.testing.assert_close(packed, torch.cat(alone), atol=1e-4, rtol=1e-5)
    assert where.tolist() == np.concatenate(alone_where).tolist()  # offsets restart at every sample
    assert where.min() == 1  # the separator opening each sample is never a target


def test_a_restarted_trainer_continues_exactly_where_it_stopped(model_cache, make_shards, tmp_path):
    shards = make_shards(tmp_path / "shards", 3)
    straight = trainer(model_cache, tmp_path / "a", mix_earlier=0.5)
    for shard_id, path in shards:
        assert straight.train_shard(shard_id, path).losses
    first = trainer(model_cache, tmp_path / "b", mix_earlier=0.5)
    for shard_id, path in shards[:2]:
        first.train_shard(shard_id, path)
    del first  # the process ends; only the checkpoint is left
    resumed = trainer(model_cache, tmp_path / "b", mix_earlier=0.5)
    assert resumed.train_shard(*shards[1]) is None  # consumed already: never trained twice
    report = resumed.train_shard(*shards[2])
    assert report.earlier_sequences == 1  # half of its 2 sequences, drawn from earlier shards
    assert list(resumed.consumed) == [s for s, _ in shards] and resumed.step == straight.step
    for p, q in zip(straight.model.parameters(), resumed.model.parameters(), strict=True):
        torch.testing.assert_close(p, q, atol=0, rtol=0)
    assert resumed.scheduler.last_epoch == straight.scheduler.last_epoch


def test_a_crash_while_checkpointing_leaves_the_previous_checkpoint_whole(model_cache, make_shards, tmp_path,
                                                                         monkeypatch):
    shards = make_shards(tmp_path / "shards", 2)
    t = trainer(model_cache, tmp_path / "state")
    t.train_shard(*shards[0])
    steps_after_first = t.step
    real_replace = checkpoint.os.replace

    def crash_on_pointer(src, dst):
        if str(dst).endswith(checkpoint.LATEST):
            raise OSError("disk gone")
        real_replace(src, dst)

    monkeypatch.setattr(checkpoint.os, "replace", crash_on_pointer)
    with pytest.raises(OSError, match="disk gone"):
        t.train_shard(*shards[1])
    monkeypatch.undo()
    again = trainer(model_cache, tmp_path / "state")
    assert list(again.consumed) == [shards[0][0]] and again.step == steps_after_first
    assert again.train_shard(*shards[1]).losses  # the interrupted shard is trained, once


def test_loss_falls_and_is_reported_by_position(model_cache, make_shards, tmp_path):
    (shard,) = make_shards(tmp_path / "shards", 1)
    t = trainer(model_cache, tmp_path / "state", passes_per_shard=6, loss_buckets=[0, 16])
    report = t.train_shard(*shard)
    assert len(report.losses) == 12 and report.losses[-1] < report.losses[0]
    by_bucket = report.loss_by_bucket()
    assert set(by_bucket) == {0, 16} and sum(report.bucket_tokens.values()) == report.tokens
