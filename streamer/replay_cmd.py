"""`elong replay`: a threshold change replayed on the running stack (the changed stages' groups reset,
their workers restarted) or on a build folder (its inputs built again)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from entropylong_streamer.config import Config

from .cli_config import build_config, config_from, require_broker
from .views import console


def replay_stack(config: Path | None, overrides: list[str] | None, from_time: str | None, from_offset: int | None,
                 restart: bool) -> None:
    """The running stack's configuration with the change: the plan shown, offsets reset, workers restarted."""
    from . import registry
    from .replay import Origin, ReplayError, plan, reset_offsets
    from .stack_control import embedded, run_dir, running_workers, start_workers, stop_workers

    # The running stack's config (what `up` resolved) is the one being changed, unless a file is given.
    running = run_dir(config_from(config, None)) / "config.json"
    old = config_from(running if running.exists() else config, None)
    new = config_from(config or (running if running.exists() else None), overrides)
    which = config or (f"the running stack's, {running}" if running.exists() else "defaults")
    console.print(f"[dim]configuration: {which}[/dim]")
    require_broker(new)
    try:
        origin = Origin.parse(from_time, from_offset)
        rows = plan(old, new)
        changed = {r.stage for r in rows if r.start != "unchanged"}
        if not changed:
            console.print("no stage's version changes: nothing to replay")
            return
        table = Table(title=f"replay {origin.describe()}: pack version {old.version('pack')} -> {new.version('pack')}")
        for col in ("stage", "input topic", "consumer group", "starts"):
            table.add_column(col)
        for r in rows:
            starts = {"origin": origin.describe(), "latest": "at the end (new upstream version)",
                      "unchanged": "unchanged", "restart": "restarted with the new config"}[r.start]
            table.add_row(r.stage, r.topic, r.new_group, starts)
        console.print(table)
        workers = running_workers(new) if restart else {}
        stopped = stop_workers([p for stage in changed for p in workers.get(stage, [])], old)
        reset_offsets(new, rows, origin)
    except ReplayError as exc:
        console.print(f"[red]replay failed:[/red] {exc}")
        raise typer.Exit(1) from exc
    if workers:
        count = max((len(v) for k, v in workers.items() if registry.stage(k).scalable), default=1)
        started = start_workers(embedded(new) if running.exists() else new, count, only=changed)
        console.print(f"stopped {', '.join(stopped) or 'no workers'}; started {', '.join(w.name for w in started)}")
    else:
        console.print("offsets set; start the changed stages' workers with the new configuration")


def replay_build(config: Path | None, overrides: list[str] | None,
                 out: Path) -> tuple[Config, list[Path], list[Path]] | None:
    """A build's replay: the stages whose version the change moves are named; -> what to build again (the
    configuration, its docs and corpus), None where nothing changes. The measurement caches make the build
    cost only what was never measured."""
    from .batch import read_build_inputs

    try:
        docs, corpus = read_build_inputs(out)
    except FileNotFoundError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    old = build_config(None, None, out, Console(quiet=True))
    new = build_config(config, overrides, out)
    before, after = old.stage_versions(), new.stage_versions()
    changed = [stage for stage, version in after.items() if before.get(stage) != version]
    if not changed:
        console.print("no stage's version changes: nothing to replay")
        return None
    console.print(f"replay of the build {out}: {', '.join(changed)} change (pack version {before['pack']} -> "
                  f"{after['pack']}: a new shard set beside the old); its inputs: "
                  + ", ".join(str(p) for p in [*docs, *corpus]))
    return new, docs, corpus
