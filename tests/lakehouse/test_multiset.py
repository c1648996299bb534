"""The multiset logic of keyless silver (lakehouse/multiset.py) on hand-made bronze events:
positions and runs, replays dropped within and across batches, row deltas. Spark runs the
logic (no Kafka, no capture); the pure parts run without a JVM at the end."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime

import pytest

from cdclake.lakehouse import multiset
from cdclake.lakehouse.configuration import TableRef
from cdclake.lakehouse.multiset import Run
from cdclake.lakehouse.pgschema import Column, TableSchema
from cdclake.verify.silver import TableReport, _compare_multisets
from tests.conftest import unique

SCHEMA = TableSchema("public.log", (Column("a", "int4", False, -1, "integer"), Column("b", "text", False, -1, "text")))
PH = "__debezium_unavailable_value"


def event(offset: int, op: str, lsn: int | None, row: dict | None = None, before: dict | None = None,
          snapshot: str | None = None) -> tuple:
    value = {**(row or {}), "__op": op, "__lsn": lsn, "__snapshot": snapshot,
             "__cdclake_before": json.dumps(before) if before else None}
    return op, lsn, 0, offset, datetime(2026, 1, 1), json.dumps(value)


def frame(spark, events: list[tuple]):
    return spark.createDataFrame(events, "op string, lsn bigint, kafka_partition int, kafka_offset bigint, "
                                         "source_ts timestamp, event_value string")


def ordinals(spark, events, previous=None) -> list[tuple]:
    rows = multiset.positions(frame(spark, events), previous).orderBy("kafka_offset").collect()
    return [(r["__lsn"], r["__ordinal"]) for r in rows]


@pytest.mark.integration
def test_positions_number_each_run_of_one_lsn_and_continue_across_batches(spark):
    snap = [event(i, "r", 10, {"a": 1, "b": "x"}, snapshot="first_in_data_collection" if i == 0 else "true")
            for i in range(3)]
    copy = [event(4, "c", 30, {"a": 5}), event(5, "c", 30, {"a": 5})]
    resent = [event(6, "r", 10, {"a": 1, "b": "x"}, snapshot="first"), event(7, "r", 10, {"a": 1, "b": "x"})]
    batch = [*snap, event(3, "d", 20, {"a": 1, "b": "x"}), *copy, *resent, event(8, "c", 30, {"a": 5})]
    assert ordinals(spark, batch) == [(10, 1), (10, 2), (10, 3), (20, 1), (30, 1), (30, 2), (10, 1), (10, 2), (30, 1)]
    # The next batch begins inside the run the last one ended in: its ordinals go on.
    next_batch = [event(9, "c", 30, {"a": 5}), event(10, "c", 31, {"a": 6})]
    assert ordinals(spark, next_batch, Run(30, False, 1)) == [(30, 2), (31, 1)]
    # A snapshot that starts right after a run of its own LSN starts a run of its own, and so
    # does the first change after a snapshot, at the snapshot's LSN.
    assert ordinals(spark, [event(11, "r", 10, {"a": 1}, snapshot="first")], Run(10, True, 3)) == [(10, 1)]
    assert ordinals(spark, [event(13, "r", 10, {"a": 1}, snapshot="last"), event(14, "c", 10, {"a": 2})]) == [
        (10, 1), (10, 1)]
    assert ordinals(spark, [event(12, "r", 10, {"a": 1})], Run(11, False, 1)) == [(10, 1)]


@pytest.fixture
def ledger_ref(spark):
    namespace = unique("ns_multiset")
    spark.sql(f"CREATE NAMESPACE IF NOT EXISTS lake.{namespace}")
    ref = TableRef("public.log", "cdc.log", "lake", namespace)
    multiset.ensure_ledger(spark, ref)
    yield ref
    spark.sql(f"DROP TABLE IF EXISTS {ref.tombstones} PURGE")
    spark.sql(f"DROP NAMESPACE IF EXISTS lake.{namespace}")


@pytest.mark.integration
def test_replays_are_dropped_in_the_same_batch_and_in_later_ones(spark, ledger_ref):
    first = [event(0, "c", 10, {"a": 1}), event(1, "c", 20, {"a": 2}), event(2, "c", 20, {"a": 2})]
    resent = [event(3, "c", 10, {"a": 1}), event(4, "c", 20, {"a": 2}), event(5, "c", 20, {"a": 2})]
    positioned = multiset.positions(frame(spark, first + resent), None)
    fresh = multiset.not_applied(spark, ledger_ref, positioned, "w0")
    assert sorted(r["kafka_offset"] for r in fresh.collect()) == [0, 1, 2]

    multiset.ledger_rows(fresh, "w0").writeTo(ledger_ref.tombstones).append()
    later_events = [event(6, "c", 20, {"a": 2}), event(7, "c", 20, {"a": 2}), event(8, "c", 20, {"a": 2}),
                    event(9, "c", 40, {"a": 4})]
    later = multiset.positions(frame(spark, later_events), Run(10, False, 1))
    # Committed under w0, the batch that follows (from w1) sees them applied: only the third copy
    # at LSN 20 (a longer run than was applied) and LSN 40 are new.
    assert sorted(r["kafka_offset"] for r in multiset.not_applied(spark, ledger_ref, later, "w1").collect()) == [8, 9]
    # A rerun of the batch that wrote them (its commit crashed) does not count its own positions.
    assert sorted(r["kafka_offset"] for r in multiset.not_applied(spark, ledger_ref, positioned, "w0").collect()) \
        == [0, 1, 2]


@pytest.mark.integration
def test_row_deltas_count_copies_and_take_placeholders_from_the_old_row(spark):
    changes = frame(spark, [
        event(0, "r", 1, {"a": 1, "b": "x"}), event(1, "r", 1, {"a": 1, "b": "x"}),
        event(2, "c", 2, {"a": 2, "b": None}),
        event(3, "u", 3, {"a": 9, "b": PH}, before={"a": 1, "b": "x"}),    # one copy of (1, x) -> (9, x)
        event(4, "d", 4, {"a": 2, "b": None}),                             # cancels the insert of (2, NULL)
        event(5, "u", 5, {"a": 7, "b": "y"}, before={"a": 7, "b": "y"}),   # changes nothing
    ])
    deltas = {(r["a"], r["b"]): (r["__delta"], r["_cdc_lsn"]) for r in multiset.row_deltas(changes, SCHEMA).collect()}
    assert deltas == {(1, "x"): (1, 3), (9, "x"): (1, 3)}


def test_run_position_round_trips_through_the_snapshot_summary():
    assert Run.parse(Run(123, True, 4).summary()) == Run(123, True, 4) and Run.parse(None) is None


def test_merge_rewrites_each_changed_row_by_null_safe_equality_and_truncates_older_rows():
    ref = TableRef("public.log", "cdc.log", "lake", "cdc_db")
    sql = multiset.merge_sql(ref, SCHEMA, "counts", 77)
    assert "s.__action = 'delete' AND s.`a` <=> t.`a` AND s.`b` <=> t.`b`" in sql
    assert "explode(sequence(1, CAST(__copies AS INT)))" in sql
    assert "WHEN NOT MATCHED BY SOURCE AND t._cdc_lsn < 77" in sql
    assert "NOT MATCHED BY SOURCE" not in multiset.merge_sql(ref, SCHEMA, "counts", None)
    assert "t._cdc_lsn >= 77" in multiset.counts_sql(ref, SCHEMA, "deltas", 77)


def test_verify_compares_keyless_tables_as_multisets():
    report = TableReport("public.log")
    source = [(1, "a"), (1, "a"), (2, "b"), (3, None)]
    silver = [(1, "a"), (2, "b"), (2, "b"), (3, None)]
    _compare_multisets(report, SCHEMA, iter(source), iter(silver))
    assert (report.source_rows, report.silver_rows, report.missing, report.extra) == (4, 4, 1, 1)
    assert report.examples["missing"] == [{"row": {"a": "1", "b": "a"}, "copies": 1}] and not report.ok
    many = TableReport("public.log")
    _compare_multisets(many, SCHEMA, iter([(1, "a")] * 5), iter([(1, "a")]))
    assert (many.missing, many.extra, len(many.examples["missing"])) == (4, 0, 1)
    same = TableReport("public.log")
    _compare_multisets(same, SCHEMA, iter(source), iter(reversed(source)))
    assert same.ok and Counter(source) == Counter(reversed(source))
