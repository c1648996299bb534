"""Test-only crash points, so tests can prove exactly-once across ``kill -9``.

A job process started with ``CDCLAKE_FAULT=<point>`` SIGKILLs its JVM and itself when the
code reaches that point: no ``finally`` block, no shutdown hook, no checkpoint write runs.
Unset, a point costs one dictionary lookup. (The one place the lakehouse reads the
environment: a test seam.) The points, in the order a run reaches them:

- ``bronze.before_commit``: the batch's data files are written and the JVM is inside the
  Iceberg catalog commit (see :func:`commit`); no snapshot, Spark's checkpoint has the
  batch's offsets but not its commit.
- ``bronze.after_commit``: the snapshot with the batch's Kafka offsets is committed, the
  checkpoint's ``commits/<batch>`` is not written.
- ``silver.after_tombstones``: the batch's deletes are in ``tombstones_<table>``, silver's
  MERGE has not started.
- ``silver.before_commit``: the MERGE wrote its data and delete files and waits inside the
  catalog commit; silver's snapshot and watermark are unchanged.
- ``silver.after_commit``: the MERGE and its watermark are committed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

ENV = "CDCLAKE_FAULT"
POINTS = ("bronze.before_commit", "bronze.after_commit", "silver.after_tombstones", "silver.before_commit",
          "silver.after_commit")
# The JDBC catalog's row of one table (Iceberg's JdbcCatalog, schema V1).
LOCK_ROW = ("SELECT 1 FROM iceberg_tables WHERE catalog_name = %s AND table_namespace = %s AND table_name = %s "
            "FOR UPDATE")
WAITERS = "SELECT pid FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))"


def wanted(name: str) -> bool:
    return os.environ.get(ENV, "") == name


def point(name: str, spark: Any = None) -> None:
    """Crash here if the environment asks for it."""
    if wanted(name):
        _crash(spark)


@contextlib.contextmanager
def commit(name: str, spark: Any, table: str) -> Iterator[None]:
    """Around the statement that commits ``table`` (``catalog.namespace.name``): crash inside the commit.

    The point holds the table's row in the JDBC catalog (``SELECT … FOR UPDATE``), so the
    JVM's commit, an ``UPDATE`` of that row, waits on it once every data file is written.
    When PostgreSQL shows the JVM's session waiting on the lock, the JVM is killed and its
    waiting session terminated before the lock goes (else the ``UPDATE`` would still commit).

    Raises:
        RuntimeError: the statement finished without committing through the locked row.
    """
    if not wanted(name):
        yield
        return
    import psycopg

    catalog, namespace, base = _split(table)
    holder = psycopg.connect(_catalog_dsn(spark, catalog), **_catalog_auth(spark, catalog))
    if holder.execute(LOCK_ROW, (catalog, namespace, base)).fetchone() is None:
        raise RuntimeError(f"fault {name}: {table} is not in the JDBC catalog")
    # Not a daemon: when the JVM dies the main thread fails and the interpreter exits, but
    # only after this thread has terminated the waiting session and killed the process.
    done = threading.Event()
    threading.Thread(target=_crash_when_waiting, args=(spark, catalog, holder.info.backend_pid, done),
                     daemon=False).start()  # explicit: a thread started by a py4j callback thread inherits its daemon flag
    try:
        yield
    finally:
        done.set()
    raise RuntimeError(f"fault {name}: the commit of {table} never waited on the catalog row")


def _crash_when_waiting(spark: Any, catalog: str, holder_pid: int, done: threading.Event) -> None:
    import psycopg

    with psycopg.connect(_catalog_dsn(spark, catalog), autocommit=True, **_catalog_auth(spark, catalog)) as conn:
        while not (waiting := [pid for (pid,) in conn.execute(WAITERS, (holder_pid,))]):
            if done.wait(0.05):
                return
        try:
            _kill_jvm(spark)
            for pid in waiting:
                conn.execute("SELECT pg_terminate_backend(%s, 10000)", (pid,))
        finally:
            os.kill(os.getpid(), signal.SIGKILL)


def _split(table: str) -> tuple[str, str, str]:
    catalog, rest = table.split(".", 1)
    namespace, base = rest.rsplit(".", 1)
    return catalog, namespace, base


def _catalog_dsn(spark: Any, catalog: str) -> str:
    """``postgresql://host:port/db`` from the catalog's ``jdbc:postgresql://`` URI in the Spark conf."""
    parts = urlsplit(spark.conf.get(f"spark.sql.catalog.{catalog}.uri").removeprefix("jdbc:"))
    return f"postgresql://{parts.hostname}:{parts.port or 5432}{parts.path}"


def _catalog_auth(spark: Any, catalog: str) -> dict[str, str | None]:
    prefix = f"spark.sql.catalog.{catalog}.jdbc"
    return {"user": spark.conf.get(f"{prefix}.user", None) or None,
            "password": spark.conf.get(f"{prefix}.password", None) or None}


def _kill_jvm(spark: Any) -> None:
    if spark is not None:
        pid = spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid()
        os.kill(int(pid), signal.SIGKILL)


def _crash(spark: Any) -> None:
    _kill_jvm(spark)
    os.kill(os.getpid(), signal.SIGKILL)
