"""Client-side stand-in for the broker's long poll, for development brokers that lack it.

A Kafka broker holds an empty fetch up to fetch.max.wait.ms. noida-db, the embedded development
broker, answers at once, so every idle consumer re-fetches in a tight loop and burns a core
(measured: kafka-python idle on an empty topic used 0.97 CPU-seconds per second; with this
back-off, 0.02). With kafka.idle_fetch_backoff_ms > 0, consumers wait that long after a fetch
that brought nothing. `up` and `demo` turn it on for the embedded broker; leave it 0 on Kafka.

This module holds every patch of a third-party library's internals, each for the version it was
written against (PATCHED): a different installed version is refused at install time with what to
check, and tests/agents/test_broker_compat.py fails when the pinned version changes.
"""

from __future__ import annotations

import asyncio

_installed: dict[str, float] = {}
# library -> the version whose private internals the patch below was written against
PATCHED = {"aiokafka": "0.14.0"}


class PatchedVersionError(RuntimeError):
    pass


def check_version(library: str, installed: str) -> None:
    if installed != PATCHED[library]:
        raise PatchedVersionError(
            f"{library} {installed} is installed, but broker_compat patches {library} {PATCHED[library]}'s "
            f"internals: check the patched method still exists and behaves the same, then update PATCHED "
            f"(or set kafka.idle_fetch_backoff_ms = 0, which installs no patch)")


def install_aiokafka_backoff(backoff_s: float) -> None:
    """Make aiokafka's fetcher (used by Faust) pause after a fetch response that carried nothing."""
    if backoff_s <= 0 or "aiokafka" in _installed:
        return
    import aiokafka
    from aiokafka.consumer.fetcher import Fetcher

    check_version("aiokafka", aiokafka.__version__)

    Fetcher._proc_fetch_request = wait_if_empty(Fetcher._proc_fetch_request, backoff_s)
    _installed["aiokafka"] = backoff_s


def wait_if_empty(proc_fetch_request, backoff_s: float):
    """Fetcher._proc_fetch_request, then a pause when it brought nothing. A cancelled pause returns
    like the original does when cancelled (False, no exception): Fetcher.close() cancels its
    pending fetch tasks and awaits them unguarded, so a CancelledError from the pause printed a
    traceback at every worker's stop."""

    async def fetch_then_wait_if_empty(self, assignment, node_id, request):
        got_data = await proc_fetch_request(self, assignment, node_id, request)
        if not got_data:
            try:
                await asyncio.sleep(backoff_s)
            except asyncio.CancelledError:
                return False
        return got_data

    return fetch_then_wait_if_empty
