"""`up` and `down`: the embedded stack (broker, milvus-lite, one worker per stage) as processes."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from urllib.parse import urlparse

from entropylong_streamer.config import Config
from entropylong_streamer.services import processes, stack

from . import registry
from .status import ensure_pipeline_topics, stage_groups

WORKER_MODULE = "entropylong_streamer.cli"


def run_dir(cfg: Config) -> Path:
    return cfg.paths.run


def _port(hostport: str) -> tuple[str, int]:
    host, _, port = hostport.rpartition(":")
    return host, int(port)


EMBEDDED_FETCH_BACKOFF_MS = 200


def embedded(cfg: Config) -> Config:
    """The config workers of the embedded stack get: the broker lacks a fetch long poll."""
    if cfg.kafka.idle_fetch_backoff_ms:
        return cfg
    return cfg.copy_with({"kafka.idle_fetch_backoff_ms": EMBEDDED_FETCH_BACKOFF_MS})


def start_servers(cfg: Config) -> list[processes.ManagedProcess]:
    """Broker and milvus-lite on 127.0.0.1 with persistent data under data_dir; topics created."""
    procs = []
    rd = run_dir(cfg)
    host, port = _port(cfg.kafka.bootstrap_servers.split(",")[0])
    procs.append(stack.start_broker(cfg.paths.broker, port, rd, host=host))
    uri = urlparse(cfg.milvus.uri)
    procs.append(stack.start_milvus(cfg.paths.milvus, uri.port or 19530, rd,
                                    host=uri.hostname or "127.0.0.1"))
    ensure_pipeline_topics(cfg)
    return procs


def write_worker_config(cfg: Config) -> Path:
    """run_dir/config.json, the resolved config every worker reads."""
    rd = run_dir(cfg)
    rd.mkdir(parents=True, exist_ok=True)
    conf = rd / "config.json"
    # Workers read the resolved config, secrets included: readable by this user only.
    fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(json.dumps(cfg.model_dump(mode="json"), indent=1))
    return conf


def start_worker(cfg: Config, stage: str, name: str, extra: list[str] | None = None) -> processes.ManagedProcess:
    """One `elong worker STAGE` process reading run_dir/config.json (see write_worker_config), a
    static member of its stage's consumer group under its name: restarted, it takes its partitions
    back at once."""
    argv = [sys.executable, "-m", WORKER_MODULE, "worker", stage, "--config",
            str(run_dir(cfg) / "config.json"), "--set", f"agents.instance_id={name}", *(extra or [])]
    return processes.ManagedProcess(name, argv, run_dir(cfg))


def start_workers(cfg: Config, count: int = 1, only: set[str] | None = None) -> list[processes.ManagedProcess]:
    """`count` workers per stateless stage, one packer, one trainer (`only`: just those stages,
    each on the metrics port it has in the full layout)."""
    write_worker_config(cfg)
    procs, slot = [], 0
    for stage, _, _ in stage_groups(cfg):
        n = count if registry.stage(stage).scalable else 1
        for i in range(n):
            # One Prometheus endpoint per worker: port, port + 1, ...
            extra = ["--set", f"metrics.port={cfg.metrics.port + slot}"] if cfg.metrics.port else []
            slot += 1
            if only is None or stage in only:
                procs.append(start_worker(cfg, stage, f"worker-{stage}-{i}", extra))
    return procs


def running_workers(cfg: Config) -> dict[str, list[Path]]:
    """Pid files of the workers `up` started, by stage."""
    out: dict[str, list[Path]] = {}
    for pid_file in sorted(run_dir(cfg).glob("worker-*.pid")):
        out.setdefault(worker_stage(pid_file.stem), []).append(pid_file)
    return out


def worker_stage(name: str) -> str:
    """The stage of a worker named as start_workers names them: worker-STAGE-I."""
    return name.removeprefix("worker-").rsplit("-", 1)[0]


def stop_workers(pid_files: list[Path], cfg: Config | None = None) -> list[str]:
    """Stop these workers; with `cfg` (the config they ran), also take their static memberships out
    of their groups, so partitions of a worker that does not come back move to the others."""
    from concurrent.futures import ThreadPoolExecutor

    if not pid_files:
        return []
    with ThreadPoolExecutor(len(pid_files)) as pool:
        done = list(pool.map(lambda p: processes.stop_pidfile(p, WORKER_MODULE), pid_files))
    if cfg is not None:
        leave_groups(cfg, [p.stem for p in pid_files])
    return [p.stem for p, ok in zip(pid_files, done, strict=True) if ok]


def leave_groups(cfg: Config, names: list[str]) -> None:
    """Remove the static members `worker-STAGE-I` from their stages' groups (best effort)."""
    groups = {stage: group for stage, _, group in stage_groups(cfg)}
    by_group: dict[str, list[str]] = {}
    for name in names:
        if worker_stage(name) in groups:
            by_group.setdefault(groups[worker_stage(name)], []).append(name)
    if by_group:
        _remove_members(cfg, lambda admin: {g: [(None, m) for m in ms] for g, ms in by_group.items()})


def release_groups_of(cfg: Config, topics: set[str]) -> None:
    """Take every member out of the groups that read these topics (after their partitions grew). A
    static member that rejoins gets back the assignment it had, without the group's leader assigning
    again, so the new partitions would stay unread; a fresh join makes the leader assign them."""
    groups = [group for _, source, group in stage_groups(cfg) if source in topics]

    def members(admin) -> dict[str, list[tuple[str | None, str | None]]]:
        described = admin.describe_groups(groups)
        return {g: [(m.get("member_id"), m.get("group_instance_id")) for m in d.get("members") or []]
                for g, d in described.items() if not d.get("error")}

    if groups:
        _remove_members(cfg, members)


def _remove_members(cfg: Config, members) -> None:
    """members(admin) -> {group: [(member id, group instance id)]}: remove them (best effort)."""
    import logging

    from kafka import KafkaAdminClient
    from kafka.admin import MemberToRemove
    from kafka.errors import KafkaError

    from .agents.kafka_clients import client_kwargs

    host, port = _port(cfg.kafka.bootstrap_servers.split(",")[0])
    if not processes.port_open(host, port):  # no broker: no group to leave
        return
    try:
        admin = KafkaAdminClient(**client_kwargs(cfg), request_timeout_ms=5000)
    except KafkaError as exc:
        logging.getLogger(__name__).warning("could not leave consumer groups: %s", exc)
        return
    try:
        for group, ids in members(admin).items():
            # a static member by its instance id; a dynamic one by its member id
            gone = [MemberToRemove(group_instance_id=i) if i else MemberToRemove(member_id=m) for m, i in ids]
            try:
                if gone:
                    admin.remove_group_members(group, gone)
            except KafkaError:  # not a member (never joined, or already removed): nothing to do
                pass
    except KafkaError as exc:
        logging.getLogger(__name__).warning("could not leave consumer groups: %s", exc)
    finally:
        admin.close()


def stop_all(cfg: Config) -> list[str]:
    """Stop what pid files under run_dir name: all workers at once, then milvus, then the broker."""
    rd = run_dir(cfg)
    if not rd.exists():
        return []
    workers = sorted(rd.glob("worker-*.pid"))
    try:
        from entropylong_streamer.config import load_config

        ran = load_config(rd / "config.json") if workers and (rd / "config.json").exists() else None
    except ValueError:
        ran = None
    stopped = stop_workers(workers, ran)
    for name, expect, before_stop in (("prometheus", stack.PROMETHEUS_MATCH, None),
                                      ("milvus", stack.MILVUS_MATCH, None),
                                      ("broker", stack.BROKER_MATCH, lambda: stack.save_broker(cfg.paths.broker))):
        pid_file = rd / f"{name}.pid"
        if pid_file.exists() and processes.stop_pidfile(pid_file, expect, before_stop=before_stop):
            stopped.append(name)
    return stopped
