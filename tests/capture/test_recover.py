"""``cdclake recover`` after a lost replication slot, on the real stack: rows deleted,
updated and inserted while capture was down end up exactly in silver, and a second run is
a no-op. The slot is lost two ways: dropped while Connect kept its offsets, and
invalidated by PostgreSQL (``max_slot_wal_keep_size`` exceeded, ``wal_status = lost``)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from psycopg import sql

from cdclake.capture import recover, service
from cdclake.capture.exceptions import CaptureError
from cdclake.lakehouse import runner
from cdclake.lakehouse.configuration import plan_from_pipeline
from cdclake.source import connection
from cdclake.verify.verify import verify
from tests.conftest import unique
from tests.lakehouse.conftest import cleanup, spark  # noqa: F401 - the lakehouse fixtures, used here too
from tests.lakehouse.conftest import (lake_pipeline, silver_rows, source_rows, start_capture, wait_records,
                                     write_pipeline)

pytestmark = pytest.mark.integration
QUIET = lambda message: None  # noqa: E731
ROWS = 60


def execute(pipeline, *statements) -> None:
    with connection.connect(pipeline, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def run_layers(spark, plan) -> None:
    report = runner.run(spark, plan, ["bronze", "silver"], progress=QUIET)
    assert not report.failures, report.failures


def captured_table(stack, cleanup, spark):
    """A table of ROWS rows, captured and in silver, with the connector's offsets stored."""
    tag = unique("recover")
    pipeline = lake_pipeline(stack, tag, ["t"])
    cleanup(pipeline)
    execute(pipeline, sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(tag)),
            f"CREATE TABLE {tag}.t (id int PRIMARY KEY, v text)",
            f"INSERT INTO {tag}.t SELECT g, 'v' || g FROM generate_series(1, {ROWS}) g")
    start_capture(pipeline)
    plan = plan_from_pipeline(pipeline)
    wait_records(pipeline, [plan.table("t").topic], ROWS)
    run_layers(spark, plan)
    assert len(silver_rows(spark, plan.table("t").silver, "id")) == ROWS
    service.wait_caught_up(pipeline, service.current_lsn(pipeline))
    _wait(lambda: recover.stored_lsn(pipeline) is not None, "the connector's offsets stored")
    return pipeline, plan, f"{tag}.t"


def cdclake_cli(config, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "cdclake", "-c", str(config), *args], capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return result


def _slot_state(slot: dict) -> tuple:
    return slot.get("exists"), slot.get("wal_status"), slot.get("confirmed_flush_lsn")


def _wait(condition, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def stop_capture(pipeline) -> None:
    """Delete the connector (its offsets stay in Connect) and wait until the slot is idle."""
    service.client(pipeline).delete(pipeline.connect.connector_name)
    _wait(lambda: not service.slot_status(pipeline).get("active"), "the slot to go inactive")


def change_in_gap(pipeline, table: str) -> None:
    execute(pipeline, f"DELETE FROM {table} WHERE id <= 7",
            f"UPDATE {table} SET v = 'updated' WHERE id BETWEEN 20 AND 29",
            f"INSERT INTO {table} SELECT g, 'new' || g FROM generate_series(1001, 1012) g")


def lose_wal(pipeline) -> None:
    """Make PostgreSQL invalidate the idle slot: a tiny max_slot_wal_keep_size (and no
    wal_keep_size, which the stack sets to 1GB), WAL switched past it, checkpoints."""
    execute(pipeline, "ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'", "ALTER SYSTEM SET wal_keep_size = 0",
            "SELECT pg_reload_conf()")
    try:
        for _ in range(8):
            execute(pipeline, "CREATE TEMP TABLE wal_filler AS SELECT g FROM generate_series(1, 20000) g",
                    "SELECT pg_switch_wal()", "CHECKPOINT")
            if service.slot_status(pipeline)["wal_status"] == "lost":
                return
        raise AssertionError(f"slot not lost: {service.slot_status(pipeline)}")
    finally:
        execute(pipeline, "ALTER SYSTEM RESET max_slot_wal_keep_size", "ALTER SYSTEM RESET wal_keep_size",
                "SELECT pg_reload_conf()")


@pytest.mark.parametrize("how", ["slot_dropped", "wal_lost"])
def test_recover_brings_silver_back_exact_after_a_lost_slot(stack, spark, cleanup, how):
    pipeline, plan, table = captured_table(stack, cleanup, spark)
    ref = plan.table("t")
    stop_capture(pipeline)
    if how == "slot_dropped":
        recover.drop_slot(pipeline, progress=QUIET)
    change_in_gap(pipeline, table)
    if how == "wal_lost":
        lose_wal(pipeline)

    # The premise: the connector cannot resume, and the error points at recover.
    with pytest.raises(CaptureError, match="cdclake recover"):
        service.apply(pipeline, progress=QUIET, wait=False)
        service.wait_running(pipeline, timeout=45)
    config = write_pipeline(pipeline, f"recover-{how}")
    slot_before = service.slot_status(pipeline)
    report = json.loads(cdclake_cli(config, "--output", "json", "recover", "--dry-run").stdout)
    assert report["lost"] and report["reasons"] and not report["recovered"], report
    assert _slot_state(service.slot_status(pipeline)) == _slot_state(slot_before)  # dry-run changed nothing
    print(f"{how}: {report['reasons']}")

    messages: list[str] = []
    report = recover.recover(pipeline, progress=messages.append)
    assert report["recovered"], report
    assert any("TRUNCATE" in m for m in messages) and any("reset the stored offsets" in m for m in messages)
    run_layers(spark, plan)

    expected = source_rows(pipeline, table, "id, v")
    assert len(expected) == ROWS - 7 + 12
    # Debezium stamps the new snapshot's rows at or after the TRUNCATE, the first one's before it.
    truncate_lsn = report["truncate_lsn"]
    reads = spark.sql(f"SELECT lsn >= {truncate_lsn} AS after, count(*) FROM {ref.bronze} WHERE op = 'r' "
                      "GROUP BY 1").collect()
    assert {r[0]: r[1] for r in reads} == {False: ROWS, True: len(expected)}, reads
    assert silver_rows(spark, ref.silver, "id, v") == expected
    verified = verify(plan, gold=False, progress=QUIET)
    assert verified.ok, verified.as_dict()

    # Streaming goes on after recovery, and a second recover finds nothing to do.
    execute(pipeline, f"DELETE FROM {table} WHERE id = 30", f"INSERT INTO {table} VALUES (2000, 'after')")
    service.wait_caught_up(pipeline, service.current_lsn(pipeline))
    again = cdclake_cli(config, "recover")
    assert again.stdout.strip() == f"slot {pipeline.source.slot} healthy: nothing to recover", again.stderr
    run_layers(spark, plan)
    assert silver_rows(spark, ref.silver, "id, v") == source_rows(pipeline, table, "id, v")
    assert spark.sql(f"SELECT count(DISTINCT lsn) FROM {ref.bronze} WHERE op = 't'").first()[0] == 1

