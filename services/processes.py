"""Process supervision for the embedded stack and its workers: each process started in its own session
(so a stop reaches its whole process group), logging to ``<run_dir>/<name>.log``, its PID and start
time in a pid file, so that ``stop_pidfile`` stops it later from another shell, and never a process
that merely reuses the PID."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import psutil

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"


class StackError(RuntimeError):
    """A server of the stack did not start, or is misconfigured."""


def free_port(host: str = LOOPBACK) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def pid_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie waiting for its parent."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:  # another user's: it exists
        return True


def start_time(pid: int) -> str:
    """When the process started (psutil's create_time, to the centisecond), "" if gone.

    With the PID it names one process for good: a reused PID has another start time, which the
    command line cannot tell.
    """
    try:
        return f"{psutil.Process(pid).create_time():.2f}"
    except psutil.Error:
        return ""


def _cmdline(pid: int) -> str:
    try:
        return " ".join(psutil.Process(pid).cmdline())
    except psutil.Error:
        return ""


class ManagedProcess:
    """A server started in its own session, logging to a file, its PID in a pid file."""

    def __init__(self, name: str, argv: Sequence[str], run_dir: Path, pid_file: str | None = None,
                 env: dict[str, str] | None = None, before_stop: Callable[[], object] | None = None) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.before_stop = before_stop  # a graceful step before the SIGTERM (see save_broker)
        self.argv = list(argv)
        self.log_path = run_dir / f"{name}.log"
        self.pid_path = run_dir / (pid_file or f"{name}.pid")
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=subprocess.STDOUT, start_new_session=True, env=env)
        self.pid = self.popen.pid
        tmp = self.pid_path.with_name(self.pid_path.name + ".tmp")
        tmp.write_text(f"{self.pid} {start_time(self.pid)}\n")
        os.replace(tmp, self.pid_path)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 10) -> int | None:
        """SIGTERM to the process group, SIGKILL after ``timeout``; returns the exit code."""
        if self.popen.poll() is None:
            if self.before_stop is not None and self.before_stop() is False:
                log.warning("%s: its graceful stop did not answer; stopping it with SIGTERM alone", self.name)
            _signal_group(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(self.pid, signal.SIGKILL)
                self.popen.wait(5)
            _signal_group(self.pid, signal.SIGKILL)  # stragglers left in the group, if any
        try:
            if self.pid_path.read_text().split()[0] == str(self.pid):
                self.pid_path.unlink()
        except (OSError, IndexError):
            pass
        return self.popen.returncode

    def __enter__(self) -> ManagedProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop_pidfile(path: Path, expect: str, timeout: float = 10,
                 before_stop: Callable[[], object] | None = None) -> bool:
    """Stop the process recorded in a pid file, if its command line still contains ``expect``.

    Returns True if a matching process was running and was stopped. A stale pid file (the process is
    gone, the PID now belongs to another process: another start time or command line, or a file
    without the start time ManagedProcess records) is removed and nothing is signalled.
    """
    try:
        fields = path.read_text().split()
        pid = int(fields[0])
    except (OSError, ValueError, IndexError):
        return False
    try:
        group = os.getpgid(pid) == pid  # started with start_new_session: signal the whole group
    except ProcessLookupError:
        group = False
    same = len(fields) > 1 and start_time(pid) == fields[1] and expect in _cmdline(pid)
    if not pid_alive(pid) or not same:
        path.unlink(missing_ok=True)
        return False

    def send(sig: signal.Signals) -> None:
        try:
            os.killpg(pid, sig) if group else os.kill(pid, sig)
        except ProcessLookupError:
            pass

    if before_stop is not None:
        before_stop()
    send(signal.SIGTERM)
    try:
        wait_for(lambda: not pid_alive(pid), timeout, f"pid {pid} to exit")
    except StackError:
        send(signal.SIGKILL)
        wait_for(lambda: not pid_alive(pid), 5, f"pid {pid} to exit after SIGKILL")
    path.unlink(missing_ok=True)
    return True


def wait_for(predicate: Callable[[], bool], timeout: float, what: str,
             proc: ManagedProcess | None = None, interval: float = 0.1) -> None:
    """Poll ``predicate`` until it is true; raise StackError on timeout or if ``proc`` dies."""
    deadline = time.monotonic() + timeout
    while True:
        ok = predicate()
        if proc is not None and not proc.alive():
            raise StackError(f"{proc.name} exited with code {proc.popen.returncode} while waiting for "
                             f"{what}; log {proc.log_path}:\n{proc.log_tail()}")
        if ok:
            return
        if time.monotonic() >= deadline:
            tail = f"; log {proc.log_path}:\n{proc.log_tail()}" if proc is not None else ""
            raise StackError(f"timed out after {timeout:.0f}s waiting for {what}{tail}")
        time.sleep(interval)


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False
