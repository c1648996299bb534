"""What the capture fault tests share: the demo database captured into a lakehouse
namespace of its own, the wait for Debezium to have confirmed every commit, and the exact
comparison of silver with PostgreSQL that ends every fault test."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import psycopg
from psycopg import sql

from cdclake.config import Pipeline
from cdclake.lakehouse import runner
from cdclake.lakehouse.configuration import LakehousePlan, plan_from_pipeline
from cdclake.source import connection
from cdclake.source.demo import create_demo
from cdclake.source.workload import Workload
from cdclake.verify.verify import verify
from tests.conftest import unique
from tests.lakehouse.conftest import lake_pipeline, silver_rows, source_rows

QUIET = lambda message: None  # noqa: E731
DEMO = ["departments", "users", "products", "orders"]
# The fault tests capture two of them (TOASTed users, multi-row and twice-updated orders):
# half the Spark work of all four on a loaded machine.
FAULT_TABLES = ["users", "orders"]
# Columns compared row by row, in types both sides return alike (Decimal, str, int, bool).
DEMO_COLUMNS = {
    "departments": "id, name, budget",
    "users": "id, name, email, is_active, department_id, bio",
    "products": "id, sku, name, price",
    "orders": "id, user_id, product_id, quantity, total_amount, status",
}


def execute(pipeline: Pipeline, *statements) -> None:
    with connection.connect(pipeline, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def demo_lake(base: Pipeline, cleanup, prefix: str, tables: list[str] = FAULT_TABLES,
              **sizes) -> tuple[Pipeline, LakehousePlan, str]:
    """The demo tables in a schema of their own (not captured yet), with their own slot,
    topics, connector and Iceberg namespace; returns (pipeline, plan, schema)."""
    schema = unique(prefix)
    pipeline = lake_pipeline(base, schema, tables)
    cleanup(pipeline)
    execute(pipeline, sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    create_demo(pipeline, seed=13, schema=schema, **({"users": 60, "products": 20, "orders": 120} | sizes))
    return pipeline, plan_from_pipeline(pipeline), schema


def confirmed_lsn(pipeline: Pipeline) -> int:
    with connection.connect(pipeline) as conn:
        return conn.execute("SELECT pg_wal_lsn_diff(confirmed_flush_lsn, '0/0')::bigint FROM pg_replication_slots "
                            "WHERE slot_name = %s", (pipeline.source.slot,)).fetchone()[0]


def table_lake(base: Pipeline, cleanup, prefix: str, table: str, columns: str,
               *setup: str) -> tuple[Pipeline, LakehousePlan, str]:
    """One table ``table (columns)`` in a schema of its own, ``setup`` statements run in that
    schema, not captured yet; returns (pipeline, plan, schema)."""
    schema = unique(prefix)
    pipeline = lake_pipeline(base, schema, [table])
    cleanup(pipeline)
    execute(pipeline, sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)),
            f"SET search_path = {schema}", f"CREATE TABLE {table} ({columns})", *setup)
    return pipeline, plan_from_pipeline(pipeline), schema


def assert_silver_exact(spark, plan: LakehousePlan, pipeline: Pipeline,
                        columns: dict[str, str] = DEMO_COLUMNS) -> dict[str, int]:
    """Run bronze and silver, then compare every table's silver rows with the source's, row by
    row on ``columns`` (table -> column list), then ``verify`` (every column). Returns the row
    counts compared, by table."""
    report = runner.run(spark, plan, ["bronze", "silver"], progress=QUIET)
    assert not report.failures, report.failures
    counts = {}
    for ref in plan.tables:
        cols = columns[ref.table]
        expected, got = source_rows(pipeline, ref.source, cols), silver_rows(spark, ref.silver, cols)
        if got != expected:
            missing, extra = sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
            raise AssertionError(f"{ref.silver}: {len(got)} rows, source {len(expected)}; "
                                 f"missing {len(missing)} {missing[:3]}, extra {len(extra)} {extra[:3]}")
        counts[ref.table] = len(got)
    verified = verify(plan, gold=False, progress=QUIET)
    assert verified.ok, verified.as_dict()
    return counts


class Background:
    """The open-loop workload in a thread, a second of load at a time, until stopped.

    ``outages``: PostgreSQL goes away during the test; a second cut short by a lost
    connection is retried after a pause (what it committed stays committed, what it did not
    is rolled back: the source is the truth either way).
    """

    def __init__(self, pipeline: Pipeline, schema: str, rate: float, seed: int = 21, outages: bool = False):
        self.workload = Workload(pipeline, seed=seed, schema=schema)
        self.rate, self.outages, self.error, self.ops, self.lost_connections = rate, outages, None, 0, 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.stopped = threading.Event()

    def _run(self) -> None:
        try:
            while not self.stopped.is_set():
                try:
                    self.workload.run(rate=self.rate, ops=int(self.rate), progress=QUIET)
                except psycopg.OperationalError:
                    if not self.outages:
                        raise
                    self.lost_connections += 1
                    self.stopped.wait(0.5)
                    continue
                self.ops += self.workload.result.ops
        except Exception as exc:  # noqa: BLE001 - re-raised in the test's thread by stop()
            self.error = exc

    def __enter__(self) -> Background:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> int:
        """Stop after the current second of load; returns the changes committed."""
        self.stopped.set()
        self.thread.join(120)
        assert not self.thread.is_alive(), "the workload did not stop"
        if self.error:
            raise self.error
        return self.ops


def wait_for(condition: Callable[[], object], what: str, timeout: float = 120, every: float = 0.5):
    """Poll ``condition`` until it returns something true (returned), or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f}s waiting for {what}"
        time.sleep(every)
