"""Client-side stand-in for the broker's long poll, for development brokers that lack it.

A Kafka broker holds an empty fetch up to fetch.max.wait.ms. noida-db, the embedded development
broker, answers at once, so every idle consumer re-fetches in a tight loop and burns a core
(measured: kafka-python idle on an empty topic used 0.97 CPU-seconds per second; with this
back-off, 0.02). With kafka.idle_fetch_backoff_ms > 0, consumers wait that long after a fetch
that brought nothing (kafka-python's fetcher, which every worker uses). `up` and `demo`
turn it on for the embedded broker; leave it 0 on Kafka.

This module holds every patch of a third-party library's internals, each for the version it was
written against (PATCHED): a different installed version is refused at install time with what to
check, and tests/agents/test_broker_compat.py fails when the pinned version changes.
"""

from __future__ import annotations

import time

_installed: dict[str, float] = {}
# library -> the version whose private internals the patch below was written against
PATCHED = {"kafka-python": "3.0.12"}


class PatchedVersionError(RuntimeError):
    pass


def check_version(library: str, installed: str) -> None:
    if installed != PATCHED[library]:
        raise PatchedVersionError(
            f"{library} {installed} is installed, but broker_compat patches {library} {PATCHED[library]}'s "
            f"internals: check the patched method still exists and behaves the same, then update PATCHED "
            f"(or set kafka.idle_fetch_backoff_ms = 0, which installs no patch)")


def install_backoff(backoff_s: float) -> None:
    """The worker process's back-off (its loop's consumer and the measurement cache's alike)."""
    install_kafka_python_backoff(backoff_s)


def _patch(library: str, installed_version: str, owner: type, method: str, wrap, backoff_s: float) -> None:
    """owner.method = wrap(owner.method, backoff_s), once per process, for the pinned version only."""
    if library in _installed:
        return
    check_version(library, installed_version)
    setattr(owner, method, wrap(getattr(owner, method), backoff_s))
    _installed[library] = backoff_s


def install_kafka_python_backoff(backoff_s: float) -> None:
    """Make kafka-python's fetcher report "nothing to wait on" for backoff_s after a fetch that
    brought nothing: KafkaConsumer then sleeps (retry_backoff_ms at most) instead of sending the
    next fetch at once. Group membership is untouched: the coordinator still runs every poll."""
    if backoff_s > 0:
        import kafka
        from kafka.consumer.fetcher import Fetcher

        _patch("kafka-python", kafka.__version__, Fetcher, "fetch_records", pause_after_empty, backoff_s)


def pause_after_empty(fetch_records, backoff_s: float):
    """Fetcher.fetch_records -> (records, idle); idle=True asks the consumer to sleep, not spin."""

    def fetch_records_or_pause(self, max_records=None, update_offsets=True, timeout_ms=None):
        if time.monotonic() < getattr(self, "_elong_pause_until", 0.0):
            return {}, True
        records, idle = fetch_records(self, max_records, update_offsets=update_offsets, timeout_ms=timeout_ms)
        if not records and not idle:  # a fetch came back with nothing
            self._elong_pause_until = time.monotonic() + backoff_s
        return records, idle

    return fetch_records_or_pause
