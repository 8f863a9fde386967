"""What the terminal shows: a build's summary, the status table and the live watch."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich import box
from rich.console import Console
from rich.live import Live
from rich.table import Table

from entropylong_streamer.config import Config
from entropylong_streamer.logs import counted

console = Console()


def print_build_summary(report, out: Path) -> None:
    from collections import Counter

    from entropylong_streamer.services.shards import spread_text

    dropped = Counter(d.get("rule", "?") for d in report.dropped)
    if report.documents:
        console.print(f"{counted(report.documents, 'document')} -> {counted(len(report.shards), 'new shard')} "
                      f"({counted(sum(s.samples for s in report.shards), 'sample')}) in {out / 'shards'}")
    if report.shard_set:
        sset = report.shard_set
        again = f"; {report.already_packed} of these documents were in it already" if report.already_packed else ""
        console.print(f"  shard set {sset['dir']}: {counted(sset['shards'], 'shard')}, "
                      f"{counted(sset['samples'], 'sample')}{again}")
    if report.samples.get("samples"):
        s = report.samples
        console.print(f"  samples: {spread_text(s['tokens'], 'tokens')}; "
                      f"{spread_text(s['contexts'], 'verified contexts')}; "
                      f"dependency distance (context end to anchor) {spread_text(s['distance'], 'tokens')}")
        if len(s["by_depth"]) > 1:  # pack.depth > 1 put contexts of contexts in
            console.print(f"  documents a sample joins: {spread_text(s['documents'], 'documents')}; " + "; ".join(
                f"depth {k}: {spread_text(v['contexts'], 'contexts')}, "
                f"edges {spread_text(v['distance'], 'tokens')} apart" for k, v in s["by_depth"].items()))
    if report.cost.get("emitted_tokens"):
        from entropylong_streamer.quality.command import cost_line

        console.print(f"  {cost_line(report.cost)}")
    if report.documents:
        console.print(f"  dependencies (this build's documents): {out / 'dependencies.jsonl'}")
    console.print(f"  dropped at the door: {len(report.dropped)}"
                  + (f" ({', '.join(f'{r} {n}' for r, n in dropped.most_common())}) in {out / 'dropped.jsonl'}"
                     if report.dropped else ""))
    if report.dead_letters:
        reasons = Counter(f"{d['stage']}: {d['reason'].split(':')[0]}" for d in report.dead_letters)
        console.print(f"  dead letters: {len(report.dead_letters)} in {out / 'dead-letter.jsonl'}: "
                      + ", ".join(f"{r} ({n})" for r, n in reasons.most_common(5)))
    if report.documents == 0:
        why = ("--docs names no file (an empty directory?)" if not report.files else
               f"every row of the {counted(report.files, 'file')} was turned away: the reasons above"
               if report.dropped or report.dead_letters else
               f"no document in the {counted(report.files, 'file')} read (empty?)")
        console.print(f"[red]no usable document was read[/red]: {why}; nothing was built")
    table = Table(title="stage counts")
    for col in ("stage", "counts"):
        table.add_column(col)
    for name, stats in report.stats.items():
        table.add_row(name, ", ".join(f"{k} {v:,}" for k, v in sorted(stats.items())))
    console.print(table)


def status_table(cfg: Config, previous: list | None = None, letters: bool = True) -> tuple[Table, list | None]:
    """The status table and the snapshot it shows (None: broker unreachable); given an earlier
    snapshot, the records/s column too; `letters`: the dead letters by stage and reason (a read of the
    whole dead-letter topic: not at every refresh of a live view)."""
    from entropylong_streamer.services.shards import spread_text

    from .status import collect, shard_summary, with_rates

    # Fits 80 columns: topics without their prefix (in the title), no vertical rules, short headers.
    prefix = cfg.kafka.topic_prefix
    table = Table(title=f"entropylong-streamer  pack version {cfg.version('pack')}, topics {prefix}*",
                  box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("stage", "input topic", "parts", "workers", "committed", "lag", "rec/s"):  # produced: + lag
        table.add_column(col, no_wrap=True, justify="left" if col in ("stage", "input topic") else "right")
    try:
        rows = with_rates(collect(cfg), previous)
        for row in rows:
            consumers = "?" if row.consumers is None else str(row.consumers)
            table.add_row(row.stage, row.topic.removeprefix(prefix), str(row.partitions), consumers,
                          f"{row.committed:,}", f"{row.lag:,}", "" if row.rate is None else f"{row.rate:.1f}")
    except Exception as exc:  # broker not reachable: say so in the table instead of a traceback
        rows = None
        table.add_row("-", f"broker unreachable: {type(exc).__name__}", "", "", "", "", "")
    s = shard_summary(cfg)
    loss = "" if s["loss_first"] is None else f", trainer loss {s['loss_first']:.3f} -> {s['loss_last']:.3f}"
    per_sample = f" ({s['contexts'] / s['samples']:.1f} per sample)" if s["samples"] else ""
    table.caption = (f"{s['shards']} shards, {s['samples']} samples with {s['contexts']} verified contexts"
                     f"{per_sample}, {s['tokens']} tokens; sample tokens {spread_text(s['sample_tokens'])}; "
                     f"dependency distance {spread_text(s['dependency_distance'], 'tokens')}; "
                     f"trainer consumed {s['trained_shards']} shards{loss}")
    table.caption += "".join(f"\n{line}" for line in trouble_lines(cfg, rows is not None and letters))
    return table, rows


def trouble_lines(cfg: Config, read_letters: bool) -> list[str]:
    """What the lag alone does not say: workers waiting out an outage (their batches uncommitted), and the
    dead letters by stage and reason."""
    from .status import dead_letter_counts, outages

    lines = [f"[yellow]waiting[/yellow]: {o['stage']} on its {o['reason'].replace('_', ' ')} for "
             f"{time.time() - o['since']:.0f} s ({o['tries']} tries): {o['error']}" for o in outages(cfg)]
    if read_letters:
        try:
            dead = dead_letter_counts(cfg)
        except Exception as exc:  # the table above says what is wrong with the broker
            dead = None
            lines.append(f"dead letters: unreadable ({type(exc).__name__})")
        if dead:
            lines.append(f"dead letters {sum(dead.values()):,}: " + ", ".join(
                f"{stage} {reason} {n:,}" for (stage, reason), n in sorted(dead.items())))
    return lines


def watch(cfg: Config, until: int | None, workers: list | None = None) -> None:
    """Refresh the status table; with `until`, return once that many documents are in shards,
    dead-lettered or dropped at the door, and the trainer has consumed every shard. A worker that
    dies ends the watch with its log's last lines and exit status 1."""
    from entropylong_streamer.topics import DEAD_LETTER, DROPPED

    away = [t.full_name(cfg.kafka.topic_prefix) for t in (DEAD_LETTER, DROPPED)]
    table, rows = status_table(cfg, letters=False)
    try:
        _watch(cfg, until, workers, away, table, rows)
    finally:
        if not console.is_terminal:  # Live ends its last frame with a newline on a terminal only
            console.line()


def _watch(cfg: Config, until: int | None, workers: list | None, away: list[str], table: Table,
           rows: list | None) -> None:
    from .status import collect, end_offsets, shard_summary

    with Live(table, console=console, refresh_per_second=1) as live:
        while True:
            time.sleep(2)  # a display refresh interval, not synchronisation
            table, rows = status_table(cfg, rows, letters=False)
            live.update(table)
            dead = [w for w in workers or [] if not w.alive()]
            if dead:
                live.stop()
                console.print(f"[red]{dead[0].name} exited[/red]; the end of {dead[0].log_path}:")
                console.print(dead[0].log_tail(12), markup=False, highlight=False)
                raise typer.Exit(1)
            if until is None:
                continue
            s = shard_summary(cfg)
            lag = sum(r.lag for r in (rows if rows is not None else collect(cfg)))  # the table's snapshot
            dead = sum(end_offsets(cfg, away).values())
            if s["samples"] + dead >= until and lag == 0 and s["trained_shards"] >= s["shards"]:
                return


def dead_letter_table(letters: list) -> Table:
    """Dead letters by stage and reason, with one example each."""
    from .dead_letters import by_reason

    table = Table(title=f"{len(letters):,} dead letters", box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("stage", "reason", "letters", "example"):
        table.add_column(col, justify="right" if col == "letters" else "left")
    for (st, kind), n in sorted(by_reason(letters).items()):
        first = next(x for x in letters if (x.stage, x.kind) == (st, kind))
        table.add_row(st, kind, f"{n:,}", first.reason[:120] + (f" (attempts {first.attempts})"
                                                                  if first.attempts > 1 else ""))
    return table


def topics_table(before: dict[str, int], after: dict[str, int]) -> Table:
    table = Table(title="topics")
    for col in ("topic", "partitions before", "partitions now"):
        table.add_column(col)
    for name in sorted(after):
        table.add_row(name, str(before.get(name) or "-"), str(after[name]))
    return table
