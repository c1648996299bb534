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
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from cdclake.broker import clients
from cdclake.broker.topics import end_offsets, topic_partitions
from cdclake.capture.connector import topic_for
from cdclake.capture.exceptions import CaptureError
from cdclake.config import Pipeline
from cdclake.config.tables import TableId, from_include_pattern, include_pattern
from cdclake.source import connection
from cdclake.source.prepare import SIGNAL_TABLE

if TYPE_CHECKING:
    import psycopg

LOCK_TIMEOUT_SECONDS = 60
READ_STALL_SECONDS = 120.0
PROGRESS_SECONDS = 10.0


def previously_captured(connector_config: dict[str, str] | None) -> set[TableId]:
    """The tables a connector config captures, from its ``table.include.list``."""
    if not connector_config:
        return set()
    return {from_include_pattern(t) for t in connector_config.get("table.include.list", "").split(",") if t}


@contextmanager
def share_locked(pipeline: Pipeline, tables: list[TableId]) -> Iterator[tuple[psycopg.Connection, int]]:
    """A transaction holding a SHARE lock on the tables, and the WAL position T read under it.

    The lock waits for every transaction writing to the tables to commit and holds new writers
    back until the block ends, so every change older than T is committed, and none is made
    while the lock is held.
    """
    from psycopg import errors, sql

    names = sql.SQL(", ").join(sql.Identifier(t.schema, t.name) for t in tables)
    with connection.connect(pipeline) as conn:
        conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT_SECONDS}s'")
        try:
            conn.execute(sql.SQL("LOCK TABLE {} IN SHARE MODE").format(names))
        except errors.LockNotAvailable:
            raise CaptureError(
                f"a transaction has been writing to {', '.join(tables)} for over {LOCK_TIMEOUT_SECONDS}s without "
                "committing, and their snapshot must start after it ends (else its rows could be missed); find it "
                "in pg_stat_activity (state 'idle in transaction' or a long query), let it finish or end it, then "
                "run the command again") from None
        yield conn, int(conn.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn").fetchone()[0])


def truncate_marker(table: TableId, lsn: int) -> bytes:
    return json.dumps({"__deleted": "false", "__op": "t", "__lsn": lsn, "__txId": None, "__source_ts_ms": None,
                       "__table": table.name, "__schema": table.schema, "__ts_ms": None, "__cdclake_marker": "resnapshot"}
                      ).encode()


def mark_resnapshot(pipeline: Pipeline, tables: list[TableId]) -> int:
    """Put a truncate marker at the current WAL position T into every partition of each table's
    topic (silver orders the snapshot's rows after the marker of their own partition); returns T.

    T is read under a SHARE lock (``share_locked``): silver drops a change older than T, so a
    transaction that wrote before T but committed after it, past a row the snapshot had
    already read, would be lost. The snapshot's reads all come after T.
    """
    with share_locked(pipeline, tables) as (_, lsn):
        pass
    write_markers(pipeline, tables, lsn)
    return lsn


def write_markers(pipeline: Pipeline, tables: list[TableId], lsn: int) -> None:
    """The truncate marker at ``lsn`` into every partition of each table's topic."""
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


def signal_snapshot(pipeline: Pipeline, tables: list[TableId], kind: str) -> str:
    """Ask Debezium for a snapshot of ``tables`` through the signal table (``kind``:
    ``incremental`` goes on streaming, ``blocking`` pauses it); returns the signal's id."""
    from psycopg import sql

    signal_id = f"cdclake-{uuid.uuid4()}"
    # data-collections are regexes Debezium matches against schema.table, as the include list.
    data = json.dumps({"data-collections": [include_pattern(t) for t in tables], "type": kind})
    with connection.connect(pipeline, autocommit=True) as conn:
        conn.execute(sql.SQL("INSERT INTO {}.{} (id, type, data) VALUES (%s, %s, %s)").format(
            sql.Identifier(pipeline.source.cdc_schema), sql.Identifier(SIGNAL_TABLE)),
            (signal_id, "execute-snapshot", data))
    return signal_id


def load_keyless(pipeline: Pipeline, tables: list[TableId], progress=print) -> dict[TableId, str]:
    """Bring the rows of keyless tables into a running capture, exactly; returns the signal per table.

    Debezium's incremental snapshot chunks by key, so a keyless table gets its blocking
    snapshot (streaming pauses while it reads). A multiset has no key to absorb a change seen
    both in the snapshot and in the stream, so the tables take no write from the marker's
    position T until the snapshot has begun reading: the SHARE lock is held until its first
    row reaches Kafka. The snapshot then holds exactly the rows at T; changes older than T are
    dropped by the marker, and later ones commit after the snapshot's own view, so they stream.
    """
    topics = {table: topic_for(pipeline, table) for table in tables}
    start = {topic: offsets.get(0, 0) for topic, offsets in end_offsets(pipeline.kafka.bootstrap,
                                                                          list(topics.values())).items()}
    with share_locked(pipeline, tables) as (conn, lsn):
        rows = {table: count_rows(conn, table) for table in tables}
        write_markers(pipeline, tables, lsn)
        loading = [table for table in tables if rows[table]]
        if not loading:
            return {}
        signal = signal_snapshot(pipeline, loading, "blocking")
        progress(f"loading {', '.join(f'{t} ({rows[t]:,} rows)' for t in loading)} with a blocking snapshot "
                 f"from LSN {lsn}; writes to them wait until it starts")
        wait_reads(pipeline, {topics[t]: start[topics[t]] for t in loading}, {topics[t]: 1 for t in loading},
                   any_topic=True)
    wait_reads(pipeline, {topics[t]: start[topics[t]] for t in loading}, {topics[t]: rows[t] for t in loading},
               progress=progress)
    return {table: signal for table in loading}


def count_rows(conn: psycopg.Connection, table: TableId) -> int:
    from psycopg import sql

    return conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table.schema, table.name))
                        ).fetchone()[0]


def wait_reads(pipeline: Pipeline, start: dict[str, int], wanted: dict[str, int], any_topic: bool = False,
               progress=None, stall_seconds: float = READ_STALL_SECONDS) -> None:
    """Until each topic (one partition) holds ``wanted`` snapshot reads past offset ``start``
    (``any_topic``: until one does); raises when none arrives for ``stall_seconds``."""
    from confluent_kafka import TopicPartition

    consumer = clients.consumer(pipeline.kafka.bootstrap, f"cdclake-snapshot-{uuid.uuid4()}")
    consumer.assign([TopicPartition(topic, 0, offset) for topic, offset in start.items()])
    reads, seen, reported = dict.fromkeys(start, 0), time.monotonic(), time.monotonic()
    try:
        while not _reached(reads, wanted, any_topic):
            records = [m for m in consumer.consume(1000, 1.0) if not m.error() and m.value()]
            for m in records:
                reads[m.topic()] += json.loads(m.value()).get("__op") == "r"
            now = time.monotonic()
            seen = now if records else seen
            if now - seen > stall_seconds:
                raise CaptureError(f"the blocking snapshot sent no row for {stall_seconds:.0f}s "
                                   f"({_share(reads, wanted)} read); see the Connect log (.cdclake/logs/connect.log)")
            if progress and now - reported > PROGRESS_SECONDS:
                progress(f"  snapshot: {_share(reads, wanted)} rows read")
                reported = now
    finally:
        consumer.close()


def _reached(reads: dict[str, int], wanted: dict[str, int], any_topic: bool) -> bool:
    done = [reads[topic] >= n for topic, n in wanted.items()]
    return any(done) if any_topic else all(done)


def _share(reads: dict[str, int], wanted: dict[str, int]) -> str:
    return f"{sum(reads.values()):,} of {sum(wanted.values()):,}"
