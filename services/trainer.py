"""The rolling trainer: takes real optimizer steps on each new shard as it is announced.

Document masking: every indices span is trained as its own row (padding masked), so no token
attends across a span boundary, the same semantics as a block-diagonal mask. The label of each
span's first token (the separator) is never a target. The model state is saved with safetensors
and the consumed shard ids next to it, before the announcement's offset is committed.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)


class RollingTrainer:
    def __init__(self, model_spec: str, cache_dir: Path, state_dir: Path, lr: float, steps_per_shard: int,
                 seed: int = 0, from_scratch: bool = True) -> None:
        import torch

        from .models import load_causal_lm, model_dir

        torch.manual_seed(seed)
        self.torch = torch
        if from_scratch:  # the spec's architecture, freshly initialised with the usual small init
            from transformers import AutoConfig, AutoModelForCausalLM

            config = AutoConfig.from_pretrained(model_dir(model_spec, cache_dir))
            config.initializer_range = 0.02
            self.model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        else:
            self.model, _ = load_causal_lm(model_spec, cache_dir)
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        weights = self.state_dir / "model.safetensors"
        if weights.exists():
            from safetensors.torch import load_model

            load_model(self.model, str(weights))
        self.model.train()
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=lr)
        self.steps_per_shard = steps_per_shard
        self.consumed: list[str] = self._load_consumed()
        self.losses: list[float] = []

    def _load_consumed(self) -> list[str]:
        path = self.state_dir / "consumed.json"
        return json.loads(path.read_text()) if path.exists() else []

    @staticmethod
    def rows(sequences: list[dict]) -> list[list[int]]:
        """One row per whole sample span: a sample's contexts and its document stay together."""
        out = []
        for seq in sequences:
            ids = seq["input_ids"]
            for start, end in seq["indices"].reshape(-1, 2):
                if end - start >= 2:
                    out.append([int(t) for t in ids[int(start) : int(end)]])
        return out

    def train_shard(self, shard_id: str, path: Path) -> list[float]:
        """A few optimizer steps over the shard's rows; returns the losses. Skips a consumed shard."""
        from .shards import read_shard

        if shard_id in self.consumed:
            return []
        torch = self.torch
        rows = self.rows(read_shard(path))
        losses = []
        if rows:
            per_step = max(1, len(rows) // self.steps_per_shard)
            for i in range(0, len(rows), per_step):
                batch = rows[i : i + per_step]
                width = max(len(r) for r in batch)
                ids = torch.zeros(len(batch), width, dtype=torch.long)
                mask = torch.zeros(len(batch), width, dtype=torch.long)
                for j, r in enumerate(batch):
                    ids[j, : len(r)] = torch.tensor(r)
                    mask[j, : len(r)] = 1
                labels = ids.masked_fill(mask == 0, -100)
                loss = self.model(input_ids=ids, attention_mask=mask, labels=labels).loss
                self.opt.zero_grad()
                loss.backward()
                self.opt.step()
                losses.append(float(loss))
        self.consumed.append(shard_id)
        self._save()
        self.losses.extend(losses)
        return losses

    def _save(self) -> None:
        from safetensors.torch import save_model

        tmp = self.state_dir / "model.safetensors.tmp"
        save_model(self.model, str(tmp))
        os.replace(tmp, self.state_dir / "model.safetensors")
        tmp_c = self.state_dir / "consumed.json.tmp"
        tmp_c.write_text(json.dumps(self.consumed))
        os.replace(tmp_c, self.state_dir / "consumed.json")
