"""``cdclake source init``: make a PostgreSQL database ready for Debezium, idempotently.

- checks the server settings logical decoding needs;
- refuses tables that have neither a primary key nor REPLICA IDENTITY FULL;
- creates the heartbeat and signal tables, a least-privilege capture role and the
  publication over exactly the configured tables.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from cdclake.config import Pipeline
from cdclake.source import connection
from cdclake.source.exceptions import MissingKeyError, SourceError, SourceSettingError

HEARTBEAT_TABLE = "heartbeat"
SIGNAL_TABLE = "debezium_signal"
MIN_SLOTS, MIN_SENDERS = 1, 1


@dataclass
class InitReport:
    database: str
    publication: str
    tables: list[str]
    capture_user: str
    created: list[str] = field(default_factory=list)


def capture_tables(pipeline: Pipeline) -> list[str]:
    """The configured tables plus cdclake's heartbeat and signal tables (Debezium must see both)."""
    schema = pipeline.source.cdc_schema
    return [*pipeline.source.tables, f"{schema}.{HEARTBEAT_TABLE}", f"{schema}.{SIGNAL_TABLE}"]


def init_source(pipeline: Pipeline, progress=print) -> InitReport:
    """Prepare the source database; safe to run any number of times."""
    src = pipeline.source
    report = InitReport(src.database, src.publication, list(src.tables), src.capture_user)
    try:
        conn = connection.connect(pipeline, autocommit=True)
    except psycopg.OperationalError as exc:
        raise SourceError(f"cannot connect to the source database: {_one_line(exc)}; check source.dsn and "
                          "the password (CDCLAKE__SOURCE__PASSWORD), or run `cdclake up`") from exc
    with conn:
        try:
            _prepare(conn, pipeline, report)
        except psycopg.errors.InsufficientPrivilege as exc:
            raise SourceError(f"source init lacks a privilege: {_one_line(exc)}; connect (source.dsn) as the "
                              "database owner with CREATEROLE, or grant what is named") from exc
    for item in report.created:
        progress(f"created {item}")
    return report


def _prepare(conn: psycopg.Connection, pipeline: Pipeline, report: InitReport) -> None:
    src = pipeline.source
    check_settings(conn)
    check_tables(conn, src.tables)
    _ensure_cdc_tables(conn, src.cdc_schema, report)
    _ensure_role(conn, src.capture_user, capture_password(pipeline), report)
    # The database this connection is on: the one Debezium reads (source.dsn's, or source.database).
    _grant(conn, conn.info.dbname, src.capture_user, capture_tables(pipeline), src.cdc_schema)
    _ensure_publication(conn, src.publication, capture_tables(pipeline), report)


def check_settings(conn: psycopg.Connection) -> None:
    """Raise SourceSettingError naming each setting to change and that a restart is needed."""
    rows = dict(conn.execute(
        "SELECT name, setting FROM pg_settings WHERE name IN "
        "('wal_level', 'max_replication_slots', 'max_wal_senders')").fetchall())
    problems = []
    if rows.get("wal_level") != "logical":
        problems.append(f"wal_level={rows.get('wal_level')}; set wal_level=logical")
    if int(rows.get("max_replication_slots", 0)) < MIN_SLOTS:
        problems.append("max_replication_slots=0; set max_replication_slots=10")
    if int(rows.get("max_wal_senders", 0)) < MIN_SENDERS:
        problems.append("max_wal_senders=0; set max_wal_senders=10")
    if problems:
        raise SourceSettingError(
            "PostgreSQL is not ready for logical replication: " + "; ".join(problems)
            + " (in postgresql.conf or the RDS parameter group: rds.logical_replication=1) and restart the server",
            settings=rows)


def check_tables(conn: psycopg.Connection, tables: list[str]) -> None:
    """Every table must exist and have a primary key or REPLICA IDENTITY FULL."""
    missing, keyless = [], []
    for table in tables:
        schema, name = table.split(".", 1)
        row = conn.execute(
            """SELECT c.relreplident,
                      EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p')""",
            (schema, name)).fetchone()
        if row is None:
            missing.append(table)
        elif not row[1] and row[0] != "f":
            keyless.append(table)
    if missing:
        raise SourceError(f"captured table(s) not found: {', '.join(missing)}; create them or remove them "
                          "from source.tables")
    if keyless:
        names = ", ".join(keyless)
        raise MissingKeyError(
            f"table(s) {names} have no primary key: add one (ALTER TABLE {keyless[0]} ADD PRIMARY KEY (...)) "
            f"or set ALTER TABLE {keyless[0]} REPLICA IDENTITY FULL", tables=keyless)


def capture_password(pipeline: Pipeline) -> str:
    """The capture role's password, generated once into the state dir's secrets file.

    Kafka Connect reads it from that file (``${file:...}``); it is never put in the
    connector JSON.
    """
    path = secrets_file(pipeline)
    if path.exists():
        for line in path.read_text().splitlines():
            if line.startswith("password="):
                return line.split("=", 1)[1]
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    password = secrets.token_urlsafe(24)
    path.write_text(f"password={password}\n")
    path.chmod(0o600)
    return password


def secrets_file(pipeline: Pipeline) -> Path:
    return pipeline.state_dir / "secrets" / "debezium.properties"


def _ensure_cdc_tables(conn: psycopg.Connection, schema: str, report: InitReport) -> None:
    ident = sql.Identifier(schema)
    if not conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone():
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(ident))
        report.created.append(f"schema {schema}")
    statements = {
        HEARTBEAT_TABLE: "CREATE TABLE IF NOT EXISTS {}.{} (id int PRIMARY KEY, ts timestamptz NOT NULL)",
        # Debezium's signal table layout (id, type, data).
        SIGNAL_TABLE: "CREATE TABLE IF NOT EXISTS {}.{} (id varchar(64) PRIMARY KEY, "
                      "type varchar(32) NOT NULL, data varchar(2048))",
    }
    for table, ddl in statements.items():
        if not _table_exists(conn, schema, table):
            conn.execute(sql.SQL(ddl).format(ident, sql.Identifier(table)))
            report.created.append(f"table {schema}.{table}")


def _ensure_role(conn: psycopg.Connection, role: str, password: str, report: InitReport) -> None:
    exists = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
    verb = "ALTER" if exists else "CREATE"
    conn.execute(sql.SQL("{} ROLE {} WITH LOGIN REPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {}").format(
        sql.SQL(verb), sql.Identifier(role), sql.Literal(password)))
    if not exists:
        report.created.append(f"role {role} (LOGIN REPLICATION, not superuser)")


def _grant(conn: psycopg.Connection, database: str, role: str, tables: list[str], cdc_schema: str) -> None:
    r = sql.Identifier(role)
    conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(database), r))
    for schema in sorted({t.split(".", 1)[0] for t in tables}):
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(schema), r))
    for table in tables:
        schema, name = table.split(".", 1)
        conn.execute(sql.SQL("GRANT SELECT ON {}.{} TO {}").format(sql.Identifier(schema), sql.Identifier(name), r))
    # Debezium writes the heartbeat (heartbeat.action.query) and incremental-snapshot
    # watermarks into the signal table; nothing else is writable.
    for table, rights in ((HEARTBEAT_TABLE, "INSERT, UPDATE"), (SIGNAL_TABLE, "INSERT, UPDATE, DELETE")):
        conn.execute(sql.SQL("GRANT {} ON {}.{} TO {}").format(
            sql.SQL(rights), sql.Identifier(cdc_schema), sql.Identifier(table), r))


def _ensure_publication(conn: psycopg.Connection, name: str, tables: list[str], report: InitReport) -> None:
    table_list = sql.SQL(", ").join(sql.SQL("{}.{}").format(*map(sql.Identifier, t.split(".", 1))) for t in tables)
    if conn.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (name,)).fetchone():
        conn.execute(sql.SQL("ALTER PUBLICATION {} SET TABLE {}").format(sql.Identifier(name), table_list))
        conn.execute(sql.SQL("ALTER PUBLICATION {} SET (publish_via_partition_root = true)").format(
            sql.Identifier(name)))
    else:
        conn.execute(sql.SQL("CREATE PUBLICATION {} FOR TABLE {} WITH (publish_via_partition_root = true)").format(
            sql.Identifier(name), table_list))
        report.created.append(f"publication {name}")


def _table_exists(conn: psycopg.Connection, schema: str, table: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_tables WHERE schemaname = %s AND tablename = %s",
                        (schema, table)).fetchone() is not None


def _one_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
