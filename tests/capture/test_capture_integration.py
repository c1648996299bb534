"""PostgreSQL -> Debezium -> Kafka on the real stack, compared with what was committed."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from decimal import Decimal

import pytest
from psycopg import sql

from cdclake.broker.topics import end_offsets
from cdclake.capture import service
from cdclake.capture.connector import TOAST_PLACEHOLDER, table_topics
from cdclake.source import connection
from cdclake.source.demo import DEMO_TABLES, create_demo
from cdclake.source.prepare import init_source
from cdclake.source.workload import Workload
from cdclake.stack import process
from cdclake.stack import stack as local_stack
from tests.capture.faults import assert_silver_exact, demo_lake, wait_for
from tests.conftest import capture_pipeline, drop_capture, read_topics, unique
from tests.lakehouse.conftest import cleanup, spark  # noqa: F401 - the lakehouse fixtures, used here too
from tests.lakehouse.conftest import start_capture, wait_confirmed

pytestmark = pytest.mark.integration
TABLES = [t.split(".")[1] for t in DEMO_TABLES]


@pytest.fixture
def demo(stack):
    """A fresh copy of the demo database in its own schema, captured by its own connector."""
    schema = unique("demo")
    pipeline = capture_pipeline(stack, schema, TABLES)
    create_demo(pipeline, seed=7, users=60, products=20, orders=120, schema=schema)
    init_source(pipeline, progress=lambda m: None)
    yield pipeline, schema
    drop_capture(pipeline)


def _source_counts(pipeline, schema):
    with connection.connect(pipeline) as conn:
        return {t: conn.execute(sql.SQL("SELECT count(*) FROM {}.{}").format(
            sql.Identifier(schema), sql.Identifier(t))).fetchone()[0] for t in TABLES}


def _events_by_table(records):
    out = defaultdict(list)
    for r in records:
        out[r["value"]["__table"]].append(r)
    return out


def test_snapshot_then_stream_matches_every_committed_change(demo):
    pipeline, schema = demo
    before = _source_counts(pipeline, schema)
    service.apply(pipeline, progress=lambda m: None)
    workload = Workload(pipeline, seed=3, schema=schema, record=True)
    result = workload.run(rate=400, ops=800, progress=lambda m: None)
    expected = len(result.changes) + sum(before.values())
    topics = list(table_topics(pipeline).values())
    records = read_topics(pipeline.kafka.bootstrap, topics, lambda rs: len(rs) >= expected, timeout=90)
    assert len(records) == expected, f"{len(records)} events for {expected} changes"

    by_table = _events_by_table(records)
    # Rows that existed before the connector started arrive as op r.
    for table in TABLES:
        assert sum(1 for r in by_table[table] if r["value"]["__op"] == "r") == before[table]

    # Change by change, per key, in commit order (the journal is in commit order).
    committed = defaultdict(list)
    for change in result.changes:
        committed[(change.table.split(".")[1], change.key["id"])].append((change.op, change.txid))
    seen = defaultdict(list)
    for r in sorted(records, key=lambda r: (r["topic"], r["partition"], r["offset"])):
        v = r["value"]
        if v["__op"] != "r":
            seen[(v["__table"], r["key"]["id"])].append((v["__op"], v["__txId"], v["__lsn"]))
    assert {k: [(op, tx) for op, tx, _ in evs] for k, evs in seen.items()} == dict(committed)
    for events in seen.values():
        lsns = [lsn for _, _, lsn in events]
        assert lsns == sorted(lsns)  # per-key order is commit order

    # Deletes carry the deleted flag; nothing else does.
    for r in records:
        assert (r["value"]["__deleted"] == "true") == (r["value"]["__op"] == "d")
    # Debezium's context headers are switched off (nothing reads them); a PK update's delete
    # and create keep the only others, naming the key on the other side.
    names = {name for r in records for name, _ in r["headers"]}
    assert names == {"__debezium.oldkey", "__debezium.newkey"}

    # Every kind of the mix ran: multi-row tx, same row twice, PK update, TOAST, insert-then-delete.
    assert set(result.by_kind) >= {"insert_orders", "update_order_twice", "pk_update_product",
                                   "update_user_small", "update_user_toast", "insert_then_delete"}
    _assert_numerics_exact(pipeline, schema, by_table["products"], by_table["orders"])
    _assert_toast_placeholders(pipeline, schema, by_table["users"])


def _latest(events):
    latest = {}
    for r in sorted(events, key=lambda r: (r["value"]["__lsn"], r["offset"])):
        latest[r["key"]["id"]] = r["value"]
    return {k: v for k, v in latest.items() if v["__op"] != "d"}


def _assert_numerics_exact(pipeline, schema, products, orders):
    with connection.connect(pipeline) as conn:
        prices = dict(conn.execute(sql.SQL("SELECT id, price FROM {}.products").format(sql.Identifier(schema))))
        totals = dict(conn.execute(sql.SQL("SELECT id, total_amount FROM {}.orders").format(sql.Identifier(schema))))
    got_prices = {k: Decimal(v["price"]) for k, v in _latest(products).items()}
    got_totals = {k: Decimal(v["total_amount"]) for k, v in _latest(orders).items()}
    assert got_prices == prices and got_totals == totals
    # strings, not floats: the scale survives too
    assert all(isinstance(v["price"], str) and len(v["price"].split(".")[1]) == 2 for v in _latest(products).values())
    assert any(p in {Decimal("9999999999.99"), Decimal("-9999999999.99"), Decimal("0.01")} for p in prices.values())


def _assert_toast_placeholders(pipeline, schema, users):
    placeholders = [r for r in users if r["value"]["bio"] == TOAST_PLACEHOLDER]
    assert placeholders, "an update leaving the TOASTed bio alone must send the placeholder"
    assert all(r["value"]["__op"] == "u" for r in placeholders)
    # The placeholder only stands for values PostgreSQL really stored out of line.
    with connection.connect(pipeline) as conn:
        for r in placeholders[:20]:
            earlier = [e["value"]["bio"] for e in users if e["key"] == r["key"]
                       and e["value"]["__lsn"] < r["value"]["__lsn"] and e["value"]["bio"] != TOAST_PLACEHOLDER]
            if earlier:
                assert earlier[-1] is not None and len(earlier[-1]) > 2000
        assert conn.execute("SELECT 1").fetchone()


def test_worker_kill_replays_loses_nothing_and_silver_is_exact(stack, spark, cleanup):
    pipeline, plan, schema = demo_lake(stack, cleanup, "kill", TABLES)
    start_capture(pipeline)
    before = sum(_source_counts(pipeline, schema).values())
    topics = list(table_topics(pipeline).values())
    # Crash while streaming: the initial snapshot done and its offsets committed first (a
    # snapshot cut short is redone from the current state: correct, but with no per-change
    # history for what happened meanwhile; test_faults.py cuts one with PostgreSQL's crash).
    wait_confirmed(pipeline)
    workload = Workload(pipeline, seed=11, schema=schema, record=True)
    committed = list(workload.run(rate=300, ops=150, progress=lambda m: None).changes)
    wait_confirmed(pipeline)

    connect = local_stack.LocalStack.of(stack).connect.daemon()
    background = threading.Thread(target=workload.run, kwargs={"rate": 300, "ops": 600, "progress": print})
    streamed = sum(sum(p.values()) for p in end_offsets(pipeline.kafka.bootstrap, topics).values())
    try:
        background.start()
        # Mid-stream: changes sent since Debezium's last offset flush (every 5 s) are in Kafka.
        wait_for(lambda: sum(sum(p.values()) for p in end_offsets(pipeline.kafka.bootstrap, topics).values())
                 >= streamed + 100, "100 new changes in Kafka", every=0.1)
        pid = process.kill(connect)  # kill -9; the workload keeps committing meanwhile
        assert not process.alive(pid) and process.running_pid(connect.pidfile) is None
        background.join()
        committed += workload.result.changes
    finally:
        background.join()
        restarted = local_stack.up(stack, progress=lambda m: None)
    assert restarted.started == ["connect"] and process.running_pid(connect.pidfile) not in (None, pid)
    service.wait_running(pipeline)

    expected = before + len(committed)
    records = read_topics(pipeline.kafka.bootstrap, topics, lambda rs: _unique_changes(rs) >= expected, timeout=120)
    seen = {(r["value"]["__table"], r["key"]["id"], r["value"]["__op"], r["value"]["__txId"]) for r in records}
    missing = [c for c in committed if (c.table.split(".")[1], c.key["id"], c.op, c.txid) not in seen]
    assert not missing, (len(missing), missing[:10])
    assert _unique_changes(records) == expected
    by_identity = defaultdict(list)
    for r in records:
        by_identity[(r["topic"], str(r["key"]), r["value"]["__lsn"], r["value"]["__op"])].append(r["value"])
    replayed = sum(len(dupes) - 1 for dupes in by_identity.values())
    assert replayed > 0, "no change was sent twice: the kill did not interrupt Debezium between offset flushes"
    for dupes in by_identity.values():  # a duplicate is the same change: same LSN, same values
        assert all(d == dupes[0] | {"__ts_ms": d["__ts_ms"]} for d in dupes)
    wait_confirmed(pipeline)
    counts = assert_silver_exact(spark, plan, pipeline)
    print(f"worker kill: {len(committed)} changes, {replayed} re-sent after the restart; silver == source: {counts}")


def _unique_changes(records):
    return len({(r["topic"], str(r["key"]), r["value"]["__lsn"], r["value"]["__op"]) for r in records})


def test_heartbeat_advances_slot_while_captured_tables_idle(demo):
    pipeline, schema = demo
    service.apply(pipeline, progress=lambda m: None)
    with connection.connect(pipeline, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE TABLE {}.busy (id serial PRIMARY KEY, v text)").format(sql.Identifier(schema)))
        start = _confirmed(conn, pipeline.source.slot)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            conn.execute(sql.SQL("INSERT INTO {}.busy (v) SELECT repeat('x', 500) FROM generate_series(1, 200)").format(
                sql.Identifier(schema)))
            time.sleep(0.5)
            if _confirmed(conn, pipeline.source.slot) > start + 256 * 1024:
                break
        advanced = _confirmed(conn, pipeline.source.slot) - start
    assert advanced > 256 * 1024, f"confirmed_flush_lsn moved only {advanced} bytes"


def _confirmed(conn, slot) -> int:
    return conn.execute("SELECT pg_wal_lsn_diff(confirmed_flush_lsn, '0/0')::bigint FROM pg_replication_slots "
                        "WHERE slot_name = %s", (slot,)).fetchone()[0]


def test_incremental_snapshot_of_one_table_while_streaming(demo):
    pipeline, schema = demo
    service.apply(pipeline, progress=lambda m: None)
    counts = _source_counts(pipeline, schema)
    topics = list(table_topics(pipeline).values())
    initial = sum(counts.values())
    first = read_topics(pipeline.kafka.bootstrap, topics, lambda rs: len(rs) >= initial)
    assert len(first) == initial
    initial_users = {r["key"]["id"] for r in first if r["topic"].endswith(".users")}

    service.snapshot_table(pipeline, f"{schema}.users")
    workload = Workload(pipeline, seed=5, schema=schema, record=True)
    streamed = workload.run(rate=200, ops=200, progress=lambda m: None).changes

    with connection.connect(pipeline) as conn:
        users_now = {r[0] for r in conn.execute(sql.SQL("SELECT id FROM {}.users").format(sql.Identifier(schema)))}

    changed = {c.key["id"] for c in streamed if c.table.endswith(".users")}

    def snapshot_done(records):
        """Every user row that existed throughout was read twice: initial + incremental snapshot.
        (A row changed during a snapshot window is sent by its change event instead: Debezium
        drops the stale read.)"""
        reads = defaultdict(int)
        for r in records:
            if r["topic"].endswith(".users") and r["value"]["__op"] == "r":
                reads[r["key"]["id"]] += 1
        return all(reads[key] >= 2 for key in (users_now & initial_users) - changed)

    def streamed_missing(records):
        seen = {(r["value"]["__txId"], r["key"]["id"]) for r in records if r["value"]["__op"] != "r"}
        return {(c.txid, c.key["id"]) for c in streamed} - seen

    records = read_topics(pipeline.kafka.bootstrap, topics,
                          lambda rs: snapshot_done(rs) and not streamed_missing(rs), timeout=90)
    assert snapshot_done(records), "the incremental snapshot did not re-read every users row"
    assert not streamed_missing(records)  # streaming went on meanwhile, nothing lost

    with pytest.raises(Exception, match="unknown table"):
        service.snapshot_table(pipeline, "public.nope")
