"""Published model versions: the rolling trainer's model, every trainer.publish_every shards, as a
Hugging Face directory the scoring workers load like any local model.

A version is written whole under a temporary name (weights, config with its RoPE base, tokenizer,
version.json with its step and the shards it has seen), fsynced, then renamed to its id: a reader
lists complete versions only, and a crash mid-write leaves a temporary directory that the next
publication removes. The id is the count of shards it has seen and a digest of its weights, so two
trainings never publish the same id for different weights, and measurement caches keyed by it
never mix models.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .durable import fsync_dir, fsync_files

INFO = "version.json"
# Files of a model directory that are the model's own (save_pretrained writes them); the rest of
# the base directory (tokenizer, chat template) is copied beside them.
_MODEL_FILES = ("config.json", "generation_config.json", "model.safetensors.index.json")


@dataclass(frozen=True)
class Published:
    version: str  # "v000004-1a2b3c4d5e": shards seen, digest of the weights
    path: str
    base_model: str  # the model.path the trainer continued from
    step: int  # optimizer steps
    shards: list[str]  # the shards it has seen, in training order

    @property
    def shards_seen(self) -> int:
        return len(self.shards)


def version_id(shards_seen: int, digest: str) -> str:
    return f"v{shards_seen:06d}-{digest[:10]}"


def weights_digest(model_dir: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(Path(model_dir).glob("*.safetensors")):
        with open(path, "rb") as fh:
            while block := fh.read(1 << 22):
                h.update(block)
    return h.hexdigest()


def publish(root: Path, model: Any, base_dir: Path, base_model: str, step: int, shards: list[str],
            keep: int = 4) -> Published:
    """Write the model as a new version under root; its Published description. keep: versions left on disk."""
    root = Path(root).resolve()  # announced to workers that may run elsewhere: never relative
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(".tmp-*"):  # a publication a crash interrupted: never visible, now gone
        shutil.rmtree(stale, ignore_errors=True)
    tmp = root / f".tmp-{len(shards):06d}-{os.getpid()}"
    model.save_pretrained(tmp, safe_serialization=True)
    for item in Path(base_dir).iterdir():
        if item.is_file() and item.suffix not in (".safetensors", ".bin", ".gguf") and item.name not in _MODEL_FILES:
            shutil.copy2(item, tmp / item.name)
    version = version_id(len(shards), weights_digest(tmp))
    final = root / version
    info = Published(version, str(final), base_model, step, list(shards))
    (tmp / INFO).write_text(json.dumps({**asdict(info), "published_at": time.time()}))
    fsync_files(tmp)
    if final.exists():  # the same weights published before (a restart re-publishing): keep the first
        shutil.rmtree(tmp)
    else:
        os.replace(tmp, final)
        fsync_dir(root)
    for old in published(root)[:-keep]:
        shutil.rmtree(old.path, ignore_errors=True)
    return info


def read_version(path: Path) -> Published:
    data = json.loads((Path(path) / INFO).read_text())
    return Published(data["version"], str(path), data["base_model"], data["step"], data["shards"])


def published(root: Path) -> list[Published]:
    """The complete versions under root, oldest first."""
    if not Path(root).is_dir():
        return []
    found = [read_version(p) for p in Path(root).iterdir() if p.is_dir() and not p.name.startswith(".")
             and (p / INFO).is_file()]
    return sorted(found, key=lambda v: (v.shards_seen, v.step, v.version))


def set_rope_theta(config: Any, theta: float) -> None:
    """Set a transformers config's RoPE base, in the layout its version uses (rope_parameters in
    transformers 5, rope_theta before)."""
    params = getattr(config, "rope_parameters", None)
    if isinstance(params, dict):
        config.rope_parameters = {**params, "rope_theta": theta}
    else:
        config.rope_theta = theta
