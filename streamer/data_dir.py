"""The layout of a data directory: every file and folder a stack, a worker or a build keeps there."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DataDir:
    root: Path

    @property
    def models(self) -> Path:  # converted model weights (`tiny`, `smollm2`)
        return self.root / "models"

    @property
    def run(self) -> Path:  # pid files, logs and the resolved config of the processes `up` started
        return self.root / "run"

    @property
    def broker(self) -> Path:
        return self.root / "broker"

    @property
    def milvus(self) -> Path:
        return self.root / "milvus"

    @property
    def door(self) -> Path:  # the door's index of every document ever admitted
        return self.root / "door.sqlite"

    @property
    def corpus(self) -> Path:  # the demo's generated corpus
        return self.root / "corpus"

    @property
    def trainer(self) -> Path:  # checkpoints and loss.jsonl
        return self.root / "trainer"

    def model_versions(self, pack_version: str) -> Path:  # what the trainer of that shard set published
        return self.root / "model-versions" / pack_version

    @property
    def shards(self) -> Path:  # one shard set per pack version below it
        return self.root / "shards"

    def shard_set(self, pack_version: str) -> Path:
        return self.shards / pack_version

    def reports(self, pack_version: str) -> Path:
        return self.root / "reports" / pack_version

    def cache(self, name: str) -> Path:  # a measurement cache of batch mode ("scores", "measurements")
        return self.root / f"{name}.msgpack"
