"""``cdclake source init``: make a PostgreSQL database ready for Debezium, idempotently.

- detects the flavour (self-managed PostgreSQL, or Amazon RDS / Aurora) and checks the
  settings logical decoding needs there (``wal_level``, or RDS's ``rds.logical_replication``
  parameter), printing the exact fix; it never runs ``ALTER SYSTEM``;
- refuses tables that have neither a primary key nor REPLICA IDENTITY FULL, and columns
  whose values silver could not carry exactly (docs/events.md: type, column and fix named);
- creates the heartbeat and signal tables, a least-privilege capture role (the
  ``REPLICATION`` attribute, or on RDS membership of ``rds_replication``) and the
  publication over exactly the configured tables.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from cdclake.config import Pipeline
from cdclake.source import connection, rds
from cdclake.lakehouse.pgschema import read_columns, refusal
from cdclake.source.exceptions import MissingKeyError, SourceError, SourceSettingError, UnsupportedColumnError

HEARTBEAT_TABLE = "heartbeat"
SIGNAL_TABLE = "debezium_signal"
MIN_SLOTS, MIN_SENDERS = 1, 1
SELF_MANAGED, RDS = "postgres", "rds"
SETTINGS = ("wal_level", "max_replication_slots", "max_wal_senders")


@dataclass(frozen=True)
class ServerFacts:
    """What ``source init`` needs to know about the server: its flavour and its settings."""

    flavour: str
    settings: dict[str, str]


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
    facts = check_settings(conn, pipeline)
    check_tables(conn, src.tables, src.key_columns)
    check_columns(conn, src.tables)
    _ensure_cdc_tables(conn, src.cdc_schema, report)
    _ensure_role(conn, facts.flavour, src.capture_user, capture_password(pipeline), report)
    # The database this connection is on: the one Debezium reads (source.dsn's, or source.database).
    _grant(conn, conn.info.dbname, src.capture_user, capture_tables(pipeline), src.cdc_schema)
    _ensure_publication(conn, src.publication, capture_tables(pipeline), report)


def server_facts(conn: psycopg.Connection) -> ServerFacts:
    """The flavour (RDS when its roles or ``rds.*`` settings exist) and the replication settings."""
    settings = dict(conn.execute("SELECT name, setting FROM pg_settings WHERE name = ANY(%s)",
                                 (list(SETTINGS),)).fetchall())
    logical, rds_roles = conn.execute(
        "SELECT current_setting(%s, true), EXISTS (SELECT 1 FROM pg_roles WHERE rolname IN "
        "('rds_superuser', %s))", (rds.LOGICAL_REPLICATION, rds.REPLICATION_ROLE)).fetchone()
    if logical is not None:
        settings[rds.LOGICAL_REPLICATION] = logical
    return ServerFacts(RDS if rds_roles or logical is not None else SELF_MANAGED, settings)


def setting_problems(facts: ServerFacts, pipeline: Pipeline) -> list[str]:
    """Each setting to change, with the exact fix for the flavour (empty when ready)."""
    return _rds_problems(facts, pipeline) if facts.flavour == RDS else _self_managed_problems(facts.settings)


def _self_managed_problems(rows: dict[str, str]) -> list[str]:
    problems = []
    if rows.get("wal_level") != "logical":
        problems.append(f"wal_level={rows.get('wal_level')}; set wal_level=logical")
    if int(rows.get("max_replication_slots", 0)) < MIN_SLOTS:
        problems.append("max_replication_slots=0; set max_replication_slots=10")
    if int(rows.get("max_wal_senders", 0)) < MIN_SENDERS:
        problems.append("max_wal_senders=0; set max_wal_senders=10")
    return problems


def _rds_problems(facts: ServerFacts, pipeline: Pipeline) -> list[str]:
    wanted = rds.parameters(pipeline)
    current = facts.settings.get(rds.LOGICAL_REPLICATION)
    if current not in ("1", "on"):
        return [f"{rds.LOGICAL_REPLICATION}={current}; in the DB parameter group (ALTER SYSTEM is not allowed on RDS) "
                f"run: {rds.parameter_group_command(wanted)}"]
    if facts.settings.get("wal_level") != "logical":
        return [f"{rds.LOGICAL_REPLICATION}=1 but wal_level={facts.settings.get('wal_level')}: the parameter is "
                "pending reboot; run: aws rds reboot-db-instance --db-instance-identifier <your-instance>"]
    return []


def check_settings(conn: psycopg.Connection, pipeline: Pipeline | None = None) -> ServerFacts:
    """The server's facts, or SourceSettingError naming each setting to change and how.

    Raises:
        SourceSettingError: logical decoding is not ready; the message holds the fix
            (postgresql.conf and a restart, or the RDS parameter-group change and a reboot).
    """
    facts = server_facts(conn)
    problems = setting_problems(facts, pipeline or Pipeline())
    if problems:
        where = ("" if facts.flavour == RDS
                 else " (in postgresql.conf, or on RDS the parameter group: rds.logical_replication=1) "
                      "and restart the server")
        raise SourceSettingError("PostgreSQL is not ready for logical replication: " + "; ".join(problems) + where,
                                 settings=facts.settings)
    return facts


def check_tables(conn: psycopg.Connection, tables: list[str], key_columns: dict[str, list[str]] | None = None) -> None:
    """Every table must exist and have a primary key, or a unique column set named in
    ``source.key_columns`` with REPLICA IDENTITY FULL (so deletes and updates carry it)."""
    missing, keyless, not_full = [], [], []
    key_columns = key_columns or {}
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
        elif not row[1] and table not in key_columns:
            keyless.append(table)
        elif not row[1] and row[0] != "f":
            not_full.append(table)
    if missing:
        raise SourceError(f"captured table(s) not found: {', '.join(missing)}; create them or remove them "
                          "from source.tables")
    if keyless:
        names = ", ".join(keyless)
        raise MissingKeyError(
            f"table(s) {names} have no primary key: add one (ALTER TABLE {keyless[0]} ADD PRIMARY KEY (...)), "
            f"or name a unique column set in pipeline.yaml (source.key_columns: {{{keyless[0]}: [col, ...]}}) "
            f"and run ALTER TABLE {keyless[0]} REPLICA IDENTITY FULL", tables=keyless)
    if not_full:
        raise MissingKeyError(
            f"table(s) {', '.join(not_full)} are keyed by source.key_columns but PostgreSQL does not log those "
            f"columns on delete and update: run ALTER TABLE {not_full[0]} REPLICA IDENTITY FULL", tables=not_full)


def check_columns(conn: psycopg.Connection, tables: list[str]) -> None:
    """Every captured column must be one silver carries exactly (docs/events.md).

    Raises:
        UnsupportedColumnError: naming each refused column, its type and the fix.
    """
    refused = [reason for table in tables for column in read_columns(conn, table)
               if (reason := refusal(table, column))]
    if refused:
        raise UnsupportedColumnError("; ".join(refused), columns=[r.split(" ", 2)[1] for r in refused])


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


def role_statements(flavour: str, role: str, password: str, exists: bool) -> list[sql.Composed]:
    """The capture role: LOGIN and REPLICATION, or on RDS LOGIN plus membership of rds_replication."""
    verb = sql.SQL("ALTER" if exists else "CREATE")
    replication = sql.SQL("NOREPLICATION" if flavour == RDS else "REPLICATION")
    statements = [sql.SQL("{} ROLE {} WITH LOGIN {} NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {}").format(
        verb, sql.Identifier(role), replication, sql.Literal(password))]
    if flavour == RDS:
        statements.append(sql.SQL("GRANT {} TO {}").format(sql.Identifier(rds.REPLICATION_ROLE), sql.Identifier(role)))
    return statements


def _ensure_role(conn: psycopg.Connection, flavour: str, role: str, password: str, report: InitReport) -> None:
    exists = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is not None
    for statement in role_statements(flavour, role, password, exists):
        conn.execute(statement)
    if not exists:
        how = f"LOGIN, member of {rds.REPLICATION_ROLE}" if flavour == RDS else "LOGIN REPLICATION"
        report.created.append(f"role {role} ({how}, not superuser)")


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
