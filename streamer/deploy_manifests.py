"""The parts of deploy/ derived from the stage registry and deploy/config.toml: the consumer group
each KEDA ScaledObject watches carries its stage's config version, so a threshold change renames it.
Rewritten by `python -m entropylong_streamer.generated_files`.
"""

from __future__ import annotations

import re
from pathlib import Path

from . import registry
from .config import Config, load_config

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
AUTOSCALING = DEPLOY / "k8s" / "autoscaling.yaml"
_STAGE = re.compile(r"^\s*entropylong\.io/stage:\s*(\S+)\s*$", re.M)
_GROUP = re.compile(r"^(\s*consumerGroup:\s*)(\S+)(\s*)$", re.M)
_TOPIC = re.compile(r"^(\s*topic:\s*)(\S+)(\s*)$", re.M)


def autoscaling(text: str, cfg: Config) -> str:
    """The manifest with every ScaledObject's consumer group and topic as the registry gives its stage."""
    docs = text.split("\n---\n")
    for i, doc in enumerate(docs):
        if "kind: ScaledObject" not in doc or not (found := _STAGE.search(doc)):
            continue
        spec = registry.stage(found.group(1))
        docs[i] = _set(_set(doc, _GROUP, spec.group(cfg)), _TOPIC, spec.source.full_name(cfg.kafka.topic_prefix))
    return "\n---\n".join(docs)


def _set(doc: str, line: re.Pattern, value: str) -> str:
    return line.sub(lambda m: f"{m.group(1)}{value}{m.group(3)}", doc)


def render() -> str:
    return autoscaling(AUTOSCALING.read_text(), load_config(DEPLOY / "config.toml", environ={}))
