"""docs/your-database.md on the real stack: a second database owned by a non-superuser role,
taken from `source check` (not ready, every gap with its fix) through init, capture, the
lakehouse and `verify` (exact), then `source drop`, all through the CLI entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
import yaml
from psycopg import sql

from cdclake.errors import ExitCode
from cdclake.source import connection
from tests.conftest import TEST_PG_PORT, unique
from tests.lakehouse.conftest import wait_records

pytestmark = pytest.mark.integration
OWNER_PASSWORD, CAPTURE_PASSWORD = "owner-pw-not-secret", "capture-pw-not-secret"


def stack_server_version(stack) -> int:
    with connection.connect(stack) as conn:
        return conn.info.server_version


def cli(config: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CDCLAKE__")},
           "CDCLAKE__SOURCE__PASSWORD": OWNER_PASSWORD}
    result = subprocess.run([sys.executable, "-m", "cdclake", "-c", str(config), *args], capture_output=True,
                            text=True, timeout=900, env=env)
    if check:
        assert result.returncode == 0, f"{args}: {result.stderr}"
    return result


def findings(config: Path) -> tuple[int, dict[str, list[dict]]]:
    result = cli(config, "source", "check", "--output", "json", check=False)
    report = json.loads(result.stdout)
    by_check: dict[str, list[dict]] = {}
    for finding in report["findings"]:
        by_check.setdefault(finding["check"], []).append(finding)
    assert report["ready"] == (result.returncode == 0)
    return result.returncode, by_check


@pytest.fixture
def own_database(stack, tmp_path):
    """As the DBA (the stack's superuser): a login role that owns a new database and a catalog database."""
    tag = unique("yours")
    owner, database, catalog = f"own_{tag}", f"db_{tag}", f"cat_{tag}"
    with connection.connect(stack, autocommit=True) as dba:
        dba.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEROLE PASSWORD {}").format(
            sql.Identifier(owner), sql.Literal(OWNER_PASSWORD)))
        for name in (database, catalog):
            dba.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(owner)))
    yield tag, owner, database, catalog
    with connection.connect(stack, autocommit=True) as dba:
        dba.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                    "WHERE slot_name = %s AND NOT active", (f"slot_{tag}",))
        for name in (database, catalog):
            dba.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        for role in (f"dbz_{tag}", owner):
            dba.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def owner_connect(owner: str, database: str) -> psycopg.Connection:
    return psycopg.connect(host="127.0.0.1", port=TEST_PG_PORT, user=owner, password=OWNER_PASSWORD,
                           dbname=database, autocommit=True)


def write_config(tmp_path: Path, stack, tag: str, owner: str, database: str, catalog: str) -> Path:
    """The docs' pipeline.yaml: the existing database by DSN, this machine's Kafka and Connect."""
    doc = {
        "source": {"dsn": f"postgresql://{owner}@127.0.0.1:{TEST_PG_PORT}/{database}",
                   "tables": ["customers", "shop.orders"], "publication": f"pub_{tag}", "slot": f"slot_{tag}",
                   "capture_user": f"dbz_{tag}"},
        "kafka": {"bootstrap_servers": stack.kafka.bootstrap, "topic_prefix": f"cdc_{tag}", "partitions": 1},
        "connect": {"url": stack.connect.endpoint, "connector_name": f"conn_{tag}", "heartbeat_interval_ms": 1000},
        "lakehouse": {"catalog_database": catalog, "namespace": f"ns_{tag}"},
        "spark": {"master": "local[2]", "driver_memory": "1g"},
    }
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def wait_slot_inactive(stack, slot: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    with connection.connect(stack, autocommit=True) as dba:
        while dba.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s AND active", (slot,)).fetchone():
            if time.monotonic() > deadline:
                raise TimeoutError(f"slot {slot} still active after {timeout}s")
            time.sleep(0.5)


@pytest.mark.timeout(1800)  # a guard on a loaded machine, not a timed assertion
def test_your_database_from_check_to_verified_silver_and_back(stack, own_database, tmp_path):
    tag, owner, database, catalog = own_database
    with owner_connect(owner, database) as conn:
        conn.execute("CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, credit numeric(10,2))")
        conn.execute("CREATE SCHEMA shop")
        conn.execute("CREATE TABLE shop.orders (id int NOT NULL, customer_id int, amount numeric(10,2))")
        conn.execute("INSERT INTO customers SELECT g, 'c' || g, g * 1.5 FROM generate_series(1, 40) g")
        conn.execute("INSERT INTO shop.orders SELECT g, g % 40 + 1, g * 2.25 FROM generate_series(1, 90) g")
    config = write_config(tmp_path, stack, tag, owner, database, catalog)

    # 1. Check: not ready, and every gap at once, each with its fix.
    code, found = findings(config)
    assert code == ExitCode.SOURCE
    assert found["server settings"][0]["ok"]
    assert found["table public.customers"][0]["ok"]
    orders = found["table shop.orders"][0]
    assert not orders["ok"] and "no primary key" in orders["detail"] and "ADD PRIMARY KEY" in orders["fix"]
    admin = found[f"administrator {owner}"]
    assert [a["by"] for a in admin] == ["superuser"] and f"CREATE ROLE dbz_{tag} WITH LOGIN REPLICATION" in admin[0]["fix"]
    assert found[f"capture role dbz_{tag}"][0]["detail"] == "does not exist"
    assert found[f"publication pub_{tag}"][0]["detail"] == "does not exist"
    assert not found["heartbeat and signal tables"][0]["ok"]
    assert found[f"replication slot slot_{tag}"][0]["ok"]  # Debezium creates it later
    with connection.connect(stack, autocommit=True) as dba:  # check changed nothing
        assert not dba.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (f"dbz_{tag}",)).fetchone()

    # 2. The owner adds the key; init says the role needs a superuser; the DBA creates it.
    with owner_connect(owner, database) as conn:
        conn.execute("ALTER TABLE shop.orders ADD PRIMARY KEY (id)")
    refused = cli(config, "source", "init", check=False)
    assert refused.returncode == ExitCode.SOURCE and len(refused.stderr.strip().splitlines()) == 1
    assert f"have a superuser run CREATE ROLE dbz_{tag} WITH LOGIN REPLICATION" in refused.stderr
    with connection.connect(stack, autocommit=True) as dba:
        dba.execute(sql.SQL("CREATE ROLE {} WITH LOGIN REPLICATION PASSWORD {}").format(
            sql.Identifier(f"dbz_{tag}"), sql.Literal(CAPTURE_PASSWORD)))
    if stack_server_version(stack) < 160000:  # only a superuser may alter a REPLICATION role: hand over its password
        code, found = findings(config)
        assert "does not log in" in found[f"capture role dbz_{tag}"][0]["detail"]
        (tmp_path / ".cdclake" / "secrets" / "debezium.properties").write_text(f"password={CAPTURE_PASSWORD}\n")
    cli(config, "source", "init")
    code, found = findings(config)
    assert code == 0, [f for fs in found.values() for f in fs if not f["ok"]]
    with owner_connect(owner, database) as conn:  # exactly what the docs say is granted
        role = f"dbz_{tag}"
        assert conn.execute("SELECT rolreplication, rolsuper, rolcreaterole FROM pg_roles WHERE rolname = %s",
                            (role,)).fetchone() == (True, False, False)
        privileges = conn.execute(
            "SELECT has_table_privilege(%s, 'customers', 'SELECT'), has_table_privilege(%s, 'customers', 'INSERT'), "
            "has_table_privilege(%s, 'cdclake.heartbeat', 'UPDATE'), "
            "has_table_privilege(%s, 'cdclake.debezium_signal', 'DELETE')", (role,) * 4).fetchone()
        assert privileges == (True, False, True, True)

    # 3. Capture, lakehouse, verify: exact.
    cli(config, "connector", "apply")
    wait_records(stack, [f"cdc_{tag}.customers", f"cdc_{tag}.shop__orders"], at_least=130)
    with owner_connect(owner, database) as conn:
        conn.execute("UPDATE customers SET credit = credit + 1 WHERE id % 3 = 0")
        conn.execute("DELETE FROM shop.orders WHERE id > 80")
    wait_records(stack, [f"cdc_{tag}.customers", f"cdc_{tag}.shop__orders"], at_least=130 + 13 + 10)
    cli(config, "run", "all")
    verified = json.loads(cli(config, "verify", "--no-gold", "--output", "json").stdout)
    assert verified["ok"] and [(t["table"], t["source_rows"], t["silver_rows"]) for t in verified["tables"]] == [
        ("public.customers", 40, 40), ("shop.orders", 80, 80)]

    # 4. Undo: the connector, then everything init made; the tables and rows stay.
    cli(config, "connector", "delete")
    wait_slot_inactive(stack, f"slot_{tag}")
    dropped = json.loads(cli(config, "source", "drop", "--yes", "--output", "json").stdout)["dropped"]
    assert dropped[:3] == [f"replication slot slot_{tag}", f"publication pub_{tag}", f"role dbz_{tag}"]
    code, found = findings(config)
    assert code == ExitCode.SOURCE and found[f"capture role dbz_{tag}"][0]["detail"] == "does not exist"
    with owner_connect(owner, database) as conn:
        assert conn.execute("SELECT count(*) FROM shop.orders").fetchone()[0] == 80
        assert not conn.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (f"slot_{tag}",)).fetchone()
