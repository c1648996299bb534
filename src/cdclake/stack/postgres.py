"""The managed PostgreSQL: a private cluster made with the Debian package's initdb.

It runs as an unprivileged OS user (PostgreSQL refuses root), listens on loopback only,
and has the reference's logical-replication settings plus a WAL disk guard.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from cdclake.errors import NotInstalledError
from cdclake.stack.exceptions import StackError
from cdclake.stack.process import Daemon

PG_VERSION = "15"
PG_BIN_DIRS = [Path(f"/usr/lib/postgresql/{PG_VERSION}/bin")]
SUPERUSER = "cdclake"
RUN_AS = "postgres"  # the OS user the Debian package creates

# The reference's settings, plus max_slot_wal_keep_size so a stalled slot cannot fill the disk.
REPLICATION_SETTINGS = {
    "wal_level": "logical",
    "max_replication_slots": "10",
    "max_wal_senders": "10",
    "wal_keep_size": "1GB",
}


@dataclass(frozen=True)
class LocalPostgres:
    state_dir: Path
    port: int
    max_slot_wal_keep_size: str = "10GB"

    @property
    def data_dir(self) -> Path:
        return self.state_dir / "postgres" / "data"

    @property
    def password_file(self) -> Path:
        return self.state_dir / "secrets" / "postgres_password"

    def password(self) -> str:
        return self.password_file.read_text().strip()

    def dsn(self, database: str = "postgres") -> str:
        """DSN without the password (pass ``password=`` to the driver separately)."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = "postgres", **kwargs) -> psycopg.Connection:
        return psycopg.connect(self.dsn(database), password=self.password(), connect_timeout=3, **kwargs)

    def daemon(self) -> Daemon:
        return Daemon(
            name="postgres",
            argv=[str(pg_bin("postgres")), "-D", str(self.data_dir)],
            log=self.state_dir / "logs" / "postgres.log",
            pidfile=self.state_dir / "run" / "postgres.pid",
            ports=[self.port],
            user=_run_as(),
            # SIGINT is PostgreSQL's fast shutdown; SIGTERM (smart) waits for clients to leave.
            stop_signal=signal.SIGINT,
        )

    def init_cluster(self) -> bool:
        """initdb once, with our settings. Returns True if a cluster was created."""
        if (self.data_dir / "PG_VERSION").exists():
            _write_settings(self)
            return False
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.password_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self.password_file.exists():
            self.password_file.write_text(secrets.token_urlsafe(24) + "\n")
            self.password_file.chmod(0o600)
        user = _run_as()
        pwfile = self.data_dir.parent / "initdb.pw"
        pwfile.write_text(self.password() + "\n")
        try:
            if user:
                _chown_tree(self.data_dir.parent, user)
                _ensure_traversable(self.data_dir, user)
            result = subprocess.run(
                [str(pg_bin("initdb")), "-D", str(self.data_dir), "-U", SUPERUSER, f"--pwfile={pwfile}",
                 "--auth-host=scram-sha-256", "--auth-local=peer", "-E", "UTF8", "--locale=C.UTF-8"],
                capture_output=True, text=True, user=user)
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise StackError(f"initdb failed for {self.data_dir}:\n{result.stdout}{result.stderr}",
                             component="postgres")
        _write_settings(self)
        return True

    def ensure_database(self, name: str) -> None:
        with self.connect(autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    def probe(self) -> bool:
        with self.connect() as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)

    def stop_immediate(self, timeout: float = 60) -> None:
        """``pg_ctl stop -m immediate``: every process quits at once, no shutdown checkpoint,
        as a power cut would leave it; the next start runs crash recovery (for failure tests).

        Raises:
            StackError: pg_ctl failed (e.g. the server was not running).
        """
        result = subprocess.run([str(pg_bin("pg_ctl")), "stop", "-D", str(self.data_dir), "-m", "immediate",
                                 "-w", "-t", str(int(timeout))], capture_output=True, text=True, user=_run_as())
        if result.returncode != 0:
            raise StackError(f"pg_ctl stop -m immediate failed for {self.data_dir}:\n{result.stdout}{result.stderr}",
                             component="postgres")


def pg_bin(name: str) -> Path:
    for directory in PG_BIN_DIRS:
        if (directory / name).exists():
            return directory / name
    found = shutil.which(name)
    if found:
        return Path(found)
    raise NotInstalledError(f"PostgreSQL {PG_VERSION} server ({name}) not found; run `cdclake setup`, "
                            f"or apt-get install postgresql-{PG_VERSION}")


def _run_as() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(RUN_AS)
    except KeyError:
        raise StackError(f"running as root, and there is no '{RUN_AS}' OS user to run PostgreSQL as; "
                         f"install postgresql-{PG_VERSION} (it creates the user) or run cdclake as a "
                         "normal user", component="postgres") from None
    return RUN_AS


def _chown_tree(path: Path, user: str) -> None:
    entry = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        os.chown(root, entry.pw_uid, entry.pw_gid)
        for name in files:
            os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)


def _ensure_traversable(path: Path, user: str) -> None:
    for parent in reversed(path.parents):
        mode = parent.stat().st_mode
        if not mode & 0o001:
            raise StackError(f"{parent} is not searchable by the '{user}' OS user that runs PostgreSQL; "
                             f"chmod o+x {parent}, or put pipeline.yaml in a directory others can enter",
                             component="postgres")


def _write_settings(pg: LocalPostgres) -> None:
    settings = {
        **REPLICATION_SETTINGS,
        "max_slot_wal_keep_size": pg.max_slot_wal_keep_size,
        "listen_addresses": "'127.0.0.1'",
        "port": str(pg.port),
        "unix_socket_directories": "''",
        "shared_buffers": "256MB",
        # Logical decoding only sends flushed WAL; with asynchronous commits the WAL writer's
        # 200 ms default pacing would show up as CDC latency.
        "wal_writer_delay": "10ms",
        "max_connections": "200",
        "logging_collector": "off",
        "log_min_messages": "warning",
    }
    body = "# written by cdclake up; edit pipeline.yaml instead\n" + "".join(
        f"{key} = {value}\n" for key, value in settings.items())
    auto = pg.data_dir / "cdclake.conf"
    auto.write_text(body)
    conf = pg.data_dir / "postgresql.conf"
    text = conf.read_text()
    if "include_if_exists = 'cdclake.conf'" not in text:
        conf.write_text(text + "\ninclude_if_exists = 'cdclake.conf'\n")
    hba = pg.data_dir / "pg_hba.conf"
    hba.write_text(
        "# written by cdclake up\n"
        "local all all peer\n"
        "host all all 127.0.0.1/32 scram-sha-256\n"
        "host replication all 127.0.0.1/32 scram-sha-256\n")
    user = _run_as()
    if user:
        _chown_tree(pg.data_dir, user)
