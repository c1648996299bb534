"""Bringing a table's existing rows into capture: for a table newly added to
``source.tables`` (or added back after a removal), ``connector apply`` asks Debezium for an
incremental snapshot through the signal table, which interleaves the table's rows with
streaming without missing or doubling a change (Debezium's watermark-based DBLog chunks).

Before the snapshot, a truncate marker goes into the table's topic at the current WAL
position T (the same flat event ``io.cdclake.connect.TruncateAsChange`` makes of a real
TRUNCATE): silver then drops whatever it held of that table from before T, rows deleted
while the table was not captured included, and keeps every change and snapshot row from T
on. Every snapshot row is read after T, so nothing the table holds is lost.
"""

from __future__ import annotations

import json

from cdclake.broker import clients
from cdclake.broker.topics import topic_partitions
from cdclake.capture.connector import topic_for
from cdclake.capture.exceptions import CaptureError
from cdclake.config import Pipeline
from cdclake.config.tables import TableId, from_include_pattern
from cdclake.source import connection

LOCK_TIMEOUT_SECONDS = 60


def previously_captured(connector_config: dict[str, str] | None) -> set[TableId]:
    """The tables a connector config captures, from its ``table.include.list``."""
    if not connector_config:
        return set()
    return {from_include_pattern(t) for t in connector_config.get("table.include.list", "").split(",") if t}


def marker_position(pipeline: Pipeline, tables: list[TableId]) -> int:
    """The WAL position T of the marker, taken under a SHARE lock on the tables.

    Silver drops a change older than T. A transaction that wrote to a table before T but
    commits after it would have its change dropped, and the snapshot may have read past the row
    before the commit: lost. The lock waits for such writers to commit (and holds new ones back
    for the instant it takes to read T), so every change older than T is committed, and seen by
    the snapshot, whose reads all come after T.
    """
    from psycopg import errors, sql

    names = sql.SQL(", ").join(sql.Identifier(t.schema, t.name) for t in tables)
    try:
        with connection.connect(pipeline) as conn:
            conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT_SECONDS}s'")
            conn.execute(sql.SQL("LOCK TABLE {} IN SHARE MODE").format(names))
            return int(conn.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn").fetchone()[0])
    except errors.LockNotAvailable:
        raise CaptureError(
            f"a transaction has been writing to {', '.join(tables)} for over {LOCK_TIMEOUT_SECONDS}s without committing, "
            "and their snapshot must start after it ends (else its rows could be missed); find it in "
            "pg_stat_activity (state 'idle in transaction' or a long query), let it finish or end it, then run "
            "the command again") from None


def truncate_marker(table: TableId, lsn: int) -> bytes:
    return json.dumps({"__deleted": "false", "__op": "t", "__lsn": lsn, "__txId": None, "__source_ts_ms": None,
                       "__table": table.name, "__schema": table.schema, "__ts_ms": None, "__cdclake_marker": "resnapshot"}
                      ).encode()


def mark_resnapshot(pipeline: Pipeline, tables: list[TableId]) -> int:
    """Put a truncate marker at the current WAL position into every partition of each table's
    topic (silver orders the snapshot's rows after the marker of their own partition); returns it."""
    lsn = marker_position(pipeline, tables)
    bootstrap = pipeline.kafka.bootstrap
    topics = {table: topic_for(pipeline, table) for table in tables}
    producer = clients.producer(bootstrap, **{"enable.idempotence": True, "acks": "all"})
    partitions = topic_partitions(bootstrap, list(topics.values()))
    for table, topic in topics.items():
        for partition in partitions.get(topic, [0]):
            producer.produce(topic, value=truncate_marker(table, lsn), partition=partition)
    if producer.flush(30) != 0:
        raise CaptureError(f"could not write the re-snapshot markers for {', '.join(tables)} to Kafka at "
                           f"{pipeline.kafka.bootstrap} within 30s; is it running? (`cdclake status`)")
    return lsn
