"""The embedded default stack's servers: a noida-db broker (and its topics), a milvus-lite server and
Prometheus. Each binds 127.0.0.1 unless told otherwise and runs as a process of processes.py."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Callable, Collection
from importlib.resources import files
from pathlib import Path

from .processes import LOOPBACK, ManagedProcess, StackError, port_open, wait_for

log = logging.getLogger(__name__)

BROKER_MATCH = "noida-db"  # substring of the broker's /proc/PID/cmdline
MILVUS_MATCH = "patches milvus-lite"  # substring of the milvus-lite server's /proc/PID/cmdline
PROMETHEUS_MATCH = "prometheus"
MILVUS_GRPC_OPTIONS = {"grpc.keepalive_time_ms": 600000}


def noida_binary() -> str:
    """The binary inside the wheel: the `noida-db` script is a Python wrapper around it."""
    path = str(files("noida_db").joinpath("noida-db"))
    if not os.access(path, os.X_OK):
        os.chmod(path, 0o755)  # as the wrapper does
    return path


def kafka_ready(bootstrap: str) -> bool:
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    host, _, port = bootstrap.rpartition(":")
    if not port_open(host, int(port)):
        return False
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="elong-stack-probe",
                                 request_timeout_ms=3000)
        try:
            admin.list_topics()
        finally:
            admin.close()
        return True
    except KafkaError:
        return False


def _start(name: str, argv: list[str], run_dir: Path, host: str, port: int,
           ready: Callable[[], bool], timeout: float,
           before_stop: Callable[[], object] | None = None) -> ManagedProcess:
    if port_open(host, port):  # else the probe would find the old server and call the new one ready
        raise StackError(f"{host}:{port} is already in use (a {name} left running? see {run_dir})")
    proc = ManagedProcess(name, argv, run_dir, pid_file=f"{name}.pid", before_stop=before_stop)
    try:
        wait_for(ready, timeout, f"the {name} on {host}:{port}", proc)
    except BaseException:
        proc.stop()
        raise
    return proc


def start_broker(data_dir: Path, port: int, run_dir: Path, host: str = LOOPBACK,
                 timeout: float = 60) -> ManagedProcess:
    """Start noida-db (Kafka protocol only) in the foreground of its own session; wait until ready."""
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [noida_binary(), "start", "--data-dir", str(data_dir), "--host", host,
            "--only", "kafka", "--kafka-port", str(port)]
    return _start("broker", argv, run_dir, host, port, lambda: kafka_ready(f"{host}:{port}"), timeout,
                  before_stop=lambda: save_broker(data_dir))


def save_broker(data_dir: Path, timeout: float = 30) -> bool:
    """Stop noida-db's Kafka service (it stops taking writes, then saves them) before its process
    is signalled. SIGTERM alone saves a snapshot while the service still acknowledges writes, and
    loses those: measured 7-33 acknowledged records per partition under a steady producer
    (tests/integration/test_stack.py). False if the server did not answer (it is stopped anyway)."""
    try:
        done = subprocess.run([noida_binary(), "stop", "kafka", "--data-dir", str(data_dir)],
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


def ensure_topics(bootstrap: str, topics: dict[str, int], timeout: float = 30,
                  compacted: Collection[str] = (), client: dict | None = None,
                  max_message_bytes: int | None = None) -> None:
    """Create missing topics with their partition counts; grow topics that have too few partitions.
    Topics named in `compacted` are created with cleanup.policy=compact (changelogs); with
    max_message_bytes, every new topic takes records up to that size (max.message.bytes).

    noida-db auto-creates an unknown topic with ONE partition on first use, so every topic must be
    created here, before any producer or worker touches it.
    """
    from kafka import KafkaAdminClient
    from kafka.admin import NewPartitions, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    # `client`: the pipeline's client settings (security protocol, SASL), bootstrap servers included
    admin = KafkaAdminClient(**(client or {"bootstrap_servers": bootstrap}) | {"client_id": "elong-stack"})

    def counts() -> dict[str, int]:  # describe_topics does not auto-create a missing topic
        described = admin.describe_topics(list(topics))
        return {t["name"]: len(t["partitions"]) for t in described if t["error_code"] == 0}

    try:
        have = counts()
        for name, n in topics.items():
            if name not in have:
                try:
                    configs = {"cleanup.policy": "compact"} if name in compacted else {}
                    if max_message_bytes:
                        configs["max.message.bytes"] = str(max_message_bytes)
                    admin.create_topics([NewTopic(name, num_partitions=n, replication_factor=1,
                                                  topic_configs=configs)])
                except TopicAlreadyExistsError:
                    pass
        have = counts()
        grow = {name: NewPartitions(total_count=n) for name, n in topics.items() if have.get(name, n) < n}
        if grow:
            admin.create_partitions(grow)
        try:
            wait_for(lambda: all(counts().get(t, 0) >= n for t, n in topics.items()), timeout,
                     "topic partition counts", interval=0.2)
        except StackError as e:
            raise StackError(f"topics on {bootstrap}: want {topics}, have {counts()}") from e
    finally:
        admin.close()


def milvus_ready(uri: str) -> bool:
    from pymilvus import MilvusClient

    host, _, port = uri.removeprefix("http://").rpartition(":")
    if not port_open(host, int(port)):
        return False
    try:
        client = MilvusClient(uri=uri, timeout=3, grpc_options=MILVUS_GRPC_OPTIONS)
        try:
            client.list_collections()
        finally:
            client.close()
        return True
    except Exception:  # pymilvus raises MilvusException, grpc errors and more while starting
        return False


def start_milvus(data_dir: Path, port: int, run_dir: Path, host: str = LOOPBACK,
                 timeout: float = 60) -> ManagedProcess:
    """Start the milvus-lite gRPC server on ``data_dir`` (one server per directory: it holds a lock)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    # its patches (services/patches.milvus_lite_main): a clean shutdown on SIGTERM, a busy port refused
    argv = [sys.executable, "-m", "entropylong_streamer.services.patches", "milvus-lite", "server",
            "--data-dir", str(data_dir), "--host", host, "--port", str(port)]
    return _start("milvus", argv, run_dir, host, port, lambda: milvus_ready(f"http://{host}:{port}"),
                  timeout)


def prometheus_binary() -> str:
    """Debian's prometheus: ELONG_PROMETHEUS, else what `deploy/dev.sh test` unpacked into the venv,
    else one on PATH."""
    import shutil

    candidates = [os.environ.get("ELONG_PROMETHEUS", ""),
                  str(Path(sys.prefix) / "prometheus" / "usr" / "bin" / "prometheus"),
                  shutil.which("prometheus") or ""]
    for path in candidates:
        if path and os.access(path, os.X_OK):
            return path
    raise StackError("no prometheus binary: `bash deploy/dev.sh test` unpacks Debian's package into the venv "
                     "(or set ELONG_PROMETHEUS)")


def prometheus_ready(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def start_prometheus(config: Path, data_dir: Path, port: int, run_dir: Path, host: str = LOOPBACK,
                     timeout: float = 60) -> ManagedProcess:
    """A Prometheus server on host:port with its own config and TSDB directory."""
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [prometheus_binary(), f"--config.file={config}", f"--storage.tsdb.path={data_dir}",
            f"--web.listen-address={host}:{port}"]
    return _start("prometheus", argv, run_dir, host, port, lambda: prometheus_ready(f"http://{host}:{port}"),
                  timeout)
