"""Record faults and outages, told apart in one place.

A record fault is the record's (undecodable, invalid, a stage's reject, an exception the record
raises again alone): it goes to the dead letters. An outage is the infrastructure's (the vector
store, the broker, the engine, the file system): nothing is dead-lettered and nothing committed;
the worker backs off and runs the same batch again, and lag shows the wait. An engine that cannot
recover in-process (vLLM's engine dead, weights lost) ends the worker non-zero, uncommitted, for
its supervisor to restart.

What counts as an outage was decided by reading what each library raises: pymilvus
(`MilvusException` code 2 "Fail connecting to server" while a server is down, code 101 "collection
released" after it restarts, rate limits and denied writes, `retriable`; its input errors are the
record's), kafka-python (`KafkaError` but a record too large), torch (`OutOfMemoryError`), vLLM
(`EngineDeadError`), grpc (`UNAVAILABLE`, `DEADLINE_EXCEEDED`, `RESOURCE_EXHAUSTED`), the OS
(`OSError`: a full disk, a missing mount, a refused connection) and SQLite (`OperationalError` of a
full, failing, missing or locked database file).
"""

from __future__ import annotations

import json
import logging
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from entropylong_streamer import metrics

log = logging.getLogger(__name__)
T = TypeVar("T")

VECTOR_STORE, BROKER, ENGINE, FILESYSTEM, NETWORK = "vector_store", "broker", "engine", "filesystem", "network"
# pymilvus codes of a store that is down, restarting or refusing work for now (not the request's fault)
_MILVUS_OUTAGE_CODES = {2, 8, 9, 101}  # connect failed, rate limited, writes denied, collection not loaded
_MILVUS_INPUT_ERRORS = {"ParamError", "DataTypeNotMatchException", "DataNotMatchException", "PrimaryKeyException",
                        "FieldsTypeException", "FieldTypeException", "DataTypeNotSupportException"}
_GRPC_OUTAGE = {"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED"}
_KAFKA_RECORD_ERRORS = {"MessageSizeTooLargeError", "RecordListTooLargeError"}
# SQLite's words for a disk that is full, gone or busy (its OperationalError is also a statement's error)
_SQLITE_OUTAGE = ("disk is full", "disk I/O error", "unable to open database file", "database is locked")
_FATAL = {"EngineDeadError", "EngineStateLost"}  # the engine's state is gone: only a new process recovers


class Outage(Exception):
    """The batch met an outage: run it again later, dead-letter nothing, commit nothing."""

    def __init__(self, reason: str, cause: BaseException) -> None:
        super().__init__(f"{reason}: {type(cause).__name__}: {cause}")
        self.reason = reason
        self.cause = cause


class EngineLost(Exception):
    """The engine cannot recover in this process: the worker exits non-zero without committing."""


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _names(exc: BaseException) -> set[str]:
    return {c.__name__ for c in type(exc).__mro__}


def _one(exc: BaseException) -> str | None:
    names = _names(exc)
    if names & _FATAL:
        raise EngineLost(f"{type(exc).__name__}: {exc}") from exc
    if "MilvusException" in names:
        if names & _MILVUS_INPUT_ERRORS or getattr(exc, "is_input_error", False):
            return None
        if getattr(exc, "code", None) in _MILVUS_OUTAGE_CODES or getattr(exc, "retriable", False) or names & {
                "ConnectError", "MilvusUnavailableException", "ConnectionNotExistException"}:
            return VECTOR_STORE
        return None
    if "KafkaError" in names:
        return None if names & _KAFKA_RECORD_ERRORS else BROKER
    if "OutOfMemoryError" in names:  # torch: CUDA (or another device) ran out of memory
        return ENGINE
    if "RpcError" in names:
        code = getattr(exc, "code", None)
        status = code() if callable(code) else None
        return VECTOR_STORE if getattr(status, "name", "") in _GRPC_OUTAGE else None
    if isinstance(exc, OSError):
        return NETWORK if isinstance(exc, ConnectionError | TimeoutError) else FILESYSTEM
    if isinstance(exc, sqlite3.OperationalError) and any(w in str(exc) for w in _SQLITE_OUTAGE):
        return FILESYSTEM  # the state beside a shard set, the caches, the door's index: its disk, not the record
    return None


def outage_reason(exc: BaseException) -> str | None:
    """The kind of outage behind exc, or None for a fault that may be the record's. Raises EngineLost
    when the engine is gone for good."""
    for e in _chain(exc):
        if (reason := _one(e)) is not None:
            return reason
    return None


def as_outage(exc: BaseException) -> Outage | None:
    """exc as an Outage where it is one (EngineLost where the engine is gone for good)."""
    reason = outage_reason(exc)
    return None if reason is None else Outage(reason, exc)


def retrying(call: Callable[[], T], blocked: Blocked, stop: threading.Event) -> T | None:
    """call() until it returns, waiting out outages (None: stop was set while waiting); any other
    failure raises."""
    while not stop.is_set():
        try:
            got = call()
        except Exception as exc:
            if (outage := as_outage(exc)) is None:
                raise
            blocked.wait(outage, stop)
            continue
        blocked.clear()
        return got
    return None


@dataclass
class Backoff:
    """Capped, jittered exponential waits between tries of the same batch: a random wait between half
    and all of min(cap, base * 2**tries), so that workers hit by one outage do not retry in step."""

    base_s: float = 0.5
    cap_s: float = 30.0
    tries: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def wait(self, stop: threading.Event) -> bool:
        """Wait the next delay (False: stop was set meanwhile)."""
        delay = min(self.cap_s, self.base_s * 2 ** self.tries)
        delay = self.rng.uniform(delay / 2, delay)
        self.tries += 1
        return not stop.wait(delay)

    def reset(self) -> None:
        self.tries = 0


class Blocked:
    """A worker waiting out an outage: its gauge (elong_stage_blocked{stage,reason}), a log line when the
    wait begins and ends, the retry counter, the back-off, and a state file (`state_file`, where given:
    `elong status` reads the embedded stack's from its run directory)."""

    def __init__(self, stage: str, backoff: Backoff, state_file: Path | None = None) -> None:
        self.stage, self.backoff, self.state_file = stage, backoff, state_file
        self.reason: str | None = None
        self.since = 0.0

    def wait(self, outage: Outage, stop: threading.Event) -> None:
        if outage.reason != self.reason:
            self.clear(quiet=True)
            log.warning("%s: %s; the batch waits, uncommitted, and runs again", self.stage, outage)
            self.reason, self.since = outage.reason, time.time()
        metrics.BLOCKED.labels(self.stage, outage.reason).set(1)
        metrics.OUTAGE_RETRIES.labels(self.stage, outage.reason).inc()
        if self.state_file is not None:
            state = {"stage": self.stage, "reason": outage.reason, "since": self.since, "pid": os.getpid(),
                     "tries": self.backoff.tries + 1, "error": str(outage)[:300]}
            write_atomic(self.state_file, json.dumps(state))
        self.backoff.wait(stop)

    def clear(self, quiet: bool = False) -> None:
        if self.reason is None:
            return
        if not quiet:
            log.warning("%s: the %s outage is over after %d tries", self.stage, self.reason, self.backoff.tries)
        metrics.BLOCKED.labels(self.stage, self.reason).set(0)
        if self.state_file is not None:
            self.state_file.unlink(missing_ok=True)
        self.reason = None
        self.backoff.reset()


def outage_file(cfg, stage: str) -> Path:
    """Where a worker says it waits out an outage: one file per worker in the run directory."""
    return cfg.paths.run / f"{cfg.agents.instance_id or f'{stage}-{os.getpid()}'}.outage.json"


def write_atomic(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as exc:  # the disk may be the outage: the gauge and the log still say it
        log.warning("could not write %s: %s", path, exc)
