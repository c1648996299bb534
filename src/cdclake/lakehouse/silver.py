"""Silver: bronze change events -> ``<ns>.silver_<table>``, the source table's current state.

Each run reads only the bronze snapshots after silver's watermark, resolves the changes
per key and MERGEs them; the watermark (the last bronze snapshot merged) is written into
the MERGE's own snapshot summary, so data and position commit atomically (DESIGN §4):

- the latest change per key wins, by (LSN, Kafka offset), never by timestamp;
- a delete removes the row; an insert whose latest change is a delete is never written;
- an older change never overwrites a newer one (``s._cdc_lsn >= t._cdc_lsn``), and a key's
  state only moves forward: every delete leaves a tombstone (key, LSN) in
  ``tombstones_<table>``, and a change older than its key's tombstone is dropped. Debezium
  re-sends the changes since its last offset flush after a crash; without tombstones a
  re-sent insert of a key deleted in an earlier batch would bring the row back. The
  tombstones commit before the MERGE (idempotently, the highest LSN wins), so a crash
  between the two leaves a state the rerun completes; ``cdclake maintain`` drops tombstones
  older than ``lakehouse.tombstone_retention_hours``, which must cover the replay window;
- a TRUNCATE at LSN T removes every row whose change is older than T (a MERGE clause
  ``WHEN NOT MATCHED BY SOURCE AND t._cdc_lsn < T THEN DELETE``, in the same commit), and
  every change older than T, re-sent or late from another partition, is dropped; T, per
  Kafka partition, is kept in the snapshot summary (``cdclake.silver.truncated-before-lsn``)
  with the watermark. A re-snapshot (capture/resnapshot.py) is the same marker written to
  every partition, followed by snapshot reads that :func:`snapshot_positions` places after it;
- a TOAST placeholder keeps the value: the last real value of that key in the batch,
  else the stored one; for a primary-key update (delete of the old key and create of the
  new key at the same LSN) the value comes from the old key;
- a table without a key (REPLICA IDENTITY FULL) keeps the exact multiset of its rows, each
  change applied once: lakehouse/multiset.py;
- columns and types come from PostgreSQL's catalog, tracked by ``attnum`` (table property
  ``cdclake.silver.columns``: attnum -> [name, former names]): an added column is added (rows
  older than an ``ADD COLUMN ... DEFAULT`` get the default, as PostgreSQL shows them), a
  widened type widened, a renamed column renamed in place (events still spelled with the
  old name are read under it), a dropped column dropped (older snapshots keep it); anything
  else raises :class:`SchemaChangeError` for this table only.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cdclake.lakehouse import bronze, faults, multiset
from cdclake.lakehouse.configuration import (
    SILVER_TRUNCATE_KEY,
    SILVER_WATERMARK_KEY,
    TABLE_PROPERTIES,
    LakehousePlan,
    TableRef,
)
from cdclake.lakehouse.exceptions import (
    ConcurrentCommitError,
    RefusedValueError,
    SchemaChangeError,
    WatermarkError,
)
from cdclake.lakehouse.pgschema import (
    Column,
    TableSchema,
    convert,
    is_placeholder,
    literal,
    missing_literal,
    read_schema,
    refused,
    refused_value,
    schema_changes,
)
from cdclake.lakehouse.spark import (
    commit_conflict,
    data_file_rows,
    latest_summary_value,
    load_table,
    table_exists,
    with_commit_properties,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

CDC_COLUMNS = [("_cdc_lsn", "bigint"), ("_cdc_ts", "timestamp")]
COLUMNS_PROPERTY = "cdclake.silver.columns"  # {attnum: [name, former names...]}
ORDER = "lsn, kafka_partition, kafka_offset"
COMMIT_ATTEMPTS = 3  # a run that loses the commit race this often stops with ConcurrentCommitError
KEY_FILTER_LIMIT = 20_000  # batches of up to this many keys read only their own rows of silver
# ... when silver holds at least this many rows per key of the batch. Measured (bench.lakehouse,
# 2 cores): without the filter a MERGE shuffles all of silver, ~0.8 s per million rows; the
# filter costs ~0.1 ms per key (collecting the keys, planning the IN list): 5k keys into 120k
# rows merged 0.5-0.8 s faster without it, 10k into 10M rows 8 s faster with it.
KEY_FILTER_MIN_ROWS_PER_KEY = 100
LITERAL_KEY_TYPES = frozenset({"tinyint", "smallint", "int", "bigint", "string"})  # exact as SQL literals


@dataclass
class SilverResult:
    table: str
    bronze_snapshot: int | None = None
    changes: int = 0
    merged: bool = False
    seconds: float = 0.0
    schema_changes: list[str] = field(default_factory=list)
    conflicts: int = 0  # commits lost to another writer before this run's went through (or was not needed)


def q(name: str) -> str:
    """A quoted Spark SQL identifier."""
    return "`" + name.replace("`", "``") + "`"


def run(spark: SparkSession, plan: LakehousePlan, ref: TableRef) -> SilverResult:
    """Merge the bronze snapshots not yet in silver; a no-op when there are none.

    Another silver run that commits first (Iceberg's optimistic concurrency) fails this
    run's commit; it then starts over from the watermark the other run left, which
    re-reads only the bronze slice still missing (none, when both pinned the same bronze
    snapshot).

    Raises:
        SchemaChangeError: the source changed a column incompatibly (this table only).
        WatermarkError: silver's bronze snapshot was expired; rebuild silver.
        RefusedValueError: a change holds a value silver cannot hold exactly (this table only).
        ConcurrentCommitError: other writers won the commit ``COMMIT_ATTEMPTS`` times in a row.
    """
    for attempt in range(1, COMMIT_ATTEMPTS + 1):
        try:
            result = _run_once(spark, plan, ref)
            result.conflicts = attempt - 1
            return result
        except Exception as exc:  # noqa: BLE001 - py4j/Spark errors of any class; only a conflict is retried
            refused = refused_value(exc, ref.source)
            if refused:
                raise RefusedValueError(f"{ref.silver_short}: {refused}; silver stays where it was, bronze keeps "
                                        "every change", table=ref.source) from None
            conflict = commit_conflict(exc)
            if conflict is None:
                raise
            if attempt == COMMIT_ATTEMPTS:
                raise ConcurrentCommitError(
                    f"{ref.silver_short}: another writer committed first {attempt} times ({conflict}); run one "
                    f"silver job per table at a time (e.g. Airflow max_active_runs=1), then rerun", table=ref.source
                ) from exc
    raise AssertionError("unreachable")


def _run_once(spark: SparkSession, plan: LakehousePlan, ref: TableRef) -> SilverResult:
    started = time.monotonic()
    result = SilverResult(ref.source)
    bronze.ensure_table(spark, plan, ref)
    # Pin bronze first, then read the catalog: every event in the batch is then older than
    # the schema we read, so no event carries a column we do not know yet.
    pinned = load_table(spark, ref.bronze).currentSnapshot()
    with plan.connect_source() as conn:
        schema = read_schema(conn, ref.source, ref.key_columns)
    result.schema_changes, aliases = ensure_table(spark, ref, schema)
    if not schema.keyless:
        ensure_tombstones(spark, ref, schema)
    if pinned is None:
        return result
    result.bronze_snapshot = end = pinned.snapshotId()
    _, watermark = latest_summary_value(spark, ref.silver, SILVER_WATERMARK_KEY)
    if watermark is not None and int(watermark) == end:
        result.seconds = time.monotonic() - started
        return result
    events = read_bronze(spark, ref, int(watermark) if watermark else None, end)
    truncate = truncate_position(spark, ref, events)
    if schema.keyless:
        result.changes, result.merged = multiset.merge(spark, ref, schema, events, watermark, end, truncate)
    else:
        result.changes, result.merged = merge(spark, ref, schema, events, end, truncate, aliases)
    result.seconds = time.monotonic() - started
    return result


def rebuild(spark: SparkSession, plan: LakehousePlan, ref: TableRef) -> SilverResult:
    """Drop silver and replay it from all of bronze (``cdclake rebuild silver TABLE``)."""
    spark.sql(f"DROP TABLE IF EXISTS {ref.silver} PURGE")
    spark.sql(f"DROP TABLE IF EXISTS {ref.tombstones} PURGE")
    return run(spark, plan, ref)


def ensure_table(spark: SparkSession, ref: TableRef, schema: TableSchema) -> tuple[list[str], dict[str, list[str]]]:
    """Create silver, or bring its columns up to the source's.

    Returns:
        (what changed, each column's former names that events may still carry).
    """
    if not table_exists(spark, ref.silver):
        create_table(spark, ref.silver, schema.columns)
        _save_columns(spark, ref, {c.attnum: [c.name] for c in schema.columns})
        return [], {}
    current = {f.name: f.dataType.simpleString() for f in spark.table(ref.silver).schema.fields}
    stored = _stored_columns(spark, ref)
    tracked = dict(stored) if stored is not None else {c.attnum: [c.name] for c in schema.columns if c.name in current}
    changes = _follow_renames(spark, ref, schema, tracked, current) + _follow_drops(spark, ref, schema, tracked, current)
    added, widened = schema_changes(ref.source, schema, current)
    for column in added:
        changes.append(_add_column(spark, ref, column))
        tracked[column.attnum] = [column.name]
    # Added by a run that stopped before it recorded the column: its default may be missing.
    for column in [c for c in schema.columns if stored is not None and c.attnum not in tracked]:
        _fill_default(spark, ref, column)
        tracked[column.attnum] = [column.name]
    for column in widened:
        for table in (ref.silver, ref.tombstones) if column.is_key else (ref.silver,):
            if table_exists(spark, table):
                spark.sql(f"ALTER TABLE {table} ALTER COLUMN {q(column.name)} TYPE {column.spark_type}")
        changes.append(f"widened {column.name} to {column.spark_type}")
    if tracked != stored:
        _save_columns(spark, ref, tracked)
    return changes, _aliases(schema, tracked)


def _stored_columns(spark: SparkSession, ref: TableRef) -> dict[int, list[str]] | None:
    """The attnum -> names map silver was last brought up to (None: a table from before it was kept)."""
    rows = spark.sql(f"SHOW TBLPROPERTIES {ref.silver} ('{COLUMNS_PROPERTY}')").collect()
    value = rows[0][1] if rows else None
    if not value or value.startswith("Table "):  # Spark's answer for a missing key
        return None
    return {int(attnum): names for attnum, names in json.loads(value).items()}


def _save_columns(spark: SparkSession, ref: TableRef, tracked: dict[int, list[str]]) -> None:
    value = json.dumps({str(k): v for k, v in sorted(tracked.items())})
    spark.sql(f"ALTER TABLE {ref.silver} SET TBLPROPERTIES ('{COLUMNS_PROPERTY}' = {literal(value)})")


def _follow_renames(spark: SparkSession, ref: TableRef, schema: TableSchema, tracked: dict[int, list[str]],
                    current: dict[str, str]) -> list[str]:
    """RENAME COLUMN: same attnum, new name. Silver renames in place, so the values stay."""
    changes = []
    for column in schema.columns:
        names = tracked.get(column.attnum)
        if not names or names[0] == column.name or names[0] not in current or column.name in current:
            continue
        for table in (ref.silver, ref.tombstones) if column.is_key else (ref.silver,):
            if table_exists(spark, table):
                spark.sql(f"ALTER TABLE {table} RENAME COLUMN {q(names[0])} TO {q(column.name)}")
        current[column.name] = current.pop(names[0])
        tracked[column.attnum] = [column.name, *names]
        changes.append(f"renamed {names[0]} to {column.name}")
    return changes


def _follow_drops(spark: SparkSession, ref: TableRef, schema: TableSchema, tracked: dict[int, list[str]],
                  current: dict[str, str]) -> list[str]:
    """DROP COLUMN: silver drops it too (Iceberg's older snapshots still hold it: time travel)."""
    live = {c.attnum for c in schema.columns}
    changes = []
    for attnum in [a for a in tracked if a not in live]:
        name = tracked.pop(attnum)[0]
        if name in current:
            spark.sql(f"ALTER TABLE {ref.silver} DROP COLUMN {q(name)}")
            current.pop(name)
            changes.append(f"dropped {name}")
    return changes


def _add_column(spark: SparkSession, ref: TableRef, column: Column) -> str:
    """ADD COLUMN; the rows silver already holds get its fast default, as PostgreSQL shows them."""
    literal = missing_literal(column)
    if column.missing is not None and literal is None:
        raise SchemaChangeError(
            f"column {ref.source}.{column.name} was added with a DEFAULT of type {column.declared}, which silver "
            f"cannot fill in for the existing rows; run `cdclake connector snapshot {ref.source}`, then "
            f"`cdclake rebuild silver {ref.source}`", table=ref.source, column=column.name)
    spark.sql(f"ALTER TABLE {ref.silver} ADD COLUMN {q(column.name)} {column.spark_type}")
    _fill_default(spark, ref, column)
    return f"added {column.name} {column.spark_type}" + (" (existing rows: its default)" if literal else "")


def _fill_default(spark: SparkSession, ref: TableRef, column: Column) -> None:
    """Every row silver holds is older than the column: it reads the fast default."""
    literal = missing_literal(column)
    if literal is not None:
        spark.sql(f"UPDATE {ref.silver} SET {q(column.name)} = {literal}")


def _aliases(schema: TableSchema, tracked: dict[int, list[str]]) -> dict[str, list[str]]:
    """Former names per column, except those another column now has."""
    taken = {c.name for c in schema.columns}
    return {c.name: [n for n in tracked.get(c.attnum, [])[1:] if n not in taken] for c in schema.columns
            if len(tracked.get(c.attnum, [])) > 1}


def ensure_tombstones(spark: SparkSession, ref: TableRef, schema: TableSchema) -> None:
    """Create ``tombstones_<table>``: the key columns, the delete's LSN and source time."""
    create_table(spark, ref.tombstones, schema.keys)


def create_table(spark: SparkSession, name: str, columns) -> None:
    """An Iceberg table of the given source columns plus ``_cdc_lsn`` and ``_cdc_ts``."""
    ddl = ", ".join(f"{q(n)} {t}" for n, t in [(c.name, c.spark_type) for c in columns] + CDC_COLUMNS)
    props = ", ".join(f"'{k}'='{v}'" for k, v in TABLE_PROPERTIES.items())
    spark.sql(f"CREATE TABLE IF NOT EXISTS {name} ({ddl}) USING iceberg TBLPROPERTIES ({props})")


def read_bronze(spark: SparkSession, ref: TableRef, after: int | None, end: int) -> DataFrame:
    """Bronze rows appended after snapshot ``after`` up to ``end`` (all up to ``end`` if None)."""
    reader = spark.read.format("iceberg")
    if after is None:
        reader = reader.option("snapshot-id", str(end))
    else:
        if load_table(spark, ref.bronze).snapshot(after) is None:
            raise WatermarkError(
                f"bronze snapshot {after}, where {ref.silver_short} stopped, was expired; run "
                f"`cdclake rebuild silver {ref.source}` to replay silver from bronze", table=ref.source)
        reader = reader.option("start-snapshot-id", str(after)).option("end-snapshot-id", str(end))
    return reader.load(ref.bronze).where("parse_error IS NULL AND op IN ('c', 'u', 'd', 'r', 't')")


@dataclass(frozen=True)
class Truncate:
    """The newest TRUNCATE (or re-snapshot marker) LSN, per Kafka partition of the topic.

    ``before`` is what silver had applied before this batch, ``after`` includes the batch;
    ``new`` is true when the batch brought a newer one (silver's older rows must then go).
    """

    before: dict[int, int]
    after: dict[int, int]

    @property
    def lsn(self) -> int:
        return max(self.after.values())

    @property
    def new(self) -> bool:
        return not self.before or self.lsn > max(self.before.values())

    @property
    def delete_before(self) -> int | None:
        """The LSN silver's older rows must be deleted below, when this batch brought it."""
        return self.lsn if self.new else None

    def summary(self) -> str:
        return json.dumps({str(p): lsn for p, lsn in sorted(self.after.items())})


def truncate_position(spark: SparkSession, ref: TableRef, events: DataFrame) -> Truncate | None:
    """The truncates silver applied, updated with this batch's (None: the table never had one)."""
    stored = latest_summary_value(spark, ref.silver, SILVER_TRUNCATE_KEY)[1]
    before = {int(p): int(lsn) for p, lsn in json.loads(stored).items()} if stored else {}
    after = dict(before)
    for partition, lsn in events.where("op = 't'").groupBy("kafka_partition").agg({"lsn": "max"}).collect():
        after[partition] = max(after.get(partition, lsn), lsn)
    return Truncate(before, after) if after else None


def snapshot_positions(events: DataFrame, truncate: Truncate | None) -> DataFrame:
    """Place each incremental-snapshot read no earlier than the truncate marker before it in its partition.

    Debezium's incremental-snapshot rows (``__snapshot = incremental``) carry a stale
    ``__lsn`` (the connector's offset when the snapshot began), yet each is read after the
    signal, so after any marker written to its partition before that signal
    (capture/resnapshot.py): that marker's LSN is a lower bound of its true position. A key
    always lands on one partition. Initial-snapshot reads keep their LSN (the slot's start);
    an incremental read with no LSN at all (none streamed since the task started) and no
    marker before it is the oldest change (0): it fills a missing key, never overwrites one.
    """
    incremental = "op = 'r' AND get_json_object(event_value, '$.__snapshot') = 'incremental'"
    if truncate is None:
        return events.withColumn("lsn", _expr(f"CASE WHEN {incremental} THEN coalesce(lsn, 0) ELSE lsn END"))
    stored = " ".join(f"WHEN {p} THEN {lsn}" for p, lsn in sorted(truncate.before.items()))
    previous = f"CASE kafka_partition {stored} ELSE 0 END" if stored else "0"
    marker = ("max(CASE WHEN op = 't' THEN lsn END) OVER (PARTITION BY kafka_partition ORDER BY kafka_offset "
              "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)")
    return events.withColumn("lsn", _expr(f"CASE WHEN {incremental} THEN greatest(coalesce(lsn, 0), {previous}, "
                                          f"coalesce({marker}, 0)) ELSE lsn END"))


# --- resolving the changes per key -------------------------------------------------------

def typed_changes(events: DataFrame, schema: TableSchema, aliases: dict[str, list[str]] | None = None) -> DataFrame:
    """One row per change: typed columns, and for TOAST-able columns ``__real_i`` (a struct
    holding the value and its refusal, or NULL when the change carries the placeholder or is a
    delete); a value silver cannot hold is refused (``__refused_i``, in ``__real_i.r``) only if
    it wins (:func:`refuse_unheld`): a newer change of its key supersedes it.

    A column renamed since is read under its former names too (an event carries one of
    them); an event without the column at all is older than an ``ADD COLUMN ... DEFAULT``
    and gets the default.
    """
    aliases = aliases or {}
    names = list(dict.fromkeys(n for c in schema.columns for n in [c.name, *aliases.get(c.name, [])]))
    fields = ", ".join(f"{q(n)} STRING" for n in names)
    keys = ["json_object_keys(event_value) AS __keys"] if any(c.missing is not None for c in schema.columns) else []
    parsed = events.selectExpr("op", "lsn", "kafka_partition", "kafka_offset", "source_ts",
                               f"from_json(event_value, {literal(fields)}) AS v", *keys)
    exprs = ["op", "lsn", "kafka_partition", "kafka_offset", "source_ts"]
    for i, column in enumerate(schema.columns):
        spelled = [column.name, *aliases.get(column.name, [])]
        raw = f"coalesce({', '.join(f'v.{q(n)}' for n in spelled)})" if len(spelled) > 1 else f"v.{q(column.name)}"
        value = _with_default(convert(raw, column, refuse=False), column, spelled)
        refusal = refused(raw, column) or "CAST(NULL AS STRING)"
        exprs.append(f"{value} AS {q(column.name)}")
        if _toastable(column):
            exprs.append(f"CASE WHEN op = 'd' OR {is_placeholder(raw)} THEN NULL "
                         f"ELSE named_struct('v', {value}, 'r', {refusal}) END AS __real_{i}")
            exprs.append(f"{is_placeholder(raw)} AS __ph_{i}")
        elif refused(raw, column):
            exprs.append(f"{refusal} AS __refused_{i}")
    return parsed.selectExpr(*exprs)


def _with_default(value: str, column: Column, spelled: list[str]) -> str:
    literal = missing_literal(column)
    if literal is None:
        return value
    present = " OR ".join("array_contains(__keys, '" + n.replace("'", "\\'") + "')" for n in spelled)
    return f"CASE WHEN {present} THEN {value} ELSE {literal} END"


def _toastable(column: Column) -> bool:
    return column.may_be_placeholder and not column.is_key


def _key_partition(schema: TableSchema) -> str:
    return ", ".join(q(c.name) for c in schema.keys)


def resolve(changes: DataFrame, schema: TableSchema) -> DataFrame:
    """Add ``__cur_i`` (the value in force after each change) and ``__rn`` (1 = latest)."""
    part = _key_partition(schema)
    exprs = ["*", f"row_number() OVER (PARTITION BY {part} ORDER BY lsn DESC, kafka_partition DESC, "
                  "kafka_offset DESC) AS __rn"]
    for i, column in enumerate(schema.columns):
        if _toastable(column):
            exprs.append(f"last(__real_{i}, true) OVER (PARTITION BY {part} ORDER BY {ORDER} "
                         f"ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS __cur_{i}")
    return changes.selectExpr(*exprs)


def fill_moved(spark: SparkSession, ref: TableRef, changes: DataFrame, resolved: DataFrame,
               schema: TableSchema) -> DataFrame:
    """Give the create of a moved key (primary-key update) its old key's unchanged values.

    The delete of the old key and the create of the new one share an LSN; a TOAST
    placeholder in the create means "the old row's value": the old key's last value in
    this batch, else the one stored in silver.
    """
    toast = [i for i, c in enumerate(schema.columns) if _toastable(c)]
    keys = [q(c.name) for c in schema.keys]
    deletes = resolved.where("op = 'd'").selectExpr(
        "lsn AS __d_lsn", *[f"{k} AS __d_{n}" for n, k in enumerate(keys)], *[f"__cur_{i} AS __d_cur_{i}" for i in toast])
    stored = spark.table(ref.silver).selectExpr(
        *[f"{k} AS __s_{n}" for n, k in enumerate(keys)],
        *[f"named_struct('v', {q(schema.columns[i].name)}, 'r', CAST(NULL AS STRING)) AS __s_{i}_v" for i in toast])
    on_key = " AND ".join(f"__d_{n} = __s_{n}" for n in range(len(keys)))
    olds = deletes.join(stored, on=_expr(on_key), how="left")
    joined = changes.join(olds, on=_expr("op = 'c' AND lsn = __d_lsn"), how="left")
    fixes = [f"CASE WHEN __d_lsn IS NOT NULL AND __ph_{i} THEN coalesce(__d_cur_{i}, __s_{i}_v) "
             f"ELSE __real_{i} END AS __real_{i}" for i in toast]
    keep = [c for c in changes.columns if not c.startswith("__real_")]
    return joined.selectExpr(*[q(c) for c in keep], *fixes)


def _unfilled_moves(changes: DataFrame, toast: list[int]) -> int:
    """Creates still holding a TOAST placeholder without a value (only moved keys have them)."""
    if not toast:
        return 0
    return changes.where("op = 'c' AND (" + " OR ".join(f"(__ph_{i} AND __real_{i} IS NULL)" for i in toast)
                         + ")").count()


def _expr(sql: str):
    from pyspark.sql.functions import expr

    return expr(sql)


def merge_source(spark: SparkSession, ref: TableRef, schema: TableSchema, events: DataFrame,
                 cached: list[DataFrame], aliases: dict[str, list[str]] | None = None) -> DataFrame:
    """The latest change per key, TOAST placeholders resolved: the MERGE's source.

    Frames it persists are appended to ``cached`` for the caller to release.
    """
    changes = typed_changes(events, schema, aliases).persist()
    cached.append(changes)
    resolved = resolve(changes, schema)
    toast = [i for i, c in enumerate(schema.columns) if _toastable(c)]
    # A key moved twice in one batch (A -> B -> C) needs one pass per hop. Each pass joins the
    # previous one with itself, so its plan would double: a local checkpoint cuts the lineage.
    pending = _unfilled_moves(changes, toast)
    while pending:
        filled = fill_moved(spark, ref, changes, resolved, schema).localCheckpoint()
        left = _unfilled_moves(filled, toast)
        changes, resolved = filled, resolve(filled, schema)
        if left >= pending:
            break
        pending = left
    exprs, refusals = [], []
    for i, column in enumerate(schema.columns):
        if _toastable(column):
            exprs += [f"__cur_{i}.v AS {q(column.name)}", f"__cur_{i} IS NULL AS __keep_{i}"]
            refusals.append(f"__cur_{i}.r")
        else:
            exprs.append(q(column.name))
            refusals += [f"__refused_{i}"] if f"__refused_{i}" in changes.columns else []
    refusal = f"coalesce({', '.join(refusals)})" if refusals else "CAST(NULL AS STRING)"
    return resolved.where("__rn = 1").selectExpr(*exprs, "op AS __op", "lsn AS _cdc_lsn", "source_ts AS _cdc_ts",
                                                 f"{refusal} AS __refused")


def refuse_unheld(source: DataFrame) -> DataFrame:
    """Fail the job on a key whose newest change holds a value silver cannot hold exactly."""
    return source.where("CASE WHEN __op = 'd' OR __refused IS NULL THEN true ELSE raise_error(__refused) END")


def after_tombstones(spark: SparkSession, ref: TableRef, schema: TableSchema, source: DataFrame) -> DataFrame:
    """Drop the changes older than their key's tombstone: re-sent changes of a deleted key.

    A change at the tombstone's own LSN is the delete itself, re-sent; it stays (a no-op).
    """
    keys = [q(c.name) for c in schema.keys]
    tombs = spark.table(ref.tombstones).selectExpr(*[f"{k} AS __t_{n}" for n, k in enumerate(keys)],
                                                   "_cdc_lsn AS __t_lsn")
    on = " AND ".join([f"{k} = __t_{n}" for n, k in enumerate(keys)] + ["__t_lsn > _cdc_lsn"])
    return source.join(tombs, on=_expr(on), how="left_anti")


def tombstones_sql(ref: TableRef, schema: TableSchema, view: str) -> str:
    """Record the batch's deletes in ``tombstones_<table>``; the highest LSN per key wins."""
    on = " AND ".join(f"t.{q(c.name)} = s.{q(c.name)}" for c in schema.keys)
    cols = [q(c.name) for c in schema.keys] + ["_cdc_lsn", "_cdc_ts"]
    return (f"MERGE INTO {ref.tombstones} t USING (SELECT * FROM {view} WHERE __op = 'd') s ON {on} "
            "WHEN MATCHED AND s._cdc_lsn > t._cdc_lsn THEN UPDATE SET t._cdc_lsn = s._cdc_lsn, t._cdc_ts = s._cdc_ts "
            f"WHEN NOT MATCHED THEN INSERT ({', '.join(cols)}) VALUES ({', '.join('s.' + c for c in cols)})")


def target_key_filter(source: DataFrame, schema: TableSchema, keys: int, target_rows: int) -> str | None:
    """``t``'s key IN (the batch's keys), or None when the batch is too large, silver too small
    for the filter to pay (``KEY_FILTER_MIN_ROWS_PER_KEY``) or the keys' literals inexact.

    A MERGE with an insert clause is an outer join that keeps every source row, so Spark
    cannot broadcast the batch and shuffles and sorts all of silver instead (profiled: 8 of
    11 s for 10k changes into 10M rows). A condition on the target alone in the ON clause is
    implied by the key equality and Spark pushes it below the join: silver is filtered
    while it is scanned. Not for a TRUNCATE's MERGE, whose NOT MATCHED BY SOURCE clause
    must see every row.
    """
    if (keys > KEY_FILTER_LIMIT or target_rows < keys * KEY_FILTER_MIN_ROWS_PER_KEY
            or any(c.spark_type not in LITERAL_KEY_TYPES for c in schema.keys)):
        return None
    names = [q(c.name) for c in schema.keys]
    rows = [row for row in source.selectExpr(*names).collect() if None not in row]
    if not rows:
        return None
    values = [", ".join(literal(v) if isinstance(v, str) else str(int(v)) for v in row) for row in rows]
    if len(names) == 1:
        return f"t.{names[0]} IN ({', '.join(values)})"
    return f"({', '.join('t.' + n for n in names)}) IN ({', '.join(f'({v})' for v in values)})"


def merge_sql(ref: TableRef, schema: TableSchema, view: str, truncated_before: int | None = None,
              key_filter: str | None = None) -> str:
    """MERGE of the resolved changes into silver (see the module docstring for the rules)."""
    on = " AND ".join([f"t.{q(c.name)} = s.{q(c.name)}" for c in schema.keys] + ([key_filter] if key_filter else []))
    sets, names = [], []
    for i, column in enumerate(schema.columns):
        name = q(column.name)
        names.append(name)
        if column.is_key:
            continue
        value = f"CASE WHEN s.__keep_{i} THEN t.{name} ELSE s.{name} END" if _toastable(column) else f"s.{name}"
        sets.append(f"t.{name} = {value}")
    sets += ["t._cdc_lsn = s._cdc_lsn", "t._cdc_ts = s._cdc_ts"]
    cols = names + ["_cdc_lsn", "_cdc_ts"]
    return (f"MERGE INTO {ref.silver} t USING {view} s ON {on} "
            "WHEN MATCHED AND s.__op = 'd' AND s._cdc_lsn >= t._cdc_lsn THEN DELETE "
            f"WHEN MATCHED AND s.__op <> 'd' AND s._cdc_lsn >= t._cdc_lsn THEN UPDATE SET {', '.join(sets)} "
            f"WHEN NOT MATCHED AND s.__op <> 'd' THEN INSERT ({', '.join(cols)}) "
            f"VALUES ({', '.join('s.' + c for c in cols)})"
            + (f" WHEN NOT MATCHED BY SOURCE AND t._cdc_lsn < {truncated_before} THEN DELETE"
               if truncated_before is not None else ""))


def merge(spark: SparkSession, ref: TableRef, schema: TableSchema, events: DataFrame,
          end_snapshot: int, truncate: Truncate | None = None,
          aliases: dict[str, list[str]] | None = None) -> tuple[int, bool]:
    """MERGE the events into silver with ``end_snapshot`` as the new watermark.

    Returns:
        (number of keys changed, whether a commit was made). No changes -> no commit.
    """
    cached: list[DataFrame] = []
    positioned = snapshot_positions(events, truncate)
    changes = positioned.where(f"op <> 't' AND lsn >= {truncate.lsn}" if truncate else "op <> 't'")
    source = refuse_unheld(after_tombstones(spark, ref, schema,
                                            merge_source(spark, ref, schema, changes, cached, aliases))).persist()
    cached.append(source)
    view = f"cdclake_changes_{ref.base}_{uuid.uuid4().hex[:8]}"
    properties = {SILVER_WATERMARK_KEY: str(end_snapshot)}
    if truncate:
        properties[SILVER_TRUNCATE_KEY] = truncate.summary()
    try:
        count, deletes = source.selectExpr("count(*)", "count_if(__op = 'd')").first()
        deletes_before = truncate.delete_before if truncate else None
        if count == 0 and deletes_before is None:
            return 0, False
        source.createOrReplaceTempView(view)
        if deletes:  # else the tombstones MERGE has no source row: a second of Spark jobs for nothing
            spark.sql(tombstones_sql(ref, schema, view))
        faults.point("silver.after_tombstones", spark)
        key_filter = (target_key_filter(source, schema, count, data_file_rows(load_table(spark, ref.silver)))
                      if deletes_before is None else None)

        def _merge():
            with faults.commit("silver.before_commit", spark, ref.silver):
                spark.sql(merge_sql(ref, schema, view, deletes_before, key_filter))

        with_commit_properties(spark, properties, _merge)
        faults.point("silver.after_commit", spark)
        return count, True
    finally:
        spark.catalog.dropTempView(view)
        for frame in cached:
            frame.unpersist()
