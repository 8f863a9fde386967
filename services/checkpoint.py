"""Atomic training checkpoints without pickle: model, optimizer, scheduler and trainer state.

A checkpoint is a directory ckpt-<step> holding model.safetensors, optimizer.safetensors (every
state tensor) with optimizer.json (everything else), scheduler.json and state.json. It is written
under a temporary name, fsynced and renamed; then the LATEST file is replaced atomically to name
it. A crash at any point leaves the previous checkpoint as LATEST, whole.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from .durable import fsync_dir, fsync_files

LATEST = "LATEST"
KEEP = 2


def _write_json(path: Path, data: Any) -> None:
    with open(path, "w") as fh:
        json.dump(data, fh)
        fh.flush()
        os.fsync(fh.fileno())


def _split_optimizer(state: dict) -> tuple[dict, dict]:
    """optimizer.state_dict() -> (tensors keyed "param.name", JSON for the rest)."""
    import torch

    tensors, scalars = {}, {}
    for idx, entries in state["state"].items():
        for name, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{idx}.{name}"] = value.detach().contiguous().cpu()
            else:
                scalars[f"{idx}.{name}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _join_optimizer(tensors: dict, rest: dict) -> dict:
    state: dict[int, dict] = {}
    for key, value in [*tensors.items(), *rest["scalars"].items()]:
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    groups = [{**g, "betas": tuple(g["betas"])} if "betas" in g else g for g in rest["param_groups"]]
    return {"state": state, "param_groups": groups}


def save(root: Path, step: int, model, optimizer, scheduler, state: dict) -> Path:
    from safetensors.torch import save_file, save_model

    root.mkdir(parents=True, exist_ok=True)
    final = root / f"ckpt-{step:09d}"
    tmp = root / f".tmp-ckpt-{step:09d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_model(model, str(tmp / "model.safetensors"))
    tensors, rest = _split_optimizer(optimizer.state_dict())
    save_file(tensors, str(tmp / "optimizer.safetensors"))
    _write_json(tmp / "optimizer.json", rest)
    sched = {k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"}
    _write_json(tmp / "scheduler.json", sched)
    _write_json(tmp / "state.json", {**state, "step": step})
    fsync_files(tmp)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    fsync_dir(root)
    pointer = root / f".{LATEST}.tmp"
    _write_json(pointer, {"checkpoint": final.name})
    os.replace(pointer, root / LATEST)
    fsync_dir(root)
    for old in sorted(root.glob("ckpt-*"))[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_state(root: Path) -> dict | None:
    """state.json of the LATEST checkpoint, without loading any weights."""
    pointer = root / LATEST
    if not pointer.exists():
        return None
    return json.loads((root / json.loads(pointer.read_text())["checkpoint"] / "state.json").read_text())


def load(root: Path, model, optimizer, scheduler) -> dict | None:
    """Restore the LATEST checkpoint into model, optimizer and scheduler; its state, or None."""
    from safetensors.torch import load_file, load_model

    pointer = root / LATEST
    if not pointer.exists():
        return None
    ckpt = root / json.loads(pointer.read_text())["checkpoint"]
    load_model(model, str(ckpt / "model.safetensors"))
    rest = json.loads((ckpt / "optimizer.json").read_text())
    optimizer.load_state_dict(_join_optimizer(load_file(str(ckpt / "optimizer.safetensors")), rest))
    sched = scheduler.state_dict()
    sched.update(json.loads((ckpt / "scheduler.json").read_text()))
    scheduler.load_state_dict(sched)
    return json.loads((ckpt / "state.json").read_text())
