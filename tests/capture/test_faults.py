"""Faults on the capture path of the session stack, each proven first (the fault happened,
as the test's own reading of the stack shows) and then on data: silver, after bronze and
silver runs, equals the rows the test reads from PostgreSQL, and ``verify`` agrees.

- a second Connect worker in the group; the one running the task is killed -9;
- Debezium stopped under writes: the slot's lag and retained WAL grow in ``status`` and
  the health check, then it catches up (the slot lost past ``max_slot_wal_keep_size`` is
  tests/capture/test_recover.py's ``wal_lost`` case);
- PostgreSQL stopped with ``pg_ctl -m immediate`` while streaming, and during the initial
  snapshot;
- one transaction of 100,000 changes, and a burst of large TOASTed rows.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

import pytest

from cdclake.broker.topics import end_offsets
from cdclake.capture import service
from cdclake.capture.recover import lsn_int
from cdclake.capture.connect_client import ConnectClient
from cdclake.health.pipeline import ReplicationSlotError, check_replication_slot, human_bytes
from cdclake.source import connection
from cdclake.source.prepare import init_source
from cdclake.stack import process
from cdclake.stack import stack as local_stack
from tests.capture.faults import (QUIET, Background, assert_silver_exact, confirmed_lsn, demo_lake,
                                  execute, table_lake, wait_for)
from tests.conftest import TEST_JMX_PORT
from tests.lakehouse.conftest import cleanup, spark  # noqa: F401 - the lakehouse fixtures, used here too
from tests.lakehouse.conftest import start_capture, wait_confirmed, write_pipeline

pytestmark = pytest.mark.integration


def topic_total(pipeline, plan) -> int:
    return sum(sum(p.values()) for p in end_offsets(pipeline.kafka.bootstrap, [r.topic for r in plan.tables]).values())


def task_worker(url: str, connector: str) -> str | None:
    """The worker_id running the connector's task 0 while it is RUNNING, as ``url`` reports it."""
    try:
        status = ConnectClient(url, timeout=5).status(connector) or {}
    except Exception:  # noqa: BLE001 - a worker mid-rebalance may answer 409/500: ask again
        return None
    tasks = [t for t in status.get("tasks", []) if t.get("state") == "RUNNING"]
    return tasks[0]["worker_id"] if tasks else None


def streaming_moves(pipeline) -> int:
    """Wait until Debezium confirms a position past the current one (it streams); returns it."""
    start = lsn_int(service.current_lsn(pipeline))
    return wait_for(lambda: (lsn := confirmed_lsn(pipeline)) > start and lsn, "Debezium to confirm new changes")


def test_two_connect_workers_the_task_moves_when_its_worker_is_killed(stack, spark, cleanup):
    pipeline, plan, schema = demo_lake(stack, cleanup, "workers")
    two = stack.model_copy(update={"connect": stack.connect.model_copy(update={"workers": 2})})
    workers = local_stack.LocalStack.of(two).connect
    name = pipeline.connect.connector_name
    try:
        assert local_stack.up(two, progress=QUIET).started == ["connect-2"]
        start_capture(pipeline)
        wait_confirmed(pipeline)
        first = wait_for(lambda: task_worker(workers.url, name), "the task RUNNING")
        victim = workers.worker_of(first)
        survivor = 2 if victim == 1 else 1
        with Background(pipeline, schema, rate=200) as load:
            streaming_moves(pipeline)
            pid = process.kill(workers.daemon(victim))
            assert not process.alive(pid) and process.running_pid(workers.daemon(victim).pidfile) is None
            # The status reads RUNNING on the dead worker until the group notices (session timeout).
            moved = workers.worker_id(survivor)
            wait_for(lambda: task_worker(workers.worker_url(survivor), name) == moved, f"the task RUNNING on {moved}",
                     timeout=180)
            streaming_moves(pipeline)  # the survivor streams under load
        print(f"task moved {first} -> {moved}; {load.ops} changes under load")
        wait_confirmed(pipeline)
        counts = assert_silver_exact(spark, plan, pipeline)
        print(f"silver == source: {counts}")
    finally:
        local_stack.up(stack, progress=QUIET)  # worker 1 back if it was the victim
        process.stop(workers.daemon(2))
        # Until the group has rebalanced, worker 1 forwards writes to a leader that is gone.
        wait_for(lambda: accepts_writes(workers.url, name), "worker 1 to take writes again", timeout=180, every=2)


def accepts_writes(url: str, connector: str) -> bool:
    """Deleting the test's connector (a write Connect forwards to the group's leader) succeeds."""
    try:
        ConnectClient(url, timeout=10).delete(connector)
    except Exception:  # noqa: BLE001 - 409 rebalancing / 500 forwarding to a dead leader: not yet
        return False
    return True


def cli_status(config) -> dict:
    out = subprocess.run([sys.executable, "-m", "cdclake", "-c", str(config), "--output", "json", "status"],
                         capture_output=True, text=True, timeout=180)
    return json.loads(out.stdout)["connector"]["slot"]


STOPPED_CHANGES = 3000  # between readings of `cdclake status` (bench/chaos runs the minutes-long loads)


def test_debezium_stopped_under_writes_lag_grows_in_status_then_it_catches_up(stack, spark, cleanup):
    pipeline, plan, schema = demo_lake(stack, cleanup, "stopped")
    start_capture(pipeline)
    wait_confirmed(pipeline)
    config = write_pipeline(pipeline, schema)
    name = pipeline.connect.connector_name
    connect = service.client(pipeline)
    connect.request("PUT", f"/connectors/{name}/stop")
    wait_for(lambda: not service.slot_status(pipeline)["active"], "the slot to go inactive")
    before = cli_status(config)
    samples = []
    with Background(pipeline, schema, rate=300) as load:
        for _ in range(3):  # three readings of the slot as `status` reports it, while the writes go on
            wait_for(lambda: load.ops >= STOPPED_CHANGES * (len(samples) + 1),
                     f"{STOPPED_CHANGES * (len(samples) + 1)} changes", timeout=240)
            samples.append(service.connector_status(pipeline)["slot"])
        samples[-1] = cli_status(config)  # the last one from the command itself
    for earlier, later in zip([before, *samples], samples):
        assert later["lag_bytes"] > earlier["lag_bytes"] and later["retained_wal_bytes"] > earlier["retained_wal_bytes"]
    with pytest.raises(ReplicationSlotError, match="is not active") as err:
        check_replication_slot(pipeline, max_lag_bytes=1 << 20)
    assert err.value.lag_bytes >= samples[-1]["lag_bytes"] and human_bytes(err.value.lag_bytes) in str(err.value)
    print(f"stopped: {load.ops} changes; lag {[s['lag_bytes'] for s in [before, *samples]]} B, "
          f"retained WAL {[s['retained_wal_bytes'] for s in [before, *samples]]} B; health: {err.value}")

    connect.resume(name)
    service.wait_running(pipeline)
    wait_confirmed(pipeline)
    healthy = check_replication_slot(pipeline, max_lag_bytes=1 << 20)
    assert healthy["lag_bytes"] < samples[-1]["lag_bytes"]
    counts = assert_silver_exact(spark, plan, pipeline)
    print(f"resumed, lag {healthy['lag_bytes']} B; silver == source: {counts}")


def crash_postgres(stack) -> None:
    """``pg_ctl stop -m immediate`` on the session's PostgreSQL, proven down, then ``up`` again."""
    pg = local_stack.LocalStack.of(stack).postgres
    pg.stop_immediate()
    with pytest.raises(Exception):
        pg.probe()
    assert local_stack.up(stack, progress=QUIET).started == ["postgres"]


def test_postgres_immediate_shutdown_while_streaming(stack, spark, cleanup):
    pipeline, plan, schema = demo_lake(stack, cleanup, "pgcrash")
    start_capture(pipeline)
    wait_confirmed(pipeline)
    with Background(pipeline, schema, rate=300, outages=True) as load:
        streaming_moves(pipeline)
        crash_postgres(stack)
        service.wait_running(pipeline, timeout=180)
        streaming_moves(pipeline)  # Debezium reconnected and streams the writes after the restart
    assert load.lost_connections >= 1  # the workload was writing when PostgreSQL went down
    wait_confirmed(pipeline)
    counts = assert_silver_exact(spark, plan, pipeline)
    print(f"{load.ops} changes across the crash; silver == source: {counts}")


def debezium_metric(name: str, server: str) -> float | None:
    """A Debezium MBean attribute from the session Connect worker's JMX exporter."""
    with urllib.request.urlopen(f"http://127.0.0.1:{TEST_JMX_PORT + 10}/metrics", timeout=10) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith(f"{name}{{") and f'server="{server}"' in line:
                return float(line.rsplit(" ", 1)[1])
    return None


SNAPSHOT_ROWS = 200_000


def test_postgres_immediate_shutdown_during_the_initial_snapshot(stack, spark, cleanup):
    pipeline, plan, tag = table_lake(stack, cleanup, "snapcrash", "big", "id int PRIMARY KEY, v text",
                                     f"INSERT INTO big SELECT g, md5(g::text) || repeat('x', 100) "
                                     f"FROM generate_series(1, {SNAPSHOT_ROWS}) g")
    server = pipeline.kafka.topic_prefix
    init_source(pipeline, progress=QUIET)
    service.apply(pipeline, progress=QUIET, wait=False)
    wait_for(lambda: topic_total(pipeline, plan) > 0, "the snapshot's first rows in Kafka", every=0.1)
    assert debezium_metric("debezium_postgres_snapshot_snapshotrunning", server) == 1.0
    crash_postgres(stack)
    at_crash = topic_total(pipeline, plan)
    assert 0 < at_crash < SNAPSHOT_ROWS, at_crash  # the snapshot was cut short
    assert debezium_metric("debezium_postgres_snapshot_snapshotcompleted", server) != 1.0

    service.wait_running(pipeline, timeout=180)
    wait_for(lambda: debezium_metric("debezium_postgres_snapshot_snapshotcompleted", server) == 1.0,
             "the snapshot redone to its end", timeout=300)
    execute(pipeline, f"DELETE FROM {tag}.big WHERE id % 7 = 0", f"UPDATE {tag}.big SET v = 'after' WHERE id % 5 = 0",
            f"INSERT INTO {tag}.big SELECT g, 'new' FROM generate_series({SNAPSHOT_ROWS + 1}, {SNAPSHOT_ROWS + 500}) g")
    wait_confirmed(pipeline)
    counts = assert_silver_exact(spark, plan, pipeline, {"big": "id, v"})
    reads = spark.sql(f"SELECT count(*) FROM {plan.table('big').bronze} WHERE op = 'r'").first()[0]
    assert reads > SNAPSHOT_ROWS  # the cut snapshot's rows, then the whole table again
    print(f"crash after {at_crash} of {SNAPSHOT_ROWS} snapshot rows; {reads} reads in bronze; silver: {counts}")


def test_one_transaction_of_100k_changes(stack, spark, cleanup):
    pipeline, plan, tag = table_lake(stack, cleanup, "bigtx", "t", "id int PRIMARY KEY, v text, n bigint",
                                     "INSERT INTO t SELECT g, 'v' || g, g FROM generate_series(1, 20000) g")
    start_capture(pipeline)
    wait_confirmed(pipeline)
    before = topic_total(pipeline, plan)
    # 60,000 inserts, 30,000 updates (10,000 of rows inserted in this very transaction) and
    # 10,000 deletes of rows it inserted: one commit, 100,000 changes.
    with connection.connect(pipeline) as conn:
        conn.execute(f"INSERT INTO {tag}.t SELECT g, 'tx' || g, -g FROM generate_series(20001, 80000) g")
        conn.execute(f"UPDATE {tag}.t SET v = v || '+', n = n * 2 WHERE id <= 10000 OR id BETWEEN 20001 AND 40000")
        conn.execute(f"DELETE FROM {tag}.t WHERE id > 70000")
        assert conn.execute(f"SELECT count(*) FROM {tag}.t").fetchone()[0] == 70000
    wait_confirmed(pipeline)
    assert topic_total(pipeline, plan) - before >= 100_000
    counts = assert_silver_exact(spark, plan, pipeline, {"t": "id, v, n"})
    assert counts == {"t": 70000}
    print(f"one transaction: {topic_total(pipeline, plan) - before} events for 100000 changes; silver: {counts}")


def test_a_burst_of_large_toasted_rows(stack, spark, cleanup):
    pipeline, plan, tag = table_lake(stack, cleanup, "toast", "docs", "id int PRIMARY KEY, body text, n int",
                                     "ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL")
    start_capture(pipeline)
    # 200 rows of ~256 KiB each (incompressible hex), 50 MiB in a burst of 10 transactions;
    # then updates that leave body alone (Debezium's TOAST placeholder), others that change it.
    body = "(SELECT string_agg(md5(g::text || '-' || i::text), '') FROM generate_series(1, 8192) i)"
    with connection.connect(pipeline, autocommit=True) as conn:
        for start in range(1, 201, 20):
            conn.execute(f"INSERT INTO {tag}.docs SELECT g, {body}, 0 FROM generate_series({start}, {start + 19}) g")
        conn.execute(f"UPDATE {tag}.docs SET n = id WHERE id % 2 = 0")
        conn.execute(f"UPDATE {tag}.docs SET body = left(body, 1000) || 'changed', n = -id WHERE id % 10 = 1")
        conn.execute(f"DELETE FROM {tag}.docs WHERE id % 25 = 0")
        sizes = conn.execute(f"SELECT min(length(body)), max(length(body)) FROM {tag}.docs").fetchone()
    assert sizes == (1007, 8192 * 32)
    wait_confirmed(pipeline)
    columns = {"docs": "id, md5(body), length(body), n"}
    counts = assert_silver_exact(spark, plan, pipeline, columns)
    assert counts == {"docs": 192}
    placeholders = spark.sql(f"SELECT count(*) FROM {plan.table('docs').bronze} WHERE op = 'u' AND "
                             "event_value LIKE '%__debezium_unavailable_value%'").first()[0]
    assert placeholders == 100  # every update that left body alone came as a placeholder, and silver kept it
    print(f"TOAST burst: 200 rows x 256 KiB, {placeholders} placeholder updates; silver: {counts}")
