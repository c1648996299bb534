"""Launch, probe and stop the daemons of the local stack.

Each daemon gets a log file and a pid file. The pid file records the process start time
as well, so a recycled pid is never mistaken for our daemon (and never killed).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cdclake.stack.exceptions import ComponentDiedError, PortInUseError, StackError, StartTimeoutError  # noqa: F401 (re-exported)

LOG_TAIL_LINES = 25


@dataclass
class Daemon:
    """One long-running process of the stack."""

    name: str
    argv: list[str]
    log: Path
    pidfile: Path
    ports: list[int] = field(default_factory=list)
    env: dict[str, str] | None = None
    user: str | None = None  # run as this OS user (PostgreSQL refuses root)
    stop_signal: int = signal.SIGTERM
    cwd: Path | None = None


def start(daemon: Daemon) -> int:
    """Start a daemon in its own session, logging to its log file; returns its pid."""
    for port in daemon.ports:
        ensure_port_free(port, daemon.name)
    daemon.log.parent.mkdir(parents=True, exist_ok=True)
    daemon.pidfile.parent.mkdir(parents=True, exist_ok=True)
    with open(daemon.log, "ab") as log:
        log.write(f"\n==== cdclake starting {daemon.name} at {time.strftime('%F %T')} ====\n".encode())
        log.flush()
        proc = subprocess.Popen(
            daemon.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env=daemon.env, user=daemon.user, cwd=daemon.cwd, start_new_session=True,
        )
    daemon.pidfile.write_text(f"{proc.pid} {_start_time(proc.pid)}\n")
    return proc.pid


def wait_ready(daemon: Daemon, pid: int, probe: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``probe`` until it returns true; returns the seconds waited.

    Raises:
        ComponentDiedError: the process exited while starting (with the tail of its log).
        StartTimeoutError: ``probe`` never succeeded within ``timeout`` seconds.
    """
    started = time.monotonic()
    deadline = started + timeout
    while True:
        if not alive(pid):
            raise ComponentDiedError(
                f"{daemon.name} exited while starting; last lines of {daemon.log}:\n{log_tail(daemon.log)}",
                component=daemon.name, log=daemon.log)
        try:
            if probe():
                return time.monotonic() - started
        except Exception:  # noqa: BLE001 - any probe failure just means "not ready yet"
            pass
        if time.monotonic() > deadline:
            raise StartTimeoutError(
                f"{daemon.name} did not become ready within {timeout:.0f}s (waited for {what}); "
                f"last lines of {daemon.log}:\n{log_tail(daemon.log)}",
                component=daemon.name, log=daemon.log)
        time.sleep(0.3)


def running_pid(pidfile: Path) -> int | None:
    """The pid recorded in ``pidfile`` if that very process still runs, else None."""
    try:
        pid_text, started = pidfile.read_text().split()
        pid = int(pid_text)
    except (OSError, ValueError):
        return None
    if alive(pid) and _start_time(pid) == started:
        return pid
    return None


def stop(daemon: Daemon, timeout: float = 30.0) -> bool:
    """Stop gracefully with the daemon's signal, then SIGKILL after ``timeout``.

    Returns True if a process was running.
    """
    pid = running_pid(daemon.pidfile)
    if pid is not None:
        signal_group(pid, daemon.stop_signal)
    return stop_pid(daemon.pidfile, timeout, pid)


def stop_pid(pidfile: Path, timeout: float, pid: int | None = None) -> bool:
    """Wait for an already-signalled daemon to exit, SIGKILL it after ``timeout``.

    ``pid``: the one signalled (read again from ``pidfile`` if not given; a process that
    exits at once on the signal must still count as one that was running).
    """
    pid = pid if pid is not None else running_pid(pidfile)
    if pid is not None and not _wait_gone(pid, timeout):
        signal_group(pid, signal.SIGKILL)
        _wait_gone(pid, 10)
    pidfile.unlink(missing_ok=True)
    return pid is not None


def kill(daemon: Daemon) -> int:
    """kill -9, as a crash would (for failure tests); returns the pid that died.

    Raises:
        StackError: no live process matches the pid file (a fault that would not happen),
            or the process outlived the signal.
    """
    pid = running_pid(daemon.pidfile)
    if pid is None:
        raise StackError(f"{daemon.name} is not running (no live process for {daemon.pidfile}); nothing to kill",
                         component=daemon.name)
    signal_group(pid, signal.SIGKILL)
    if not _wait_gone(pid, 10):
        raise StackError(f"{daemon.name} (pid {pid}) still runs 10 s after SIGKILL", component=daemon.name)
    return pid


def alive(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)  # reap our own exited children so they are not zombies
    except ChildProcessError:
        pass
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        if state not in ("Z", "X"):
            return True
        # A killed JVM's leader thread turns zombie while its other threads still exit, and
        # they hold its sockets open: it is gone only when no thread is left.
        return len(os.listdir(f"/proc/{pid}/task")) > 1
    except OSError:
        return False


def log_tail(log: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with open(log, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64_000))
            text = f.read().decode(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join("  | " + line for line in text.splitlines()[-lines:])


def ensure_port_free(port: int, component: str) -> None:
    """Raise PortInUseError naming the port and, where it can be found, its holder."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            return
        except OSError:
            pass
    holder = port_holder(port)
    who = f" by {holder}" if holder else ""
    raise PortInUseError(
        f"port {port} needed by {component} is in use{who}; stop that process or choose another port "
        f"in pipeline.yaml", port=port, component=component)


def port_free(port: int) -> bool:
    try:
        ensure_port_free(port, "check")
        return True
    except PortInUseError:
        return False


def port_holder(port: int) -> str | None:
    """``pid 1234 (java ...)`` listening on ``port``, read from /proc; None if unknown."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(cols[9])
    if not inodes:
        return None
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fds = list((proc / "fd").iterdir())
        except OSError:
            continue  # gone, or not ours to read
        for fd in fds:
            try:
                if os.readlink(fd) not in wanted:
                    continue
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue  # this fd closed meanwhile: a busy process must not be skipped whole
            return f"pid {proc.name} ({cmd[:80].strip()})"
    return None


def _start_time(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except OSError:
        return "?"


def signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, sig)


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.2)
    return not alive(pid)
