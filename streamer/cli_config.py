"""Which configuration a command runs with (a file, the running stack's, a build folder's; --set on top),
and what is refused before anything loads (a missing input, a model path that names no model, no broker)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from entropylong_streamer.config import Config, ConfigError, load_config

from .views import console


def config_from(config: Path | None, overrides: list[str] | None) -> Config:
    try:
        return load_config(config, overrides or [])
    except ConfigError as exc:
        console.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from exc


def stack_config(config: Path | None, overrides: list[str] | None, note: Console | None = None) -> Config:
    """The configuration of the running stack: what `up` saved in data_dir/run/config.json (its
    resolved settings: ports, flags), unless --config names a file; --set applies on top. Says which."""
    from .stack_control import run_dir

    return saved_config(config, overrides, run_dir(config_from(config, overrides)) / "config.json",
                         "the running stack's", note)


def build_config(config: Path | None, overrides: list[str] | None, out: Path, note: Console | None = None) -> Config:
    """The configuration of a build folder: what `elong build` saved in OUT/config.json (its resolved
    settings, secrets masked), unless --config names a file; --set applies on top. Says which."""
    from .batch import BUILD_CONFIG

    return saved_config(config, overrides, out / BUILD_CONFIG, "the build's", note)


def saved_config(config: Path | None, overrides: list[str] | None, saved: Path, whose: str,
                  note: Console | None = None) -> Config:
    flags = ", --set on top" if overrides else ""
    if config is None and saved.exists():
        (note or console).print(f"[dim]configuration: {whose}, {saved}{flags} (--config names another)[/dim]")
        return config_from(saved, overrides)
    where = str(config) if config is not None else f"the defaults (none at {saved})"
    (note or console).print(f"[dim]configuration: {where}{flags}[/dim]")
    return config_from(config, overrides)


def require_broker(cfg: Config) -> None:
    """A command that needs Kafka and finds no broker says so in one line, at once: not a client's
    retries for half a minute and a traceback."""
    from .services.processes import port_open

    for server in cfg.kafka.bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        if port.isdigit() and port_open(host.strip("[]") or "127.0.0.1", int(port)):
            return
    console.print(f"[red]no Kafka broker answers at {cfg.kafka.bootstrap_servers}[/red] (kafka.bootstrap_servers): "
                  "start the embedded stack with `elong up --detach`, or point kafka.bootstrap_servers at yours")
    raise typer.Exit(1)


def check_build_inputs(cfg: Config, paths: list[Path], out: Path) -> None:
    """What can be known before any model loads: missing inputs, an --out that is a file, a model
    path that names nothing."""
    problems = [f"{p}: no such file or directory" for p in paths if not p.exists()]
    if out.exists() and not out.is_dir():
        problems.append(f"--out {out} is a file, not a directory")
    problems += model_problems(cfg)
    for problem in problems:
        console.print(f"[red]error:[/red] {problem}")
    if problems:
        raise typer.Exit(2)


def model_problems(cfg: Config) -> list[str]:
    from .services.models import unknown_model_spec

    return [f"model.path: {problem}"] if (problem := unknown_model_spec(cfg.model.path)) is not None else []


def refuse_unknown_model(cfg: Config) -> None:
    """A model.path that names no model, in one line before anything loads (exit 2)."""
    for problem in model_problems(cfg):
        console.print(f"[red]error:[/red] {problem}")
        raise typer.Exit(2)
