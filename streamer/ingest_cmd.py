"""`ingest`: documents from files to the docs topic, each distinct text once, bad rows dead-lettered."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.progress import Progress

from entropylong_streamer.config import Config
from entropylong_streamer.topics import DEAD_LETTER, DOCS, DeadLetter

from .agents import kafka_clients as kc
from .agents.adapter import Produced
from .stages.ingest import BadRow, read_documents


def ledger_path(cfg: Config) -> Path:
    return Path(cfg.data_dir) / "ingested.ids"


def ingest_paths(cfg: Config, paths: list[Path], console: Console) -> tuple[int, int, int]:
    """-> (sent, skipped as already ingested, bad rows). The ledger is appended only after acks."""
    ledger = ledger_path(cfg)
    seen = set(ledger.read_text().split()) if ledger.exists() else set()
    prefix = cfg.kafka.topic_prefix
    prod = kc.producer(cfg)
    sent = skipped = bad = 0
    batch: list[Produced] = []
    new_ids: list[str] = []

    def flush() -> None:
        kc.send_all(prod, prefix, batch)
        ledger.parent.mkdir(parents=True, exist_ok=True)
        with open(ledger, "a") as fh:
            fh.writelines(f"{d}\n" for d in new_ids)
        batch.clear()
        new_ids.clear()

    try:
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("ingesting", total=None)
            for item in read_documents(paths):
                if isinstance(item, BadRow):
                    bad += 1
                    rec = DeadLetter(stage="ingest", reason=item.reason, topic=item.where, payload=b"")
                    batch.append(Produced(DEAD_LETTER, DEAD_LETTER.key(rec), DEAD_LETTER.encode(rec)))
                    console.print(f"[yellow]skipped[/yellow] {item.where}: {item.reason}")
                elif item.doc_id in seen:
                    skipped += 1
                else:
                    seen.add(item.doc_id)
                    new_ids.append(item.doc_id)
                    batch.append(Produced(DOCS, DOCS.key(item), DOCS.encode(item)))
                    sent += 1
                if len(batch) >= 256:
                    flush()
                progress.advance(task)
            flush()
    finally:
        prod.close()
    return sent, skipped, bad
