"""Silver for a table without a key: the exact multiset of its rows (docs/lakehouse.md).

A table with no primary key and no ``source.key_columns`` is captured with REPLICA
IDENTITY FULL, so every delete carries the whole old row and every update its whole old
row in ``__cdclake_before``. Silver is a plain table of the rows, an identical row as many times
as PostgreSQL holds it, plus ``_cdc_lsn`` / ``_cdc_ts`` of the change that last wrote it.

- **Changes are counts.** An insert or snapshot read adds one copy of its row, a delete
  removes one copy of its row, an update removes one copy of the old row and adds one of the
  new (a TOAST placeholder in the new row takes the old row's value). Counts commute, so a
  batch is summed per distinct row and only the rows whose count changed are rewritten: all
  their copies are deleted and the new number of copies inserted, in one MERGE.
- **Every change is applied once.** A keyless topic has one partition, so it holds the
  changes in Debezium's order. Each change's position is (``__lsn``, snapshot read or not, its
  ordinal in the run of consecutive records with those): one WAL record gives one change, or
  several at one LSN (a multi-row COPY), always in the same order; a snapshot's reads share
  one LSN, which the first change after them may carry too, hence the kind. Debezium
  re-sends after a crash whole LSNs, from its last flushed offset, and a re-sent run gets the
  same ordinals; so ``tombstones_<table>`` (for a keyless table: the applied positions, one
  row per LSN with the highest ordinal applied) tells a replay from a new change, whether it
  lands in a later batch or in the same one. A snapshot's ``first`` marker starts a new run.
  The run a batch ends in continues into the next batch: its (LSN, ordinal) is kept in the
  snapshot summary (``cdclake.silver.keyless-run``) with the watermark.
- **Crash-safe.** The applied positions commit before the MERGE, tagged with the watermark
  the batch started from; a rerun from the same watermark ignores positions with its own
  tag, so a crash between the two commits re-applies exactly that batch.
- **TRUNCATE** at LSN T deletes every row older than T and drops every change older than T
  (silver.Truncate), as for keyed tables.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cdclake.lakehouse import faults
from cdclake.lakehouse.configuration import SILVER_TRUNCATE_KEY, SILVER_WATERMARK_KEY, TABLE_PROPERTIES, TableRef
from cdclake.lakehouse.exceptions import LakehouseError
from cdclake.lakehouse.pgschema import TableSchema, convert, is_placeholder
from cdclake.lakehouse.spark import latest_summary_value, with_commit_properties

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from cdclake.lakehouse.silver import Truncate

RUN_KEY = "cdclake.silver.keyless-run"
BEFORE = "__cdclake_before"  # the old row, JSON text (capture/connector.py)
LEDGER_DDL = "_cdc_lsn bigint, _cdc_read boolean, _cdc_events bigint, _cdc_batch string, _cdc_ts timestamp"
NO_LSN = -1  # an initial-snapshot read may carry none
SNAPSHOT_START = "get_json_object(event_value, '$.__snapshot') IN ('first', 'first_in_data_collection')"


@dataclass(frozen=True)
class Run:
    """Where the previous batch ended: its last record's LSN, whether it was a snapshot read,
    and its ordinal."""

    lsn: int
    read: bool
    ordinal: int

    def summary(self) -> str:
        return json.dumps({"lsn": self.lsn, "read": self.read, "ordinal": self.ordinal})

    @classmethod
    def parse(cls, value: str | None) -> Run | None:
        if not value:
            return None
        data = json.loads(value)
        return cls(int(data["lsn"]), bool(data["read"]), int(data["ordinal"]))


def q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _expr(sql: str):
    from pyspark.sql.functions import expr

    return expr(sql)


def ensure_ledger(spark: SparkSession, ref: TableRef) -> None:
    """``tombstones_<table>`` of a keyless table: the applied positions (see the module docstring)."""
    props = ", ".join(f"'{k}'='{v}'" for k, v in TABLE_PROPERTIES.items())
    spark.sql(f"CREATE TABLE IF NOT EXISTS {ref.tombstones} ({LEDGER_DDL}) USING iceberg TBLPROPERTIES ({props})")


def check_one_partition(events: DataFrame, ref: TableRef) -> None:
    """A keyless table's changes are ordered by its topic's one partition; refuse any other layout."""
    partitions = sorted(r[0] for r in events.select("kafka_partition").distinct().collect())
    if len(partitions) > 1:
        raise LakehouseError(
            f"table {ref.source} has no key, yet its topic {ref.topic} holds its changes in partitions "
            f"{partitions}: silver keeps a keyless table's rows exact only from one partition, in Debezium's "
            f"order; recreate {ref.topic} with one partition (`cdclake connector apply` creates a keyless table's "
            f"topic so), then rebuild its bronze and silver", table=ref.source)


def positions(events: DataFrame, previous: Run | None) -> DataFrame:
    """Each event with ``__ordinal``: its place in the run of consecutive records sharing its LSN
    (and kind: a snapshot's reads carry the LSN the first change after them may have too)."""
    lsn, read = f"coalesce(lsn, {NO_LSN})", "op = 'r'"
    first = ("1" if previous is None
             else f"CASE WHEN __lsn = {previous.lsn} AND __read = {str(previous.read).lower()} THEN 0 ELSE 1 END")
    marked = events.selectExpr("*", f"{lsn} AS __lsn", f"{read} AS __read", f"{SNAPSHOT_START} AS __snap_start",
                               f"lag({lsn}) OVER (ORDER BY kafka_offset) AS __prev",
                               f"lag({read}) OVER (ORDER BY kafka_offset) AS __prev_read")
    starts = marked.selectExpr("*", f"CASE WHEN coalesce(__snap_start, false) THEN 1 WHEN __prev IS NULL THEN {first} "
                                    "WHEN __lsn = __prev AND __read = __prev_read THEN 0 ELSE 1 END AS __start")
    runs = starts.selectExpr("*", "sum(__start) OVER (ORDER BY kafka_offset ROWS BETWEEN UNBOUNDED PRECEDING AND "
                                  "CURRENT ROW) AS __run")
    carried = previous.ordinal if previous is not None else 0
    return runs.selectExpr("*", "row_number() OVER (PARTITION BY __run ORDER BY kafka_offset) "
                                f"+ CASE WHEN __run = 0 THEN {carried} ELSE 0 END AS __ordinal")


def last_run(positioned: DataFrame) -> Run | None:
    row = positioned.orderBy(_expr("kafka_offset DESC")).select("__lsn", "__read", "__ordinal").first()
    return Run(int(row[0]), bool(row[1]), int(row[2])) if row is not None else None


def not_applied(spark: SparkSession, ref: TableRef, positioned: DataFrame, tag: str) -> DataFrame:
    """The events whose position is not applied yet, each once: replays dropped, whether of an
    earlier batch or of this one. Positions recorded by an uncommitted attempt of this very batch
    (tagged ``tag``) do not count."""
    applied = spark.table(ref.tombstones).where(f"_cdc_batch <> '{tag}'").groupBy("_cdc_lsn", "_cdc_read").agg(
        _expr("max(_cdc_events)").alias("__a_events")).selectExpr("_cdc_lsn AS __a_lsn", "_cdc_read AS __a_read",
                                                                  "__a_events")
    joined = positioned.join(applied, on=_expr("__lsn = __a_lsn AND __read = __a_read"), how="left")
    new = joined.where("__a_events IS NULL OR __ordinal > __a_events").drop("__a_lsn", "__a_read", "__a_events")
    first = new.selectExpr("*", "row_number() OVER (PARTITION BY __lsn, __read, __ordinal ORDER BY kafka_offset) "
                                "AS __copy")
    return first.where("__copy = 1").drop("__copy")


def ledger_rows(fresh: DataFrame, tag: str) -> DataFrame:
    """One row per LSN in ``fresh``: its highest ordinal applied, tagged with the batch."""
    return fresh.groupBy("__lsn", "__read").agg({"__ordinal": "max", "source_ts": "max"}).selectExpr(
        "__lsn AS _cdc_lsn", "__read AS _cdc_read", "`max(__ordinal)` AS _cdc_events", f"'{tag}' AS _cdc_batch",
        "coalesce(`max(source_ts)`, current_timestamp()) AS _cdc_ts")


def row_deltas(changes: DataFrame, schema: TableSchema) -> DataFrame:
    """Per distinct row: how many copies the changes add (negative: remove), and their newest LSN."""
    fields = ", ".join(f"{q(c.name)} STRING" for c in schema.columns)
    parsed = changes.selectExpr("op", "lsn", "source_ts", f"from_json(event_value, '{fields}') AS v",
                                f"from_json(get_json_object(event_value, '$.{BEFORE}'), '{fields}') AS b")
    new, old = [], []
    for column in schema.columns:
        after, before = f"v.{q(column.name)}", f"b.{q(column.name)}"
        new_raw = f"(CASE WHEN op = 'u' AND {is_placeholder(after)} THEN {before} ELSE {after} END)"
        old_raw = f"(CASE WHEN op = 'u' THEN {before} ELSE {after} END)"
        new.append(f"{convert(new_raw, column)} AS {q(column.name)}")
        old.append(f"{convert(old_raw, column)} AS {q(column.name)}")
    meta = ["coalesce(lsn, 0) AS _cdc_lsn", "source_ts AS _cdc_ts"]  # never a NULL LSN: TRUNCATE compares it
    added = parsed.where("op IN ('c', 'r', 'u')").selectExpr(*new, "1 AS __delta", *meta)
    removed = parsed.where("op IN ('u', 'd')").selectExpr(*old, "-1 AS __delta", *meta)
    names = [q(c.name) for c in schema.columns]
    return added.unionByName(removed).groupBy(*[_expr(n) for n in names]).agg(
        _expr("sum(__delta)").alias("__delta"), _expr("max(_cdc_lsn)").alias("_cdc_lsn"),
        _expr("max(_cdc_ts)").alias("_cdc_ts")).where("__delta <> 0")


def _same_row(schema: TableSchema, left: str, right: str) -> str:
    """Null-safe equality of every column: two rows are copies of one row."""
    return " AND ".join(f"{left}.{q(c.name)} <=> {right}.{q(c.name)}" for c in schema.columns)


def counts_sql(ref: TableRef, schema: TableSchema, deltas: str, truncated_before: int | None) -> str:
    """Each changed row with ``__copies``, its number of copies after the batch (rows older than
    a new TRUNCATE no longer count), and the LSN its copies get."""
    names = ", ".join(f"d.{q(c.name)}" for c in schema.columns)
    live = f" AND t._cdc_lsn >= {truncated_before}" if truncated_before is not None else ""
    return (f"SELECT {names}, d.__delta + count(t._cdc_lsn) AS __copies, greatest(d._cdc_lsn, "
            f"max(t._cdc_lsn)) AS _cdc_lsn, d._cdc_ts FROM {deltas} d LEFT JOIN {ref.silver} t "
            f"ON {_same_row(schema, 'd', 't')}{live} GROUP BY {names}, d.__delta, d._cdc_lsn, d._cdc_ts")


def merge_sql(ref: TableRef, schema: TableSchema, counts: str, truncated_before: int | None) -> str:
    """Rewrite each changed row: delete all its copies, insert ``__copies`` of it (one MERGE)."""
    names = [q(c.name) for c in schema.columns]
    cols = ", ".join(names)
    source = (f"SELECT {cols}, 'delete' AS __action, _cdc_lsn, _cdc_ts FROM {counts} "
              f"UNION ALL SELECT {cols}, 'insert' AS __action, _cdc_lsn, _cdc_ts FROM {counts} "
              "LATERAL VIEW explode(sequence(1, CAST(__copies AS INT))) copies AS __copy WHERE __copies > 0")
    inserted = names + ["_cdc_lsn", "_cdc_ts"]
    return (f"MERGE INTO {ref.silver} t USING ({source}) s ON s.__action = 'delete' AND {_same_row(schema, 's', 't')} "
            "WHEN MATCHED THEN DELETE "
            f"WHEN NOT MATCHED AND s.__action = 'insert' THEN INSERT ({', '.join(inserted)}) "
            f"VALUES ({', '.join('s.' + c for c in inserted)})"
            + (f" WHEN NOT MATCHED BY SOURCE AND t._cdc_lsn < {truncated_before} THEN DELETE"
               if truncated_before is not None else ""))


def check_counts(spark: SparkSession, ref: TableRef, counts: str) -> None:
    """A row removed more often than silver holds it means a change was lost: stop, never guess."""
    short = spark.sql(f"SELECT * FROM {counts} WHERE __copies < 0").limit(1).collect()
    if short:
        raise LakehouseError(
            f"table {ref.source} has no key and a change removes a row silver does not hold "
            f"({short[0].asDict()}): a change was lost upstream; run `cdclake rebuild silver {ref.source}` "
            "(or `cdclake recover` if the replication slot was lost)", table=ref.source)


def merge(spark: SparkSession, ref: TableRef, schema: TableSchema, events: DataFrame, start: str | None,
          end_snapshot: int, truncate: Truncate | None) -> tuple[int, bool]:
    """Apply the batch's events to a keyless silver table, each once, with ``end_snapshot`` as the
    new watermark.

    Returns:
        (number of changes applied, whether a commit was made).
    """
    ensure_ledger(spark, ref)
    check_one_partition(events, ref)
    tag = start or "none"
    positioned = positions(events, Run.parse(latest_summary_value(spark, ref.silver, RUN_KEY)[1])).persist()
    deltas_view = f"cdclake_deltas_{ref.base}_{uuid.uuid4().hex[:8]}"
    counts_view = f"cdclake_counts_{ref.base}_{uuid.uuid4().hex[:8]}"
    cached = [positioned]
    try:
        fresh = not_applied(spark, ref, positioned, tag).persist()
        cached.append(fresh)
        changes = fresh.where("op IN ('c', 'u', 'd', 'r')" + (f" AND lsn >= {truncate.lsn}" if truncate else ""))
        count = changes.count()
        deletes_before = truncate.delete_before if truncate else None
        if count == 0 and deletes_before is None:
            return 0, False
        row_deltas(changes, schema).createOrReplaceTempView(deltas_view)
        counts = spark.sql(counts_sql(ref, schema, deltas_view, deletes_before)).persist()
        cached.append(counts)
        counts.createOrReplaceTempView(counts_view)
        check_counts(spark, ref, counts_view)
        ledger_rows(fresh, tag).writeTo(ref.tombstones).append()
        faults.point("silver.after_tombstones", spark)
        properties = {SILVER_WATERMARK_KEY: str(end_snapshot), RUN_KEY: last_run(positioned).summary()}
        if truncate:
            properties[SILVER_TRUNCATE_KEY] = truncate.summary()
        with faults.commit("silver.before_commit", spark, ref.silver):
            with_commit_properties(spark, properties, lambda: spark.sql(merge_sql(ref, schema, counts_view,
                                                                                   deletes_before)))
        faults.point("silver.after_commit", spark)
        return count, True
    finally:
        for view in (deltas_view, counts_view):
            spark.catalog.dropTempView(view)
        for frame in cached:
            frame.unpersist()
