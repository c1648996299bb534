"""Parallel initial load: a table's existing rows read in chunks at one consistent snapshot,
straight into bronze, while Debezium streams every change after it.

Debezium's own snapshot reads a table on one thread and sends every row through Kafka
(and bronze's consumer) as JSON. Here the rows never touch Kafka:

1. Under a SHARE lock on the tables (``resnapshot.share_locked``: every writer before it has
   committed, none writes until it ends) cdclake reads the WAL position T and opens a
   REPEATABLE READ transaction that exports its snapshot: exactly the rows at T. The lock is
   then released; the exporting transaction stays open until the load has committed.
2. Spark reads the table over JDBC, one task per range of heap blocks (``ctid``, a TID range
   scan), each task importing the exported snapshot (``SET TRANSACTION SNAPSHOT``). PostgreSQL
   renders each row as the flat event Debezium would send (:func:`encoding`), so silver
   parses it with the same code; a column whose encoding is not reproduced here makes the
   table go through Debezium's incremental snapshot instead (:func:`unsupported`).
3. The rows are appended to ``bronze_<table>`` in one commit as reads (op ``r``) at LSN T on
   no Kafka partition (-1, so a change at T itself still wins). A crash before that commit
   leaves nothing behind; ``rebuild silver`` replays them as it replays any event.
4. Then a truncate marker at T goes into each partition of the table's topic (as for a
   re-snapshot): silver drops whatever it held from before T and every streamed change
   older than T (the snapshot has it), and keeps every change after T, which Debezium
   streams because the table was captured before T was read.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from cdclake.config import Pipeline
from cdclake.config.tables import TableId, quote
from cdclake.lakehouse import bronze
from cdclake.lakehouse.configuration import LakehousePlan, TableRef
from cdclake.lakehouse.pgschema import (
    ENUM,
    TIMESTAMP_INFINITY,
    TIMESTAMP_MINUS_INFINITY,
    Column,
    TableSchema,
    millis_precision,
    read_schema,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

LOAD_MARK = "cdclake_load"          # the __snapshot field of a loaded row
LOAD_LSN_KEY = "cdclake.initial-load.lsn"
LOADED_PARTITION = -1
CHUNKS_PER_CORE = 4
FETCH_SIZE = 10_000
# Types whose Debezium encoding is to_json() of the value itself.
AS_IS = {"int2", "int4", "int8", "oid", "float4", "float8", "bool", "text", "varchar", "bpchar", "uuid", "citext",
         "inet", "cidr", "macaddr", "macaddr8", "xml", "tsvector"}
NUMERIC_SPECIALS = {"NaN": "NAN", "Infinity": "POSITIVE_INFINITY", "-Infinity": "NEGATIVE_INFINITY"}
BLOCKS_SQL = """SELECT coalesce(max(pg_relation_size(relid) / current_setting('block_size')::int), 0)
FROM pg_partition_tree(%s::regclass) WHERE isleaf"""


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def encoding(column: Column) -> str | None:
    """SQL rendering the column's value as Debezium's JSON encoding of it (docs/events.md), or
    None when cdclake does not reproduce it (arrays, intervals, money, bits, geometry, ranges, ...)."""
    c = quote(column.name)
    pg = column.pg_type
    if column.is_array:
        return None
    if pg in AS_IS or column.typtype == ENUM:
        return f"to_json({c})"
    if pg in ("json", "jsonb"):
        return f"to_json({c}::text)"
    if pg == "numeric":
        specials = " ".join(f"WHEN {_literal(k)} THEN {_literal(v)}" for k, v in NUMERIC_SPECIALS.items())
        return f"to_json(CASE {c}::text {specials} ELSE {c}::text END)"
    if pg == "bytea":
        return f"to_json(translate(encode({c}, 'base64'), E'\\n', ''))"
    if pg == "date":  # days since the epoch; an infinite date fails silver's guard as Debezium's does
        return f"to_json(CASE WHEN NOT isfinite({c}) THEN -2147483648 ELSE {c} - DATE '1970-01-01' END)"
    if pg in ("timestamp", "time"):
        unit = 1000 if millis_precision(column) else 1_000_000
        epoch = f"round(extract(epoch FROM {c}) * {unit})::bigint"
        if pg == "time":
            return f"to_json({epoch})"
        per = 1_000_000 // unit  # Debezium's infinities are in microseconds; silver scales millis up
        return (f"to_json(CASE WHEN {c} = 'infinity' THEN {TIMESTAMP_INFINITY // per} "
                f"WHEN {c} = '-infinity' THEN {TIMESTAMP_MINUS_INFINITY // per} ELSE {epoch} END)")
    if pg == "timestamptz":  # ISO 8601 in UTC; a BC value gets the sign silver refuses it by
        return (f"to_json(CASE WHEN NOT isfinite({c}) THEN {c}::text WHEN {c} < '0001-01-01 00:00:00+00' THEN '-BC' "
                f"ELSE to_char({c} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') END)")
    return None


def unsupported(schema: TableSchema) -> list[Column]:
    """The columns whose Debezium encoding :func:`encoding` does not reproduce."""
    return [c for c in schema.columns if encoding(c) is None]


def _json_object(columns: list[Column], extra: dict[str, str] | None = None) -> str:
    """SQL concatenating a JSON object of the columns' encodings (and ``extra``: name -> JSON text)."""
    parts = [f"{_literal(json.dumps(c.name, ensure_ascii=False) + ':')} || coalesce({encoding(c)}::text, 'null')"
             for c in columns]
    parts += [_literal(f"{json.dumps(k)}:{v}") for k, v in (extra or {}).items()]
    return "'{' || " + " || ',' || ".join(parts) + " || '}'"


def event_sql(table: TableId, schema: TableSchema, lsn: int, source_ts_ms: int) -> str:
    """One row per source row: ``__ctid`` (for the chunk predicates), ``event_key``, ``event_value``."""
    envelope = {"__deleted": '"false"', "__op": '"r"', "__lsn": str(lsn), "__txId": "null",
                "__source_ts_ms": str(source_ts_ms), "__table": json.dumps(table.name),
                "__schema": json.dumps(table.schema), "__snapshot": json.dumps(LOAD_MARK)}
    return (f"SELECT ctid AS __ctid, {_json_object(schema.keys)} AS event_key, "
            f"{_json_object(list(schema.columns), envelope)} AS event_value "
            f"FROM {table}")  # a TableId reads as its quoted SQL name


def chunk_predicates(blocks: int, chunks: int) -> list[str]:
    """``chunks`` ctid ranges covering every heap block; the last is open-ended."""
    chunks = max(1, min(chunks, blocks))
    bounds = [blocks * i // chunks for i in range(1, chunks)]
    lows, highs = [0, *bounds], [*bounds, None]
    return [f"__ctid >= '({lo},0)'::tid" + (f" AND __ctid < '({hi},0)'::tid" if hi is not None else "")
            for lo, hi in zip(lows, highs)]


@dataclass(frozen=True)
class Snapshot:
    """An exported PostgreSQL snapshot and the WAL position T it shows the tables at."""

    id: str
    lsn: int
    taken_ms: int


@contextmanager
def exported_snapshot(pipeline: Pipeline, tables: list[TableId]) -> Iterator[Snapshot]:
    """The tables exactly at T, exported for other sessions to import until the block ends."""
    from cdclake.capture.resnapshot import share_locked
    from cdclake.source import connection

    holder = connection.connect(pipeline)
    try:
        with share_locked(pipeline, tables) as (_, lsn):
            holder.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            snapshot_id = holder.execute("SELECT pg_export_snapshot()").fetchone()[0]
        yield Snapshot(snapshot_id, lsn, int(time.time() * 1000))
    finally:
        holder.close()


def jdbc_source(pipeline: Pipeline, snapshot: Snapshot) -> tuple[str, dict[str, str]]:
    """The source's JDBC URL and the properties of a reader importing ``snapshot``."""
    from cdclake.source import connection

    dsn = urlsplit(connection.admin_dsn(pipeline))
    password = connection.admin_password(pipeline)
    url = f"jdbc:postgresql://{dsn.hostname}:{dsn.port or 5432}{dsn.path}"
    # A fetch size makes Spark turn autocommit off, so the init statement opens the transaction.
    return url, {"user": dsn.username or "", "password": password.get_secret_value() if password else "",
                 "driver": "org.postgresql.Driver", "fetchsize": str(FETCH_SIZE),
                 "sessionInitStatement": "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ; "
                                         f"SET TRANSACTION SNAPSHOT '{snapshot.id}'"}


def bronze_rows(frame: DataFrame, ref: TableRef, snapshot: Snapshot) -> DataFrame:
    """The loaded events as bronze rows: reads at T on partition -1."""
    from pyspark.sql.functions import lit

    return frame.selectExpr(
        "event_key", "event_value", "'r' AS op", f"CAST({snapshot.lsn} AS BIGINT) AS lsn",
        "CAST(NULL AS BIGINT) AS tx_id", f"timestamp_millis({snapshot.taken_ms}) AS source_ts", "false AS deleted",
        "CAST(NULL AS STRING) AS parse_error", "CAST(NULL AS BINARY) AS raw_value",
        f"{LOADED_PARTITION} AS kafka_partition", "monotonically_increasing_id() AS kafka_offset",
        "current_timestamp() AS kafka_ts", "current_timestamp() AS ingest_ts",
    ).withColumn("kafka_topic", lit(ref.topic))


def load_table(spark: SparkSession, pipeline: Pipeline, plan: LakehousePlan, ref: TableRef, schema: TableSchema,
               snapshot: Snapshot, chunks: int) -> int:
    """Append the table's rows at ``snapshot`` to bronze in one commit; returns the row count."""
    with plan.connect_source() as conn:
        blocks = conn.execute(BLOCKS_SQL, (str(ref.source),)).fetchone()[0]
    url, properties = jdbc_source(pipeline, snapshot)
    query = f"({event_sql(ref.source, schema, snapshot.lsn, snapshot.taken_ms)}) AS cdclake_load"
    frame = spark.read.jdbc(url, query, predicates=chunk_predicates(blocks, chunks), properties=properties)
    bronze.ensure_table(spark, plan, ref)
    # One pass: the rows are counted by the commit (caching them to count first cost a fifth more).
    bronze_rows(frame, ref, snapshot).writeTo(ref.bronze).option(
        f"snapshot-property.{LOAD_LSN_KEY}", str(snapshot.lsn)).append()
    return loaded_rows(spark, ref, snapshot.lsn)


def loaded_rows(spark: SparkSession, ref: TableRef, lsn: int) -> int:
    """The rows the load at ``lsn`` appended to bronze (its commit's summary; 0 for an empty table)."""
    from cdclake.lakehouse.spark import load_table, newest_summary

    summary = newest_summary(load_table(spark, ref.bronze), lambda s: s.get(LOAD_LSN_KEY) == str(lsn))
    return int(summary.get("added-records") or 0) if summary else 0


def refusal(ref: TableRef, schema: TableSchema) -> str | None:
    """Why this table cannot be loaded in parallel (it then takes Debezium's snapshot), or None."""
    if schema.keyless:
        return "it has no key (a keyless table is loaded whole by a blocking snapshot)"
    if ref.transformed:
        return "the stream layer transforms its events before bronze"
    columns = unsupported(schema)
    if columns:
        return ("cdclake does not reproduce Debezium's encoding of "
                + ", ".join(f"{c.name} ({c.declared})" for c in columns))
    return None


def load(spark: SparkSession, pipeline: Pipeline, plan: LakehousePlan, tables: dict[TableRef, TableSchema],
         progress=print) -> dict[str, int]:
    """Load the tables' rows at one snapshot into bronze, then mark T in their topics.

    Returns:
        Rows loaded per table (source name).
    """
    from cdclake.capture.resnapshot import write_markers

    chunks = CHUNKS_PER_CORE * spark.sparkContext.defaultParallelism
    loaded: dict[str, int] = {}
    with exported_snapshot(pipeline, [r.source for r in tables]) as snapshot:
        progress(f"loading {', '.join(str(r.source) for r in tables)} at LSN {snapshot.lsn} "
                 f"({chunks} chunks per table, {spark.sparkContext.defaultParallelism} at a time)")
        for ref, schema in tables.items():
            started = time.monotonic()
            rows = loaded[str(ref.source)] = load_table(spark, pipeline, plan, ref, schema, snapshot, chunks)
            seconds = time.monotonic() - started
            progress(f"  {ref.source}: {rows:,} rows into {ref.bronze_short} in {seconds:.1f}s "
                     f"({rows / max(seconds, 1e-3):,.0f} rows/s)")
        write_markers(pipeline, [r.source for r in tables], snapshot.lsn)
    return loaded


def load_tables(pipeline: Pipeline, tables: list[TableId], progress=print) -> tuple[dict[str, int], dict[str, str]]:
    """Load the tables that can be loaded in parallel (one Spark session, one snapshot).

    Returns:
        (rows loaded per table, why each other table was left to Debezium's snapshot).
    """
    from cdclake.lakehouse import spark as spark_session
    from cdclake.lakehouse.configuration import plan_from_pipeline

    plan = plan_from_pipeline(pipeline, [str(t) for t in tables])
    with plan.connect_source() as conn:
        schemas = {ref: read_schema(conn, ref.source, ref.key_columns) for ref in plan.tables}
    reasons = {ref: refusal(ref, schema) for ref, schema in schemas.items()}
    refused = {str(ref.source): reason for ref, reason in reasons.items() if reason}
    loadable = {ref: schemas[ref] for ref, reason in reasons.items() if not reason}
    if not loadable:
        return {}, refused
    from pyspark.sql import SparkSession

    owned = SparkSession.getActiveSession() is None  # a caller's session (a test's, a job's) stays up
    spark = spark_session.session(plan, app_name="cdclake-initial-load")
    try:
        return load(spark, pipeline, plan, loadable, progress), refused
    finally:
        if owned:
            spark.stop()
