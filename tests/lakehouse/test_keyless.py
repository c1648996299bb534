"""A table without a primary key (REPLICA IDENTITY FULL) is carried as the exact multiset of its
rows: identical duplicate rows included, one of two identical rows deleted or updated alone,
TRUNCATE, a multi-row COPY, and Debezium's replays (in a later batch or the same one) applied
once. Each test compares silver with PostgreSQL as a multiset it computes itself (a Counter of
row tuples), then runs ``verify``."""

from __future__ import annotations

import threading
import time
from collections import Counter
from decimal import Decimal

import pytest

from cdclake.broker.topics import topic_partitions
from cdclake.source import connection
from tests.lakehouse.conftest import wait_records
from tests.lakehouse.test_silver_exact import (QUIET, assert_verified, execute, new_capture, replay, run_layers,
                                               topic_records, with_tables)

pytestmark = pytest.mark.integration

# big: ~10 kB of hex, stored out of line (TOAST), so an update that leaves it alone sends a placeholder.
BIG = "(SELECT string_agg(md5(i::text || {seed}), '') FROM generate_series(1, 300) i)"
COLUMNS = "a, b, c, md5(big)"
LOG_COLUMNS = "a int, b text, c numeric(10,2) DEFAULT 7.77, big text DEFAULT 'dflt'"
DUPLICATES = (f"SELECT 1, 'a', 1.50, {BIG.format(seed=1)} FROM generate_series(1, 3) "
              f"UNION ALL SELECT 2, 'b', NULL, {BIG.format(seed=2)} FROM generate_series(1, 2) "
              f"UNION ALL SELECT 3, 'c', 3.00, NULL")


def one_of(table: str, where: str) -> str:
    """A condition picking exactly one of the identical rows matching ``where``."""
    return f"ctid = (SELECT ctid FROM {table} WHERE {where} LIMIT 1)"


def source_multiset(pipeline, table: str) -> Counter:
    with connection.connect(pipeline, autocommit=True) as conn:
        return Counter(conn.execute(f"SELECT {COLUMNS} FROM {table}").fetchall())


def silver_multiset(spark, silver: str) -> Counter:
    return Counter(tuple(r) for r in spark.sql(f"SELECT {COLUMNS} FROM {silver}").collect())


def assert_same_multiset(spark, pipeline, ref, table: str) -> Counter:
    expected = source_multiset(pipeline, table)
    assert silver_multiset(spark, ref.silver) == expected
    return expected


def captured_log(stack, spark, cleanup, prefix: str):
    """Keyless table ``log`` holding identical duplicate rows, captured and in silver; returns
    (pipeline, plan, ref, qualified name, the snapshot's Kafka records). ``c`` and ``big`` have a DEFAULT,
    so an old row's explicit NULL must not come back as the default (it would match no row)."""
    pipeline, plan = new_capture(stack, cleanup, prefix, {"log": LOG_COLUMNS},
                                 {"log": DUPLICATES}, setup="ALTER TABLE log REPLICA IDENTITY FULL")
    ref = plan.table("log")
    assert topic_partitions(pipeline.kafka.bootstrap, [ref.topic]) == {ref.topic: [0]}
    wait_records(pipeline, [ref.topic], 6)
    run_layers(spark, plan)
    table = f"{ref.schema}.log"
    assert sorted(assert_same_multiset(spark, pipeline, ref, table).values()) == [1, 2, 3]
    return pipeline, plan, ref, table, topic_records(pipeline.kafka.bootstrap, ref.topic, 6)


def copy_rows(pipeline, table: str, rows: list[tuple]) -> None:
    """COPY: one multi-insert WAL record, so every row shares one LSN. ``big`` is an explicit NULL."""
    with connection.connect(pipeline, autocommit=True) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY {table} (a, b, c, big) FROM STDIN") as copy:
            for row in rows:
                copy.write_row((*row, None))


def test_keyless_table_keeps_duplicates_deletes_and_updates_one_copy_and_truncates(stack, spark, cleanup):
    pipeline, plan, ref, table, _ = captured_log(stack, spark, cleanup, "keyless")

    # One batch: more duplicates, one of two identical rows deleted, one of three updated (big
    # untouched: a TOAST placeholder), one updated to equal another row.
    execute(pipeline, f"INSERT INTO {table} SELECT 1, 'a', 1.50, {BIG.format(seed=1)}; "
                      f"INSERT INTO {table} SELECT 4, 'd', 4.00, NULL FROM generate_series(1, 2)")
    execute(pipeline, f"DELETE FROM {table} WHERE {one_of(table, 'a = 2')}")
    execute(pipeline, f"UPDATE {table} SET c = 9.99 WHERE {one_of(table, 'a = 1')}")
    execute(pipeline, f"UPDATE {table} SET a = 4, b = 'd', c = 4.00, big = NULL WHERE a = 3")
    wait_records(pipeline, [ref.topic], 6 + 3 + 1 + 1 + 1)
    run_layers(spark, plan)
    expected = assert_same_multiset(spark, pipeline, ref, table)
    assert sorted(expected.values()) == [1, 1, 3, 3] and sum(expected.values()) == 8

    # Next batch: a COPY of identical rows (one LSN), then an update of one copy of them.
    copy_rows(pipeline, table, [(5, "e", "5.00"), (5, "e", "5.00"), (6, "f", None), (5, "e", "5.00")])
    execute(pipeline, f"UPDATE {table} SET b = 'e2' WHERE {one_of(table, 'a = 5')}")
    wait_records(pipeline, [ref.topic], 12 + 4 + 1)
    run_layers(spark, plan)
    expected = assert_same_multiset(spark, pipeline, ref, table)
    assert expected[(5, "e", Decimal("5.00"), None)] == 2

    # TRUNCATE, rows after it in the same transaction and after: only those stay.
    execute(pipeline, f"INSERT INTO {table} VALUES (7, 'gone', NULL, NULL)")
    execute(pipeline, f"BEGIN; TRUNCATE {table}; INSERT INTO {table} VALUES (8, 'h', NULL, NULL), "
                      f"(8, 'h', NULL, NULL); COMMIT")
    execute(pipeline, f"INSERT INTO {table} VALUES (8, 'h', NULL, NULL); DELETE FROM {table} WHERE "
                      f"{one_of(table, 'a = 8')}")
    wait_records(pipeline, [ref.topic], 17 + 1 + 1 + 2 + 2)
    run_layers(spark, plan)
    assert assert_same_multiset(spark, pipeline, ref, table) == Counter({(8, "h", None, None): 2})
    assert_verified(plan)


def test_replayed_changes_of_a_keyless_table_are_applied_once(stack, spark, cleanup):
    pipeline, plan, ref, table, snapshot = captured_log(stack, spark, cleanup, "kreplay")

    execute(pipeline, f"DELETE FROM {table} WHERE {one_of(table, 'a = 1')}")
    execute(pipeline, f"UPDATE {table} SET b = 'b2' WHERE {one_of(table, 'a = 2')}")
    copy_rows(pipeline, table, [(5, "e", "5.00")] * 3)
    wait_records(pipeline, [ref.topic], 6 + 2 + 3)
    run_layers(spark, plan)
    assert_same_multiset(spark, pipeline, ref, table)
    changes = topic_records(pipeline.kafka.bootstrap, ref.topic, 11)

    # The snapshot re-sent, alone in a batch: no row gains a copy.
    replay(pipeline.kafka.bootstrap, ref.topic, snapshot)
    wait_records(pipeline, [ref.topic], 11 + 6)
    run_layers(spark, plan)
    assert_same_multiset(spark, pipeline, ref, table)

    # New changes and their replay in one batch (Debezium re-sends after a Connect crash before
    # silver runs): the originals apply, the copies do not.
    execute(pipeline, f"INSERT INTO {table} SELECT 1, 'a', 1.50, {BIG.format(seed=1)}")
    execute(pipeline, f"DELETE FROM {table} WHERE {one_of(table, 'a = 5')}")
    wait_records(pipeline, [ref.topic], 17 + 2)
    fresh = topic_records(pipeline.kafka.bootstrap, ref.topic, 19)[17:]
    replay(pipeline.kafka.bootstrap, ref.topic, changes + fresh)
    execute(pipeline, f"INSERT INTO {table} VALUES (5, 'e', 5.00, NULL)")
    wait_records(pipeline, [ref.topic], 19 + 11 + 2 + 1)
    run_layers(spark, plan)
    expected = assert_same_multiset(spark, pipeline, ref, table)
    assert expected[(5, "e", Decimal("5.00"), None)] == 3 and sum(expected.values()) == 6 - 1 + 3 + 1 - 1 + 1
    assert_verified(plan)


class Writer(threading.Thread):
    """Autocommitted single-row inserts into a keyless table, one after another, until stopped."""

    def __init__(self, pipeline, table: str):
        super().__init__(daemon=True)
        self.pipeline, self.table, self.commits, self.stopped = pipeline, table, [], threading.Event()

    def run(self) -> None:
        with connection.connect(self.pipeline, autocommit=True) as conn:
            while not self.stopped.is_set():
                conn.execute(f"INSERT INTO {self.table} VALUES (7, 'w', NULL, NULL)")
                self.commits.append(time.monotonic())
                time.sleep(0.01)

    def stop(self) -> list[float]:
        self.stopped.set()
        self.join(30)
        return self.commits


def test_a_keyless_table_added_to_a_running_connector_arrives_exactly_while_written(stack, spark, cleanup):
    """Removed from capture, changed meanwhile (a duplicate deleted), then added back while a writer
    inserts identical rows: the blocking snapshot and the stream together hold each row once."""
    from cdclake.capture import service

    pipeline, plan = new_capture(stack, cleanup, "kadded", {"a": "id int PRIMARY KEY", "log": LOG_COLUMNS},
                                 {"a": "SELECT 1", "log": DUPLICATES}, setup="ALTER TABLE log REPLICA IDENTITY FULL")
    ref = plan.table("log")
    table = f"{ref.schema}.log"
    wait_records(pipeline, [ref.topic], 6)
    run_layers(spark, plan)  # silver holds the rows as they were, before the gap
    service.apply(with_tables(pipeline, [f"{ref.schema}.a"]), progress=QUIET)
    execute(pipeline, f"DELETE FROM {table} WHERE {one_of(table, 'a = 1')}; "
                      f"INSERT INTO {table} VALUES (4, 'd', NULL, NULL)")  # not captured: the gap

    writer = Writer(pipeline, table)
    writer.start()
    while not writer.commits:
        time.sleep(0.05)
    started = time.monotonic()
    added = service.apply(pipeline, progress=QUIET)
    applied = time.monotonic()
    time.sleep(2)
    commits = writer.stop()
    assert list(added["snapshots"]) == [table]
    # The premise: writes went on before, while, and after the table was added.
    assert any(started < t < applied for t in commits) and any(t > applied for t in commits)
    execute(pipeline, f"DELETE FROM {table} WHERE {one_of(table, 'a = 2')}; "
                      f"UPDATE {table} SET b = 'w2' WHERE {one_of(table, 'a = 7')}")

    service.wait_caught_up(pipeline, service.current_lsn(pipeline))
    run_layers(spark, plan)
    expected = assert_same_multiset(spark, pipeline, ref, table)
    assert expected[(7, "w", None, None)] == len(commits) - 1 and expected[(4, "d", None, None)] == 1
    assert sum(expected.values()) == 6 - 1 + 1 + len(commits) - 1
    assert_verified(plan)


def test_a_keyless_table_snapshotted_again_is_replaced_not_doubled(stack, spark, cleanup):
    """``cdclake connector snapshot`` of a keyless table: its rows are read again whole, and silver
    holds each row once (the marker drops the copies silver held before), duplicates included."""
    from cdclake.capture import service

    pipeline, plan, ref, table, _ = captured_log(stack, spark, cleanup, "kresnap")
    execute(pipeline, f"DELETE FROM {table} WHERE {one_of(table, 'a = 1')}; "
                      f"INSERT INTO {table} VALUES (4, 'd', NULL, NULL), (4, 'd', NULL, NULL)")
    wait_records(pipeline, [ref.topic], 6 + 3)
    signal = service.snapshot_table(pipeline, table, progress=QUIET)
    assert signal != "none: the table is empty"
    execute(pipeline, f"UPDATE {table} SET b = 'd2' WHERE {one_of(table, 'a = 4')}")
    service.wait_caught_up(pipeline, service.current_lsn(pipeline))
    # The premise: the table's 7 rows were all sent again, as reads (after the marker, before the update).
    records = topic_records(pipeline.kafka.bootstrap, ref.topic, 6 + 3 + 1 + 7 + 1)
    assert sum(b'"__op":"r"' in value for _, _, value in records[9:]) == 7
    run_layers(spark, plan)
    expected = assert_same_multiset(spark, pipeline, ref, table)
    assert sum(expected.values()) == 7 and expected[(4, "d", None, None)] == 1
    assert_verified(plan)
