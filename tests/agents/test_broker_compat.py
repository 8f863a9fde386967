"""The patch of aiokafka's internals for the embedded broker: tied to the version it was written for,
and never installed against a real Kafka (back-off 0)."""

import aiokafka
import pytest
from aiokafka.consumer.fetcher import Fetcher

from entropylong_streamer.agents import broker_compat


def test_the_installed_library_is_the_version_the_patch_was_written_against():
    # Fails when the lock moves aiokafka: read the new Fetcher._proc_fetch_request, then update PATCHED.
    assert aiokafka.__version__ == broker_compat.PATCHED["aiokafka"]
    assert callable(Fetcher._proc_fetch_request)


def test_another_version_is_refused_with_what_to_check():
    with pytest.raises(broker_compat.PatchedVersionError, match="idle_fetch_backoff_ms = 0"):
        broker_compat.check_version("aiokafka", "0.0.1")


def test_no_back_off_installs_nothing():
    before = Fetcher._proc_fetch_request
    broker_compat.install_aiokafka_backoff(0)
    assert Fetcher._proc_fetch_request is before and "aiokafka" not in broker_compat._installed


def test_a_pause_cancelled_at_stop_returns_as_aiokafka_expects():
    """Fetcher.close() cancels pending fetch tasks and awaits them without suppressing the
    cancellation: the original returns False when cancelled, and so must the pause."""
    import asyncio

    async def nothing_fetched(self, assignment, node_id, request):
        return False

    async def stopped_while_pausing():
        task = asyncio.ensure_future(broker_compat.wait_if_empty(nothing_fetched, 60)(None, None, 0, None))
        await asyncio.sleep(0)  # the task is now in its pause
        task.cancel()
        return await task

    assert asyncio.run(stopped_while_pausing()) is False
