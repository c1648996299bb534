"""``cdclake source check``: what the source lacks for capture, all at once, changing nothing.

Every check is a read of PostgreSQL's catalog (``pg_settings``, ``pg_roles``,
``pg_publication_tables``, ``pg_replication_slots``, ``has_*_privilege``) and yields one
:class:`Finding`: what was found and, when it is not ready, the fix and who applies it
(``source init``, the database owner, a superuser, or a server restart).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from cdclake.config import Pipeline
from cdclake.source import connection, rds
from cdclake.source.exceptions import SourceError
from cdclake.source.prepare import (
    HEARTBEAT_TABLE, RDS, SIGNAL_TABLE, can_log_in, capture_password, capture_tables, grants, secrets_file,
    server_facts, setting_problems,
)

INIT = "`cdclake source init`"


@dataclass
class Finding:
    check: str
    ok: bool
    detail: str
    fix: str = ""
    by: str = ""  # who applies the fix: source init, owner, superuser, restart


@dataclass
class CheckReport:
    database: str
    user: str
    flavour: str = ""
    findings: list[Finding] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return all(f.ok for f in self.findings)

    def as_dict(self) -> dict:
        return {"database": self.database, "user": self.user, "flavour": self.flavour, "ready": self.ready,
                "findings": [asdict(f) for f in self.findings]}


class SourceNotReadyError(SourceError):
    """``source check`` found something capture needs missing."""

    def __init__(self, report: CheckReport):
        missing = [f.check for f in report.findings if not f.ok]
        super().__init__(f"source {report.database} is not ready for capture: {len(missing)} to fix "
                         f"({', '.join(missing)}); apply the fixes listed above")
        self.report = report


def check_source(pipeline: Pipeline) -> CheckReport:
    """Every setting, privilege and object capture needs, read-only.

    Raises:
        SourceError: the database cannot be reached.
    """
    with connection.connect_or_explain(pipeline, autocommit=True) as conn:
        conn.read_only = True
        user = conn.execute("SELECT current_user").fetchone()[0]
        report = CheckReport(conn.info.dbname, user)
        facts = server_facts(conn)
        report.flavour = facts.flavour
        for check in (_settings, _administrator, _tables, _cdc_tables, _capture_role, _publication, _slot):
            report.findings += check(conn, pipeline, facts)
    return report


def _settings(conn, pipeline: Pipeline, facts) -> list[Finding]:
    problems = setting_problems(facts, pipeline)
    shown = ", ".join(f"{k}={v}" for k, v in sorted(facts.settings.items()))
    if not problems:
        return [Finding("server settings", True, shown)]
    where = "" if facts.flavour == RDS else " in postgresql.conf (or ALTER SYSTEM SET ...), then restart PostgreSQL"
    return [Finding("server settings", False, problem.split(";")[0], problem.split("; ", 1)[1] + where,
                    "superuser + restart") for problem in problems]


def _administrator(conn, pipeline: Pipeline, facts) -> list[Finding]:
    """What the connecting user needs for ``source init`` to create and grant everything."""
    src = pipeline.source
    user, superuser, createrole, replication = conn.execute(
        "SELECT rolname, rolsuper, rolcreaterole, rolreplication FROM pg_roles WHERE rolname = current_user").fetchone()
    if superuser:
        return [Finding(f"administrator {user}", True, "superuser: source init can do everything")]
    found = []
    schema_exists = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (src.cdc_schema,)).fetchone()
    if not schema_exists and not _has(conn, "has_database_privilege(current_user, current_database(), 'CREATE')"):
        found.append(Finding(f"administrator {user}", False, f"cannot create schema {src.cdc_schema}",
                             f"GRANT CREATE ON DATABASE {conn.info.dbname} TO {user}", "owner"))
    role = _role(conn, src.capture_user)
    # PostgreSQL 16 lets CREATEROLE + REPLICATION create a replication role; before, only a superuser.
    may_create = conn.info.server_version >= 160000 and createrole and replication
    if role is None and facts.flavour != RDS and not may_create:
        found.append(Finding(f"administrator {user}", False,
                             f"not a superuser, so it cannot create role {src.capture_user} WITH REPLICATION",
                             f"as a superuser: CREATE ROLE {src.capture_user} WITH LOGIN REPLICATION; "
                             f"{INIT} then sets its password", "superuser"))
    elif not createrole:
        found.append(Finding(f"administrator {user}", False,
                             f"no CREATEROLE, so it cannot set the password of role {src.capture_user}",
                             f"as a superuser: ALTER ROLE {user} CREATEROLE", "superuser"))
    not_owned = [t for t in pipeline.source.tables if _exists(conn, t) and not _has(
        conn, "pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = %s::regclass), 'USAGE')", t)]
    if not_owned:
        found.append(Finding(f"administrator {user}", False, f"does not own {', '.join(not_owned)} (a publication "
                             "needs the owner)", f"run source init as their owner, or ALTER TABLE {not_owned[0]} "
                             f"OWNER TO {user}", "owner"))
    return found or [Finding(f"administrator {user}", True, "owns the tables and can create what init needs"
                             + (" (REPLICATION)" if replication else ""))]


def _tables(conn, pipeline: Pipeline, facts) -> list[Finding]:
    found = []
    for table in pipeline.source.tables:
        row = conn.execute(
            """SELECT c.relreplident, EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)
               FROM pg_class c WHERE c.oid = to_regclass(%s) AND c.relkind IN ('r', 'p')""", (table,)).fetchone()
        found.append(_table_finding(table, row, table in pipeline.source.key_columns))
    return found


def _table_finding(table: str, row: tuple | None, keyed_in_config: bool) -> Finding:
    name = f"table {table}"
    if row is None:
        return Finding(name, False, "does not exist", "create it, or remove it from source.tables", "you")
    identity, has_pk = row
    identities = {"d": "default (primary key)", "f": "full", "i": "index", "n": "nothing"}
    detail = f"replica identity {identities[identity]}" + (", primary key" if has_pk else ", no primary key")
    if identity == "n":
        return Finding(name, False, detail, f"ALTER TABLE {table} REPLICA IDENTITY DEFAULT", "owner")
    if has_pk or identity == "i":
        return Finding(name, True, detail)
    if not keyed_in_config:
        return Finding(name, False, detail, f"ALTER TABLE {table} ADD PRIMARY KEY (...), or name a unique column "
                       f"set in source.key_columns and run ALTER TABLE {table} REPLICA IDENTITY FULL", "owner")
    if identity != "f":
        return Finding(name, False, detail + " (keyed by source.key_columns)",
                       f"ALTER TABLE {table} REPLICA IDENTITY FULL", "owner")
    return Finding(name, True, detail + ", keyed by source.key_columns")


def _cdc_tables(conn, pipeline: Pipeline, facts) -> list[Finding]:
    schema = pipeline.source.cdc_schema
    missing = [f"{schema}.{t}" for t in (HEARTBEAT_TABLE, SIGNAL_TABLE) if not _exists(conn, f"{schema}.{t}")]
    if missing:
        return [Finding("heartbeat and signal tables", False, f"missing: {', '.join(missing)}", INIT, "source init")]
    return [Finding("heartbeat and signal tables", True, f"{schema}.{HEARTBEAT_TABLE}, {schema}.{SIGNAL_TABLE}")]


def _capture_role(conn, pipeline: Pipeline, facts) -> list[Finding]:
    src = pipeline.source
    name = f"capture role {src.capture_user}"
    role = _role(conn, src.capture_user)
    if role is None:
        return [Finding(name, False, "does not exist", INIT + " creates it (or a superuser, see administrator)",
                        "source init")]
    can_login, replication, superuser = role
    found = []
    if facts.flavour == RDS and not _has(conn, "pg_has_role(%s, %s, 'MEMBER')", src.capture_user,
                                         rds.REPLICATION_ROLE):
        found.append(Finding(name, False, f"not a member of {rds.REPLICATION_ROLE}", INIT, "source init"))
    elif facts.flavour != RDS and not replication:
        found.append(Finding(name, False, "no REPLICATION attribute",
                             f"as a superuser: ALTER ROLE {src.capture_user} REPLICATION", "superuser"))
    if not can_login:
        found.append(Finding(name, False, "cannot log in", INIT, "source init"))
    if not secrets_file(pipeline).exists():
        found.append(Finding(name, False, f"no password in {secrets_file(pipeline)} for Kafka Connect",
                             INIT + " generates it and sets it on the role", "source init"))
    elif can_login and not can_log_in(conn, src.capture_user, capture_password(pipeline)):
        found.append(Finding(name, False, f"the password in {secrets_file(pipeline)} does not log in",
                             INIT + " sets it; before PostgreSQL 16, if a superuser made the role, write its password "
                             "there as password=...", "source init"))
    missing = [f"{privilege} on {target}" for privilege, kind, target in grants(
        conn.info.dbname, capture_tables(pipeline), src.cdc_schema)
        if (kind != "table" or _exists(conn, target)) and not _granted(conn, src.capture_user, privilege, kind, target)]
    if missing:
        found.append(Finding(name, False, f"lacks {'; '.join(missing)}", INIT + " grants them", "source init"))
    extra = " (superuser: more than capture needs)" if superuser else ""
    return found or [Finding(name, True, "LOGIN, " + ("rds_replication" if facts.flavour == RDS else "REPLICATION")
                             + ", CONNECT, USAGE, SELECT on the captured tables" + extra)]


def _publication(conn, pipeline: Pipeline, facts) -> list[Finding]:
    src = pipeline.source
    name = f"publication {src.publication}"
    row = conn.execute("SELECT pubviaroot, pubinsert AND pubupdate AND pubdelete AND pubtruncate FROM pg_publication "
                       "WHERE pubname = %s", (src.publication,)).fetchone()
    if row is None:
        return [Finding(name, False, "does not exist", INIT + " creates it over the captured tables", "source init")]
    published = {f"{s}.{t}" for s, t in conn.execute(
        "SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = %s", (src.publication,))}
    wanted = set(capture_tables(pipeline))
    problems = []
    if wanted - published:
        problems.append(f"misses {', '.join(sorted(wanted - published))}")
    if published - wanted:
        problems.append(f"also publishes {', '.join(sorted(published - wanted))}")
    if not row[0]:
        problems.append("publish_via_partition_root is off")
    if not row[1]:
        problems.append("does not publish every operation (insert, update, delete, truncate)")
    if problems:
        return [Finding(name, False, "; ".join(problems), INIT + " sets it to exactly the captured tables",
                        "source init")]
    return [Finding(name, True, f"{len(published)} table(s), exactly the captured ones and cdclake's")]


def _slot(conn, pipeline: Pipeline, facts) -> list[Finding]:
    slot = pipeline.source.slot
    name = f"replication slot {slot}"
    row = conn.execute("SELECT plugin, database, active, wal_status FROM pg_replication_slots WHERE slot_name = %s",
                       (slot,)).fetchone()
    if row is None:
        used, limit = conn.execute("SELECT count(*), current_setting('max_replication_slots')::int "
                                   "FROM pg_replication_slots").fetchone()
        if used >= limit:
            return [Finding(name, False, f"not created yet, and all {limit} slots are in use",
                            "drop an unused slot (pg_drop_replication_slot) or raise max_replication_slots",
                            "superuser")]
        return [Finding(name, True, "not created yet: Debezium creates it when the connector starts "
                                    "(`cdclake connector apply`)")]
    plugin, database, active, wal_status = row
    if plugin != "pgoutput" or database != conn.info.dbname:
        return [Finding(name, False, f"exists for {plugin} on database {database}",
                        f"SELECT pg_drop_replication_slot('{slot}'), or set another source.slot", "superuser")]
    if wal_status == "lost":
        return [Finding(name, False, "invalidated: its WAL is gone (wal_status=lost)", "`cdclake recover`", "you")]
    return [Finding(name, True, f"pgoutput, {'active' if active else 'inactive'}, wal_status={wal_status}")]


def _role(conn, name: str) -> tuple | None:
    return conn.execute("SELECT rolcanlogin, rolreplication, rolsuper FROM pg_roles WHERE rolname = %s",
                        (name,)).fetchone()


def _exists(conn, table: str) -> bool:
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()[0]


def _has(conn, expression: str, *args) -> bool:
    return bool(conn.execute(f"SELECT {expression}", args).fetchone()[0])


def _granted(conn, role: str, privilege: str, kind: str, target: str) -> bool:
    function = {"database": "has_database_privilege", "schema": "has_schema_privilege",
                "table": "has_table_privilege"}[kind]
    return all(_has(conn, f"{function}(%s, %s, %s)", role, target, p.strip()) for p in privilege.split(","))
