"""Dead letters: what they hold by stage and reason, and sending them back to their input topics.

A dead letter keeps the record's original bytes and the topic it was read from, so a redrive puts
exactly that record back where its stage reads; the packer's (document, version) dedupe makes a
redrive of something already packed harmless. The dead-letter topic is append-only: a redriven
letter stays in it, and a record that fails again is dead-lettered again.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from entropylong_streamer.config import Config
from entropylong_streamer.topics import DEAD_LETTER, DeadLetter, RecordError


@dataclass(frozen=True)
class Letter:
    stage: str
    reason: str
    topic: str  # the input topic it was read from (ingest's bad rows: the file and line)
    doc_id: str = ""
    source_id: str = ""
    attempts: int = 1
    payload: bytes = b""
    key: bytes | None = None

    @property
    def kind(self) -> str:
        """The reason's head: "decode", "error", a stage's rule ("too_long", "empty text")."""
        return self.reason.split(":")[0]

    def matches(self, stage: str | None, reason: str | None) -> bool:
        return (stage is None or self.stage == stage) and (reason is None or reason.lower() in self.reason.lower())


def from_topic(cfg: Config) -> list[Letter]:
    from entropylong_streamer.quality.report import topic_messages

    out = []
    for msg in topic_messages(cfg, DEAD_LETTER):
        try:
            d: DeadLetter = DEAD_LETTER.decode(msg.value)
        except RecordError as exc:
            out.append(Letter("?", f"undecodable dead letter: {exc}", ""))
            continue
        out.append(Letter(d.stage, d.reason, d.topic, d.doc_id, d.source_id, d.attempts, d.payload, d.key))
    return out


def from_batch(out: Path) -> list[Letter]:
    """A batch build's dead-letter.jsonl (no payloads: a build is run again, not redriven)."""
    path = out / "dead-letter.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"no {path}: is {out} the --out of an `elong build`?")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [Letter(r["stage"], r["reason"], r.get("topic", ""), r.get("doc_id", ""), r.get("source_id", ""),
                   r.get("attempts", 1)) for r in rows]


def by_reason(letters: Iterable[Letter]) -> Counter[tuple[str, str]]:
    return Counter((x.stage, x.kind) for x in letters)


def redrivable(cfg: Config, letters: Iterable[Letter], stage: str | None, reason: str | None
               ) -> tuple[list[Letter], int]:
    """The letters to send back (matching stage and reason, with a payload and a pipeline input topic)
    and how many matched but cannot go back (ingest's bad rows: a file's line, no record)."""
    from .status import topic_partitions

    topics = set(topic_partitions(cfg))
    chosen, stuck = [], 0
    for x in letters:
        if not x.matches(stage, reason):
            continue
        if x.payload and x.topic in topics and x.topic != DEAD_LETTER.full_name(cfg.kafka.topic_prefix):
            chosen.append(x)
        else:
            stuck += 1
    return chosen, stuck


def redrive(cfg: Config, letters: list[Letter]) -> None:
    """Send each letter's original record back to its input topic and wait for every acknowledgement."""
    from .agents import kafka_clients as kc

    prod = kc.producer(cfg)
    try:
        futures = [prod.send(x.topic, key=x.key, value=x.payload) for x in letters]
        prod.flush()
        for f in futures:
            f.get(timeout=30)
    finally:
        prod.close()
