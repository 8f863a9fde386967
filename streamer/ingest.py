"""`ingest`: files through the door to the docs topic; bad rows dead-lettered, documents the door
turns away to the dropped topic with their rule. Nothing leaves silently.

The door is what a document must pass before any LM work, each decision counted, each drop kept.
Order (cheapest first): the exact text seen before (its doc_id; admitted or dropped), length and
quality rules, language, then near-duplicates of any document ever admitted (MinHash LSH).

Each batch is sent and acknowledged before the door's decisions and the files' progress commit
(one SQLite transaction, data_dir/door.sqlite): after a crash the next run resumes every file
after its last committed item. Only the one batch in flight at the crash can be sent twice, and
every stage after the door drops a doc_id it already has.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from rich.console import Console
from rich.progress import Progress

from entropylong_streamer.config import Config, DoorConfig
from entropylong_streamer.topics import DEAD_LETTER, DOCS, DROPPED, DeadLetter, Doc, DroppedDoc

from . import metrics
from .agents import kafka_clients as kc
from .agents.worker_loop import Produced
from .logs import counted
from .method.near_dup import NearDuplicateRule, band_keys
from .method.text_quality import quality_problem
from .services.door_index import DoorIndex
from .sources import BadRow, iter_paths, read_documents
from .stages.base import Stats


class LanguageId:
    """lingua, offline (its models ship in the wheel), over every language it knows, so that a text
    in an unconfigured language is recognised as such rather than forced into a configured one."""

    def __init__(self, languages: list[str], min_confidence: float, max_chars: int = 2000) -> None:
        from lingua import IsoCode639_1, Language, LanguageDetectorBuilder

        self.wanted = {Language.from_iso_code_639_1(getattr(IsoCode639_1, code.upper())) for code in languages}
        self.min_confidence = min_confidence
        self.max_chars = max_chars
        # All models at start-up (~4 s): loaded lazily, each language's first text pays for it.
        self.detector = LanguageDetectorBuilder.from_all_languages().with_preloaded_language_models().build()

    def problem(self, text: str) -> str | None:
        values = self.detector.compute_language_confidence_values(text[: self.max_chars])
        if not values:
            return "no language recognised"
        top = values[0]
        code = top.language.iso_code_639_1.name.lower()
        if top.language not in self.wanted:
            return f"{code} ({top.value:.2f})"
        if top.value < self.min_confidence:
            return f"{code} with confidence {top.value:.2f} < {self.min_confidence}"
        return None


@dataclass(eq=False)
class Door:
    name: ClassVar[str] = "door"
    cfg: DoorConfig
    index: DoorIndex
    stats: Stats = field(default_factory=Stats, init=False)

    def __post_init__(self) -> None:
        self.language = LanguageId(self.cfg.languages, self.cfg.min_language_confidence) if self.cfg.languages else None
        self.rule = NearDuplicateRule(*self.cfg.near_duplicate_rule())  # retrieval's leakage guard shares it

    def admit(self, doc: Doc) -> Doc | DroppedDoc:
        if self.index.seen(doc.doc_id):  # doc_id is a hash of the text
            return self._drop(doc, "exact_duplicate", "the same text was seen before", doc.doc_id)
        self.index.add_seen([doc.doc_id])
        c = self.cfg
        broken = quality_problem(doc.text, c.min_words, c.max_words, c.min_mean_word_length, c.max_mean_word_length,
                                 c.max_symbol_ratio, c.min_alpha_word_ratio, c.max_duplicate_line_ratio)
        if broken is not None:
            return self._drop(doc, *broken)
        if self.language is not None and (problem := self.language.problem(doc.text)) is not None:
            return self._drop(doc, "language", problem)
        if c.near_dedup:
            sig = self.rule.signature(doc.text)
            keys = band_keys(sig, c.lsh_bands)
            near = self.index.nearest(sig, keys, self.rule.threshold)
            if near is not None:
                return self._drop(doc, "near_duplicate", f"estimated Jaccard {near[1]:.2f}", near[0])
            self.index.add_signature(doc.doc_id, sig, keys)
        self.stats.forwarded()
        return doc

    def _drop(self, doc: Doc, rule: str, detail: str, duplicate_of: str = "") -> DroppedDoc:
        self.stats.dropped(rule)
        return DroppedDoc(doc_id=doc.doc_id, **doc.origin(), rule=rule,
                          detail=detail, duplicate_of=duplicate_of)


def door_index_path(cfg: Config) -> Path:
    return cfg.paths.door


def open_door(cfg: Config) -> Door:
    """The door over data_dir's index."""
    return Door(cfg.door, DoorIndex(door_index_path(cfg)))


class Ingest:
    """One ingest run: files in, batches out, progress committed after each acknowledged batch."""

    def __init__(self, cfg: Config, console: Console, door: Door | None = None, transport=None) -> None:
        """transport: where the records go, acknowledged when send() returns (the broker by
        default; batch mode's in-memory topics)."""
        self.cfg, self.console = cfg, console
        self.door = door or open_door(cfg)
        self.transport = transport or kc.KafkaTopics(cfg)
        self.sent = self.dropped = self.bad = self.files_skipped = 0
        self.rules: Counter[str] = Counter()
        self.batch: list[Produced] = []
        self.progress: dict[Path, tuple[int, int, int, bool]] = {}  # path -> (size, mtime_ns, items, done)

    def file(self, path: Path) -> None:
        if not path.is_file():
            self._decide(BadRow(str(path), "no such file"))
            return
        st = path.stat()
        start, done = self.door.index.file_progress(path)
        if done:
            self.files_skipped += 1
            return
        items = start
        for i, item in enumerate(read_documents([path], self.cfg.door.html_extractor)):
            if i < start:  # decided and committed by an earlier run
                continue
            self._decide(item)
            items = i + 1
            self.progress[path] = (st.st_size, st.st_mtime_ns, items, False)
            if len(self.batch) >= self.cfg.door.batch_records:
                self.flush()
        self.progress[path] = (st.st_size, st.st_mtime_ns, items, True)

    def _decide(self, item: Doc | BadRow) -> None:
        if isinstance(item, BadRow):
            self.bad += 1
            self.batch.append(bad_row_letter(item))
            if self.bad <= 20:
                self.console.print(f"[yellow]skipped[/yellow] {item.where}: {item.reason}")
            metrics.DOOR.labels("bad_row").inc()
            return
        out = self.door.admit(item)
        if isinstance(out, Doc):
            self.batch.append(Produced.of(DOCS, out))
            self.sent += 1
            metrics.DOOR.labels("admitted").inc()
        else:
            self.batch.append(Produced.of(DROPPED, out))
            self.dropped += 1
            self.rules[out.rule] += 1
            metrics.DOOR.labels(out.rule).inc()

    def flush(self) -> None:
        self.transport.send(self.batch)  # returns once acknowledged
        for path, (size, mtime_ns, items, done) in self.progress.items():
            self.door.index.set_file_progress(path, size, mtime_ns, items, done)
        self.door.index.commit()
        self.batch.clear()
        self.progress.clear()

    def close(self, ok: bool) -> None:
        try:
            if ok:
                self.flush()
            else:
                self.door.index.rollback()  # undecided: read and sent again by the next run
        finally:
            self.transport.close()

    def summary(self) -> None:
        if self.bad > 20:
            self.console.print(f"[yellow]... {counted(self.bad - 20, 'more bad row')}[/yellow] "
                               "(all in the dead-letter topic)")
        if self.rules:
            self.console.print("dropped at the door: " + ", ".join(f"{n} {r}" for r, n in self.rules.most_common()))
        if self.files_skipped:
            self.console.print(f"{self.files_skipped} files already ingested to their end: skipped")


def bad_row_letter(item: BadRow) -> Produced:
    rec = DeadLetter(stage="ingest", reason=item.reason, topic=item.where, payload=b"", source_id=item.source_id)
    return Produced.of(DEAD_LETTER, rec)


def ingest_paths(cfg: Config, paths: list[Path], console: Console, door: Door | None = None) -> tuple[int, int, int]:
    """-> (sent, dropped by the door, bad rows)."""
    run = Ingest(cfg, console, door)
    ok = False
    try:
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("ingesting files", total=None)
            for path in iter_paths(paths):
                run.file(path)
                progress.advance(task)
        ok = True
    finally:
        run.close(ok)
    run.summary()
    return run.sent, run.dropped, run.bad


PARTIAL = (".tmp", ".part", ".crdownload")


def follow(cfg: Config, directory: Path, console: Console, stop: threading.Event | None = None,
           rescan_ms: int = 5000) -> Ingest:
    """Ingest every file in `directory` not ingested yet, then each new or grown file as it lands,
    until `stop` is set. Files being written should land by rename; names starting with a dot or
    ending in .tmp/.part are ignored until then."""
    import watchfiles

    def wanted(p: Path) -> bool:
        return p.is_file() and not p.name.startswith(".") and not p.name.endswith(PARTIAL)

    run = Ingest(cfg, console)

    def scan() -> None:
        for path in iter_paths([directory]):
            if wanted(path):
                run.file(path)
        run.flush()

    ok = False
    try:
        scan()
        console.print(f"following {directory}: {run.sent} documents so far; new files are taken as they land")
        before = (run.sent, run.dropped, run.bad)
        # On every change, and every few seconds anyway, look at the whole directory again: a file
        # that landed before the watcher started is found, and finished files cost one lookup each.
        for _ in watchfiles.watch(directory, stop_event=stop, recursive=True, rust_timeout=rescan_ms,
                                  yield_on_timeout=True):
            scan()
            if (run.sent, run.dropped, run.bad) != before:
                before = (run.sent, run.dropped, run.bad)
                console.print(f"{counted(run.sent, 'document')} sent, {run.dropped} dropped at the door, "
                              f"{counted(run.bad, 'bad row')}")
        ok = True
    finally:
        run.close(ok)
    return run


def index_paths(cfg: Config, paths: list[Path], console: Console) -> None:
    """The corpus into the pool, through the index stage's adapter as batch mode runs it."""
    from rich.progress import Progress

    from . import registry
    from .agents.workers import StageWorker
    from .batch import drive, load_pool
    from .pipeline import Pipeline

    pool = load_pool(paths, cfg)
    bad = pool.records(DEAD_LETTER)
    for letter in bad[:20]:
        console.print(f"[yellow]skipped[/yellow] {letter.topic}: {letter.reason}")
    if len(bad) > 20:
        console.print(f"[yellow]... {counted(len(bad) - 20, 'more bad row')}[/yellow]")
    indexer = StageWorker.build(cfg, registry.stage("index"), Pipeline(cfg))
    with Progress(console=console) as progress:
        drive(indexer, pool, DOCS, cfg.agents.batch_size("index"), progress, "indexing")
    console.print(f"indexed {indexer.stage.stats['chunks']} chunks from {len(pool.messages(DOCS))} documents")
