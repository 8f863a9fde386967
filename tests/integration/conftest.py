"""Fixtures of the integration tests (their helpers: stack_helpers.py)."""

import pytest

from entropylong_streamer.services import processes, stack


@pytest.fixture
def broker(tmp_path):
    port = processes.free_port()
    proc = stack.start_broker(tmp_path / "broker", port, tmp_path / "run")
    yield f"127.0.0.1:{port}"
    proc.stop()
    assert not proc.alive()
