"""One configuration object: defaults <- TOML file <- environment <- flags, validated at start-up.
Its sections: config_method.py (the method's settings), config_services.py (Kafka, Milvus, workers, door).

Every stage's output carries a version hash computed from the parameters that output depends on,
chained through the upstream stages, so a threshold change yields a new version everywhere
downstream of it and never mixes versions in one shard set.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError, model_validator

from entropylong_streamer.config_method import (
    EntropyConfig,
    ModelConfig,
    PackConfig,
    PolicyConfig,
    RetrievalConfig,
    TrainerConfig,
    VerifyConfig,
)
from entropylong_streamer.config_services import (
    AgentsConfig,
    DoorConfig,
    KafkaConfig,
    MetricsConfig,
    MilvusConfig,
    _Section,
)
from entropylong_streamer.data_dir import DataDir

CONFIG_SCHEMA = 1
ENV_PREFIX = "ELONG_"
SECRETS = ("kafka.sasl_password", "milvus.token")
MASK = "***"
"""what a written configuration holds in place of a secret's value; read back, the secret comes from the
environment (or stays unset)"""



class Config(_Section):
    schema_version: int = CONFIG_SCHEMA
    """The configuration format's version: a file written for another is refused, not misread."""
    data_dir: Path = Path(".elong")
    """Models, the embedded servers' data, shards, caches, logs and reports."""
    kafka: KafkaConfig = KafkaConfig()
    milvus: MilvusConfig = MilvusConfig()
    model: ModelConfig = ModelConfig()
    entropy: EntropyConfig = EntropyConfig()
    retrieval: RetrievalConfig = RetrievalConfig()
    verify: VerifyConfig = VerifyConfig()
    pack: PackConfig = PackConfig()
    trainer: TrainerConfig = TrainerConfig()
    policy: PolicyConfig = PolicyConfig()
    agents: AgentsConfig = AgentsConfig()
    metrics: MetricsConfig = MetricsConfig()
    door: DoorConfig = DoorConfig()

    @model_validator(mode="after")
    def _schema(self) -> Config:
        if self.schema_version != CONFIG_SCHEMA:
            raise ValueError(f"config schema_version {self.schema_version} is not {CONFIG_SCHEMA}")
        return self

    @model_validator(mode="after")
    def _policy(self) -> Config:
        t, p = self.trainer, self.policy
        if p.follow and (t.from_scratch or t.model != self.model.path):
            raise ValueError(f"policy.follow needs the trainer to continue training the scoring model: trainer.model "
                             f"= model.path ({self.model.path!r}, not {t.model!r}) and trainer.from_scratch = false")
        if p.follow and not t.publish_every:
            raise ValueError("policy.follow needs trainer.publish_every > 0: without it no version is ever published")
        if p.rescore_last_shards and not p.follow:
            raise ValueError("policy.rescore_last_shards needs policy.follow = true")
        if p.rescore_last_shards >= max(t.publish_every, 1):
            # the shards the rescored documents fill would alone bring the next version, which sends them back
            raise ValueError(f"policy.rescore_last_shards ({p.rescore_last_shards}) must be below "
                             f"trainer.publish_every ({t.publish_every}), or rescoring never ends")
        if p.follow and self.model.engine == "vllm" and t.rope_theta:
            raise ValueError("policy.follow on vLLM cannot change the RoPE base (trainer.rope_theta): its engine "
                             "loads new weights in place, not a new rotary base. Set the base in model.path's "
                             "config.json (rope_theta) and leave trainer.rope_theta unset")
        return self

    def version(self, stage: str) -> str:
        """The version of what `stage` writes under these settings (registry.py derives it)."""
        from entropylong_streamer.registry import stage as spec

        return spec(stage).version(self)

    def stage_versions(self) -> dict[str, str]:
        """The version of what each stage that writes records writes."""
        from entropylong_streamer.registry import versions

        return versions(self)

    @property
    def paths(self) -> DataDir:
        """Where everything under data_dir lives."""
        return DataDir(Path(self.data_dir))

    def masked(self) -> dict[str, Any]:
        """The settings as JSON data, each secret that is set replaced by MASK: what may be printed or kept."""
        data = self.model_dump(mode="json")
        for key in SECRETS:
            section, name = key.split(".")
            if data[section][name] is not None:
                data[section][name] = MASK
        return data

    def copy_with(self, overrides: dict[str, Any]) -> Config:
        """A new validated config with dotted-key overrides applied ({"verify.epsilon": 0.3})."""
        data = self.model_dump(mode="json")
        for key, value in overrides.items():
            _set_dotted(data, key, value)
        return Config.model_validate(data)


def digest(*parts: Any) -> str:
    norm = [p.model_dump(mode="json") if isinstance(p, BaseModel) else p for p in parts]
    return hashlib.sha256(json.dumps(norm, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _set_dotted(data: dict[str, Any], key: str, value: Any, origin: str = "") -> None:
    *path, leaf = key.split(".")
    node = data
    for i, part in enumerate(path):
        if not isinstance(node.get(part), dict):
            known = [k for k, v in node.items() if isinstance(v, dict)]
            raise ConfigError(f"unknown configuration section {part!r} in {key!r}{_origin(origin)}"
                              + _did_you_mean(part, known, ".".join(path[:i])))
        node = node[part]
    node[leaf] = value


def _origin(origin: str) -> str:
    return f" (from {origin})" if origin else ""


def _did_you_mean(name: str, known: list[str], prefix: str = "") -> str:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if close:
        return f": did you mean {prefix + '.' if prefix else ''}{close[0]}?"
    return f"; known: {', '.join(sorted(known))}" if known else ""


def _section_fields(path: tuple) -> list[str]:
    """The setting names of the section at path (() is the top level)."""
    model: type[BaseModel] = Config
    for part in path:
        annotation = model.model_fields[part].annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def _explain(exc: ValidationError, origins: dict[str, str]) -> str:
    """One line per problem: the setting, where its value came from, what is wrong; a near miss of
    an unknown name gets a suggestion. Values of secrets are never echoed."""
    lines = []
    for err in exc.errors():
        loc = tuple(str(p) for p in err["loc"])
        key = ".".join(loc)
        where = _origin(origins.get(key, ""))
        if err["type"] == "extra_forbidden":
            section = loc[:-1]
            lines.append(f"unknown setting {key}{where}"
                         + _did_you_mean(loc[-1], _section_fields(section), ".".join(section)))
            continue
        # a scalar only: a section-wide check's input is the whole section, secrets included
        shown = not any(word in key for word in ("password", "token")) and isinstance(
            err.get("input"), str | int | float | bool)
        got = f", got {err['input']!r}" if shown else ""
        lines.append(f"{key}{where}: {err['msg']}{got}")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def _parse_scalar(text: str) -> Any:
    """Flag and environment values are TOML scalars ("0.3", "true", "'x'") or bare strings."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


class ConfigError(ValueError):
    pass


def load_config(
    path: Path | None = None,
    overrides: list[str] | dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
) -> Config:
    """Build the one Config: file, then ELONG_SECTION__KEY variables, then --set KEY=VALUE flags."""
    data: dict[str, Any] = Config().model_dump(mode="json")
    origins: dict[str, str] = {}
    """setting -> where its value came from, for error messages"""
    if path is not None:
        try:
            text = Path(path).read_text()
            file_data = json.loads(text) if Path(path).suffix == ".json" else tomllib.loads(text)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from exc
        for key, value in _flatten(file_data, data):
            if key in SECRETS and value == MASK:  # a written configuration's masked secret: not a value
                continue
            _set_dotted(data, key, value, f"file {path}")
            origins[key] = f"file {path}"
    env = os.environ if environ is None else environ
    for name, raw in env.items():
        if name.startswith(ENV_PREFIX) and name != ENV_PREFIX + "CONFIG":
            key = name[len(ENV_PREFIX) :].lower().replace("__", ".")
            _set_dotted(data, key, _parse_scalar(raw), f"environment variable {name}")
            origins[key] = f"environment variable {name}"
    items = overrides.items() if isinstance(overrides, dict) else _split_flags(overrides or [])
    for key, value in items:
        _set_dotted(data, key, value, f"--set {key}")
        origins[key] = f"--set {key}"
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, origins)) from exc


def _split_flags(flags: list[str]) -> list[tuple[str, Any]]:
    out = []
    for flag in flags:
        key, sep, raw = flag.partition("=")
        if not sep:
            raise ConfigError(f"--set expects KEY=VALUE, got {flag!r}")
        out.append((key.strip(), _parse_scalar(raw.strip())))
    return out


def _flatten(data: dict[str, Any], defaults: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Dotted keys of a file's tables; a table whose setting is a mapping without default
    (retrieval.index_params) is that setting's value, not a section."""
    out: list[tuple[str, Any]] = []
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and (isinstance(defaults.get(key), dict) or key not in defaults):
            out.extend(_flatten(value, defaults.get(key) or {}, dotted + "."))
        else:
            out.append((dotted, value))
    return out


__all__ = ["AgentsConfig", "Config", "ConfigError", "DoorConfig", "EntropyConfig", "KafkaConfig", "MetricsConfig",
           "MilvusConfig", "ModelConfig", "PackConfig", "PolicyConfig", "RetrievalConfig", "TrainerConfig",
           "VerifyConfig", "load_config"]
