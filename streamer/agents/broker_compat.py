"""Client-side stand-in for the broker's long poll, for development brokers that lack it.

A Kafka broker holds an empty fetch up to fetch.max.wait.ms. noida-db, the embedded development
broker, answers at once, so every idle consumer re-fetches in a tight loop and burns a core
(measured: kafka-python idle on an empty topic used 0.97 CPU-seconds per second; with this
back-off, 0.02). With kafka.idle_fetch_backoff_ms > 0, consumers wait that long after a fetch
that brought nothing. `up` and `demo` turn it on for the embedded broker; leave it 0 on Kafka.
"""

from __future__ import annotations

import asyncio

_installed: dict[str, float] = {}


def install_aiokafka_backoff(backoff_s: float) -> None:
    """Make aiokafka's fetcher (used by Faust) pause after a fetch response that carried nothing."""
    if backoff_s <= 0 or "aiokafka" in _installed:
        return
    from aiokafka.consumer.fetcher import Fetcher

    original = Fetcher._proc_fetch_request

    async def fetch_then_wait_if_empty(self, assignment, node_id, request):
        got_data = await original(self, assignment, node_id, request)
        if not got_data:
            await asyncio.sleep(backoff_s)
        return got_data

    Fetcher._proc_fetch_request = fetch_then_wait_if_empty
    _installed["aiokafka"] = backoff_s
