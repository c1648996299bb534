"""``cdclake source drop``: undo ``source init`` (and the slot Debezium made), idempotently.

It drops the replication slot (refusing while a connector streams from it), the
publication, the heartbeat and signal tables (and their schema when nothing else is in
it), revokes what init granted and drops the capture role, then removes the generated
password. The captured tables and their rows are never touched.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from cdclake.config import Pipeline
from cdclake.source import connection
from cdclake.source.exceptions import SourceError
from cdclake.source.prepare import (
    HEARTBEAT_TABLE, SIGNAL_TABLE, capture_password, capture_tables, grant_statements, secrets_file,
)


def drop_source(pipeline: Pipeline, progress=print) -> list[str]:
    """Remove what ``source init`` created; returns what was dropped.

    Raises:
        SourceError: the slot is in use, or a privilege is missing (the message names the fix).
    """
    src = pipeline.source
    dropped: list[str] = []
    with connection.connect(pipeline, autocommit=True) as conn:
        try:
            _drop_slot(conn, pipeline, dropped)
            if conn.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (src.publication,)).fetchone():
                conn.execute(sql.SQL("DROP PUBLICATION {}").format(sql.Identifier(src.publication)))
                dropped.append(f"publication {src.publication}")
            _drop_role(conn, pipeline, dropped)
            _drop_cdc_tables(conn, src.cdc_schema, dropped)
        except psycopg.errors.InsufficientPrivilege as exc:
            raise SourceError(f"source drop lacks a privilege: {str(exc).strip().splitlines()[0]}; run it as the "
                              "user that ran `cdclake source init`, or as a superuser") from exc
    if secrets_file(pipeline).exists():
        secrets_file(pipeline).unlink()
        dropped.append(f"password file {secrets_file(pipeline)}")
    for item in dropped:
        progress(f"dropped {item}")
    return dropped


def _drop_slot(conn: psycopg.Connection, pipeline: Pipeline, dropped: list[str]) -> None:
    slot = pipeline.source.slot
    row = conn.execute("SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s", (slot,)).fetchone()
    if row is None:
        return
    if row[0] is not None:
        raise SourceError(f"replication slot {slot} is in use (backend {row[0]}): delete the connector first "
                          "(`cdclake connector delete`), then rerun `cdclake source drop`")
    try:
        conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
    except psycopg.errors.InsufficientPrivilege:
        _drop_slot_as_capture_role(pipeline, slot)  # the database owner has no REPLICATION; the capture role has
    dropped.append(f"replication slot {slot}")


def _drop_slot_as_capture_role(pipeline: Pipeline, slot: str) -> None:
    if not secrets_file(pipeline).exists():
        raise SourceError(f"dropping replication slot {slot} needs REPLICATION: as a superuser run "
                          f"SELECT pg_drop_replication_slot('{slot}'), then rerun `cdclake source drop`")
    with psycopg.connect(connection.admin_dsn(pipeline), user=pipeline.source.capture_user,
                         password=capture_password(pipeline), connect_timeout=5, autocommit=True) as conn:
        conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))


def _drop_role(conn: psycopg.Connection, pipeline: Pipeline, dropped: list[str]) -> None:
    src = pipeline.source
    if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (src.capture_user,)).fetchone():
        return
    existing = [t for t in capture_tables(pipeline)
                if conn.execute("SELECT to_regclass(%s) IS NOT NULL", (t,)).fetchone()[0]]
    for statement in grant_statements(src.capture_user, conn.info.dbname, existing, src.cdc_schema, revoke=True):
        conn.execute(statement)
    try:
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(src.capture_user)))
    except psycopg.errors.DependentObjectsStillExist as exc:
        raise SourceError(f"role {src.capture_user} still holds privileges elsewhere: "
                          f"{str(exc).strip().splitlines()[-1]}; revoke them there, then rerun `cdclake source drop`"
                          ) from exc
    dropped.append(f"role {src.capture_user}")


def _drop_cdc_tables(conn: psycopg.Connection, schema: str, dropped: list[str]) -> None:
    for table in (HEARTBEAT_TABLE, SIGNAL_TABLE):
        if conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{schema}.{table}",)).fetchone()[0]:
            conn.execute(sql.SQL("DROP TABLE {}.{}").format(sql.Identifier(schema), sql.Identifier(table)))
            dropped.append(f"table {schema}.{table}")
    empty = conn.execute("SELECT NOT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                         "WHERE n.nspname = %s) AND EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %s)",
                         (schema, schema)).fetchone()[0]
    if empty:
        conn.execute(sql.SQL("DROP SCHEMA {}").format(sql.Identifier(schema)))
        dropped.append(f"schema {schema}")
