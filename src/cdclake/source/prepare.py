"""``cdclake source init``: make a PostgreSQL database ready for Debezium, idempotently.

- detects the flavour (self-managed PostgreSQL, or Amazon RDS / Aurora) and checks the
  settings logical decoding needs there (``wal_level``, or RDS's ``rds.logical_replication``
  parameter), printing the exact fix; it never runs ``ALTER SYSTEM``;
- refuses tables that have neither a primary key nor REPLICA IDENTITY FULL; a table without
  a key but with REPLICA IDENTITY FULL is carried as the exact multiset of its rows
  (lakehouse/silver.py) and gets a one-partition topic (its change order);
- refuses columns whose values silver could not carry exactly (docs/events.md: type, column and
  fix named);
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
from cdclake.config.tables import TableId
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


def capture_tables(pipeline: Pipeline) -> list[TableId]:
    """The configured tables plus cdclake's heartbeat and signal tables (Debezium must see both)."""
    schema = pipeline.source.cdc_schema
    return [*pipeline.source.tables, TableId(schema, HEARTBEAT_TABLE), TableId(schema, SIGNAL_TABLE)]


def init_source(pipeline: Pipeline, progress=print) -> InitReport:
    """Prepare the source database; safe to run any number of times."""
    src = pipeline.source
    report = InitReport(src.database, src.publication, list(src.tables), src.capture_user)
    with connection.connect_or_explain(pipeline, autocommit=True) as conn:
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


REPLICA_IDENTITIES = {"d": "DEFAULT", "n": "NOTHING", "i": "USING INDEX", "f": "FULL"}
TABLE_FACTS_SQL = """SELECT c.relreplident,
       EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p')"""


def keyless_identity_problem(table: str, identity: str) -> str:
    """Why a table without a key cannot be carried under ``identity`` (pg_class.relreplident), and the fix."""
    return (f"table {table} has no primary key and REPLICA IDENTITY {REPLICA_IDENTITIES.get(identity, identity)}, "
            "so PostgreSQL logs no old row for its deletes and updates: run ALTER TABLE "
            f"{table} REPLICA IDENTITY FULL (silver then keeps the exact multiset of its rows, duplicates "
            "included), or add a primary key, or name a unique column set in source.key_columns")


def check_tables(conn: psycopg.Connection, tables: list[TableId],
                 key_columns: dict[str, list[str]] | None = None) -> list[TableId]:
    """Every table must exist and have a primary key, or REPLICA IDENTITY FULL (so deletes and
    updates carry the whole old row): keyed by the unique column set ``source.key_columns``
    names, or else carried as a multiset of rows.

    Returns:
        The keyless tables: no primary key, none in ``source.key_columns``.

    Raises:
        SourceError: a table does not exist.
        MissingKeyError: a table without a primary key lacks REPLICA IDENTITY FULL.
    """
    missing, not_full, keyless = [], [], []
    key_columns = key_columns or {}
    for table in tables:
        row = conn.execute(TABLE_FACTS_SQL, (table.schema, table.name)).fetchone()
        if row is None:
            missing.append(table)
        elif not row[1] and row[0] != "f":
            not_full.append((table, row[0]))
        elif not row[1] and table not in key_columns:
            keyless.append(table)
    if missing:
        raise SourceError(f"captured table(s) not found: {', '.join(missing)}; create them or remove them "
                          "from source.tables")
    if not_full:
        table, identity = not_full[0]
        names = [t for t, _ in not_full]
        if table in key_columns:
            raise MissingKeyError(
                f"table(s) {', '.join(names)} are keyed by source.key_columns but PostgreSQL does not log those "
                f"columns on delete and update: run ALTER TABLE {table} REPLICA IDENTITY FULL", tables=names)
        others = f" (also: {', '.join(names[1:])})" if len(names) > 1 else ""
        raise MissingKeyError(keyless_identity_problem(table, identity) + others, tables=names)
    return keyless


def keyless_tables(pipeline: Pipeline) -> list[str]:
    """The captured tables without a key (see :func:`check_tables`), read from the source."""
    src = pipeline.source
    with connection.connect(pipeline, autocommit=True) as conn:
        return check_tables(conn, src.tables, src.key_columns)


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
    """Create the role, or bring it to least privilege; a non-superuser only sets its password.

    On self-managed PostgreSQL only a superuser may give (or take away) REPLICATION, so when
    init runs as the database owner, a superuser creates the role once; init then sets the
    password Kafka Connect uses, or (PostgreSQL 15 and older, where only a superuser may
    alter a REPLICATION role) checks that the one in the secrets file logs in
    (docs/your-database.md).
    """
    row = conn.execute("SELECT rolreplication, rolsuper FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
    admin_is_superuser = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0]
    if row is not None and not admin_is_superuser and flavour != RDS:
        if row[1] or not row[0]:
            raise SourceError(f"role {role} {'is a superuser' if row[1] else 'lacks REPLICATION'} and only a "
                              f"superuser can change that: run ALTER ROLE {role} WITH LOGIN REPLICATION NOSUPERUSER "
                              "as one, then rerun `cdclake source init`")
        _set_password(conn, role, password)
        return
    try:
        for statement in role_statements(flavour, role, password, row is not None):
            conn.execute(statement)
    except psycopg.errors.InsufficientPrivilege as exc:
        raise SourceError(f"cannot create role {role}: {_one_line(exc)}; have a superuser run CREATE ROLE {role} "
                          "WITH LOGIN REPLICATION, then rerun `cdclake source init` (it sets the password); "
                          "`cdclake source check` lists what else is missing") from exc
    if row is None:
        how = f"LOGIN, member of {rds.REPLICATION_ROLE}" if flavour == RDS else "LOGIN REPLICATION"
        report.created.append(f"role {role} ({how}, not superuser)")


def _set_password(conn: psycopg.Connection, role: str, password: str) -> None:
    try:
        conn.execute(sql.SQL("ALTER ROLE {} WITH LOGIN PASSWORD {}").format(sql.Identifier(role),
                                                                            sql.Literal(password)))
        return
    except psycopg.errors.InsufficientPrivilege:
        pass
    if not can_log_in(conn, role, password):
        raise SourceError(f"cannot set the password of role {role} (before PostgreSQL 16 only a superuser may alter "
                          "a REPLICATION role), and the password in the secrets file does not log in: write the "
                          "role's password there as password=... (see `cdclake source check`), or have a superuser "
                          f"ALTER ROLE {role} PASSWORD to the one in that file; then rerun `cdclake source init`")


def can_log_in(conn: psycopg.Connection, role: str, password: str) -> bool:
    """Whether ``role`` logs in to this connection's database with ``password``."""
    info = conn.info
    try:
        psycopg.connect(host=info.host, port=info.port, dbname=info.dbname, user=role, password=password,
                        connect_timeout=5).close()
        return True
    except psycopg.OperationalError:
        return False


def grants(database: str, tables: list[TableId], cdc_schema: str) -> list[tuple[str, str, str]]:
    """What the capture role is granted, as (privileges, kind, object): ``source init`` grants
    them, ``source check`` looks for them, ``source drop`` revokes them."""
    out = [("CONNECT", "database", database)]
    out += [("USAGE", "schema", schema) for schema in sorted({t.schema for t in tables})]
    # Debezium writes the heartbeat (heartbeat.action.query) and incremental-snapshot
    # watermarks into the signal table; nothing else is writable.
    writes = {TableId(cdc_schema, HEARTBEAT_TABLE): "INSERT, UPDATE",
              TableId(cdc_schema, SIGNAL_TABLE): "INSERT, UPDATE, DELETE"}
    out += [("SELECT", "table", table) for table in tables]
    out += [(rights, "table", table) for table, rights in writes.items()]
    return out


def grant_statements(role: str, database: str, tables: list[TableId], cdc_schema: str,
                     revoke: bool = False) -> list[sql.Composed]:
    verb, to = ("REVOKE", "FROM") if revoke else ("GRANT", "TO")
    statements = []
    for privileges, kind, target in grants(database, tables, cdc_schema):
        name = sql.Identifier(target.schema, target.name) if kind == "table" else sql.Identifier(target)
        statements.append(sql.SQL("{} {} ON {} {} {} {}").format(
            sql.SQL(verb), sql.SQL(privileges), sql.SQL(kind.upper() if kind != "table" else "TABLE"), name,
            sql.SQL(to), sql.Identifier(role)))
    return statements


def _grant(conn: psycopg.Connection, database: str, role: str, tables: list[TableId], cdc_schema: str) -> None:
    for statement in grant_statements(role, database, tables, cdc_schema):
        conn.execute(statement)


def _ensure_publication(conn: psycopg.Connection, name: str, tables: list[TableId], report: InitReport) -> None:
    table_list = sql.SQL(", ").join(sql.Identifier(t.schema, t.name) for t in tables)
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
