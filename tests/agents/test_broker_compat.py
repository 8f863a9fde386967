"""The patch of kafka-python's internals for the embedded broker: tied to the version it was
written for, and never installed against a real Kafka (back-off 0)."""

import kafka
import pytest
from kafka.consumer.fetcher import Fetcher as KafkaPythonFetcher

from entropylong_streamer.agents import broker_compat


def test_the_installed_library_is_the_version_the_patch_was_written_against():
    # Fails when the lock moves kafka-python: read the new Fetcher.fetch_records and how
    # KafkaConsumer._poll_once treats its (records, idle), then update PATCHED.
    assert kafka.__version__ == broker_compat.PATCHED["kafka-python"]
    assert callable(KafkaPythonFetcher.fetch_records)


def test_another_version_is_refused_with_what_to_check():
    with pytest.raises(broker_compat.PatchedVersionError, match="idle_fetch_backoff_ms = 0"):
        broker_compat.check_version("kafka-python", "0.0.1")


def test_no_back_off_installs_nothing(monkeypatch):
    monkeypatch.setattr(broker_compat, "_installed", {})  # another test's in-process worker may have installed it
    before_kp = KafkaPythonFetcher.fetch_records
    broker_compat.install_backoff(0)
    assert KafkaPythonFetcher.fetch_records is before_kp and "kafka-python" not in broker_compat._installed


def test_kafka_python_pauses_after_an_empty_fetch_and_only_then(monkeypatch):
    """After a fetch that brought nothing the fetcher answers "idle" (the consumer sleeps) without
    fetching, until the back-off has passed; records never start a pause."""
    now = [100.0]
    monkeypatch.setattr(broker_compat.time, "monotonic", lambda: now[0])
    answers = [({}, False), ({"tp": ["r"]}, False), ({}, True), ({}, False)]
    calls = []

    def fetch_records(self, max_records=None, update_offsets=True, timeout_ms=None):
        calls.append(timeout_ms)
        return answers[len(calls) - 1]

    class Fetcher:
        pass

    patched, f = broker_compat.pause_after_empty(fetch_records, backoff_s=0.2), Fetcher()
    assert patched(f, timeout_ms=7) == ({}, False) and calls == [7]  # empty: the pause starts
    now[0] += 0.19
    assert patched(f) == ({}, True) and len(calls) == 1  # within the pause: no fetch
    now[0] += 0.02
    assert patched(f) == ({"tp": ["r"]}, False) and len(calls) == 2  # the pause is over
    assert patched(f) == ({}, True) and len(calls) == 3  # records and idle answers start no pause
    assert patched(f) == ({}, False) and len(calls) == 4
    assert patched(f) == ({}, True) and len(calls) == 4
