"""Unit tests of the daemon supervisor with real (tiny) processes, no stack needed."""

import os
import socket
import sys

import pytest

from cdclake.stack import process
from cdclake.stack.exceptions import ComponentDiedError, PortInUseError, StackError, StartTimeoutError


def _daemon(tmp_path, argv, ports=()):
    return process.Daemon(name="demo", argv=argv, log=tmp_path / "logs" / "demo.log",
                          pidfile=tmp_path / "run" / "demo.pid", ports=list(ports))


def test_port_in_use_names_port_and_holder(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(PortInUseError) as err:
            process.start(_daemon(tmp_path, ["sleep", "5"], ports=[port]))
    message = str(err.value)
    assert f"port {port} needed by demo is in use by pid {os.getpid()}" in message
    assert "choose another port" in message
    assert err.value.port == port


def test_component_dying_while_starting_shows_log_tail(tmp_path):
    daemon = _daemon(tmp_path, ["sh", "-c", "echo 'FATAL: bad setting foo'; exit 3"])
    pid = process.start(daemon)
    with pytest.raises(ComponentDiedError) as err:
        process.wait_ready(daemon, pid, lambda: False, timeout=10, what="nothing")
    assert "demo exited while starting" in str(err.value)
    assert "FATAL: bad setting foo" in str(err.value)


def test_start_timeout_names_what_it_waited_for(tmp_path):
    daemon = _daemon(tmp_path, ["sleep", "30"])
    pid = process.start(daemon)
    try:
        with pytest.raises(StartTimeoutError, match="within 1s \\(waited for the answer\\)"):
            process.wait_ready(daemon, pid, lambda: False, timeout=1, what="the answer")
    finally:
        assert process.stop(daemon, timeout=5)
    assert not process.alive(pid) and not daemon.pidfile.exists()


def test_stop_escalates_to_sigkill(tmp_path):
    daemon = _daemon(tmp_path, [sys.executable, "-c",
                                "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"])
    pid = process.start(daemon)
    assert process.running_pid(daemon.pidfile) == pid
    assert process.stop(daemon, timeout=1)
    assert not process.alive(pid)


def test_recycled_pid_is_not_ours(tmp_path):
    pidfile = tmp_path / "x.pid"
    pidfile.write_text(f"{os.getpid()} 1\n")  # our pid, but a different start time
    assert process.running_pid(pidfile) is None


def test_kill_is_a_real_crash_or_an_error(tmp_path):
    daemon = _daemon(tmp_path, ["sleep", "60"])
    pid = process.start(daemon)
    assert process.kill(daemon) == pid and not process.alive(pid)
    with pytest.raises(StackError, match="demo is not running .*nothing to kill"):
        process.kill(daemon)  # the pid file names a process that is gone: no silent no-op


# The main thread leaves with the exit syscall (not exit_group): the leader turns zombie while
# the other thread lives on holding the listening socket, as a SIGKILLed JVM does for a moment.
LEADER_EXITS_FIRST = """
import ctypes, socket, sys, threading, time
sock = socket.socket()
sock.bind(("127.0.0.1", int(sys.argv[1])))
sock.listen()
threading.Thread(target=time.sleep, args=(60,)).start()
print("listening", flush=True)
ctypes.CDLL(None, use_errno=True).syscall(60, 0)
"""


def test_a_zombie_leader_whose_threads_still_hold_its_ports_is_alive(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    daemon = _daemon(tmp_path, [sys.executable, "-c", LEADER_EXITS_FIRST, str(port)], ports=[port])
    pid = process.start(daemon)
    process.wait_ready(daemon, pid, lambda: "listening" in daemon.log.read_text(), timeout=10, what="listen")
    process.wait_ready(daemon, pid, lambda: open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z",
                       timeout=10, what="the leader to exit")
    assert process.alive(pid) and not process.port_free(port)  # a restart now would find its port taken
    assert process.kill(daemon) == pid
    assert process.port_free(port)
