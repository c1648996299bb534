"""Bad input gets a clear refusal that names the fix and never echoes a secret."""

from __future__ import annotations

import pytest
from psycopg import sql

from cdclake.capture import service
from cdclake.capture.exceptions import ConnectorInvalidError
from cdclake.config import load
from cdclake.source import connection
from cdclake.source.exceptions import MissingKeyError, SourceError, SourceSettingError
from cdclake.source.prepare import capture_password, check_settings, init_source, secrets_file
from tests.conftest import (TEST_PG_PORT, base_config, capture_pipeline, drop_capture, running_postgres, unique,
                            write_config)

pytestmark = pytest.mark.integration


def test_table_without_primary_key_needs_replica_identity_full_and_then_is_accepted(stack):
    schema = unique("nopk")
    pipeline = capture_pipeline(stack, schema, ["audit", "fine"])
    table = sql.SQL("{}.audit").format(sql.Identifier(schema))
    with connection.connect(pipeline, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("CREATE TABLE {} (at timestamptz, what text)").format(table))
        conn.execute(sql.SQL("CREATE TABLE {}.fine (id int PRIMARY KEY)").format(sql.Identifier(schema)))
    try:
        for identity in ("DEFAULT", "NOTHING"):
            with connection.connect(pipeline, autocommit=True) as conn:
                conn.execute(sql.SQL("ALTER TABLE {} REPLICA IDENTITY " + identity).format(table))
            with pytest.raises(MissingKeyError) as err:
                init_source(pipeline, progress=lambda m: None)
            assert err.value.tables == [f"{schema}.audit"]
            message = str(err.value)
            assert f"no primary key and REPLICA IDENTITY {identity}" in message
            assert f"ALTER TABLE {schema}.audit REPLICA IDENTITY FULL" in message and "multiset" in message
            assert "primary key" in message and "source.key_columns" in message
        keyed = pipeline.model_copy(update={"source": pipeline.source.model_copy(
            update={"key_columns": {f"{schema}.audit": ["at", "what"]}})})
        with pytest.raises(MissingKeyError, match="REPLICA IDENTITY FULL"):  # key columns alone are not enough
            init_source(keyed, progress=lambda m: None)
        with connection.connect(pipeline, autocommit=True) as conn:
            conn.execute(sql.SQL("ALTER TABLE {} REPLICA IDENTITY FULL").format(table))
        init_source(pipeline, progress=lambda m: None)  # the fix the message gives works: a keyless multiset
        init_source(keyed, progress=lambda m: None)  # and so does naming a unique column set
    finally:
        drop_capture(pipeline)


def test_wrong_wal_level_says_what_to_set_and_restart(stack_dir):
    """A real PostgreSQL with wal_level=replica."""
    with running_postgres(stack_dir, TEST_PG_PORT + 7, "wal_level = replica\n") as pg:
        with pg.connect() as conn, pytest.raises(SourceSettingError) as err:
            check_settings(conn)
        assert "wal_level=replica; set wal_level=logical" in str(err.value)
        assert "restart the server" in str(err.value)


def test_bad_admin_password_is_clear_and_not_echoed(stack, stack_dir):
    doc = base_config(source={"managed": None, "port": 5432,
                              "dsn": f"postgresql://cdclake@127.0.0.1:{TEST_PG_PORT}/cdc_test", "tables": []})
    pipeline = load(write_config(stack_dir, doc), environ={"CDCLAKE__SOURCE__PASSWORD": "wrong-Pa55word"})
    with pytest.raises(SourceError) as err:
        init_source(pipeline, progress=lambda m: None)
    assert "password authentication failed" in str(err.value)
    assert "CDCLAKE__SOURCE__PASSWORD" in str(err.value)
    assert "wrong-Pa55word" not in str(err.value)


def _one_table(stack, prefix: str):
    """A per-test schema holding one table ``t`` with a primary key, and its pipeline."""
    schema = unique(prefix)
    pipeline = capture_pipeline(stack, schema, ["t"])
    with connection.connect(pipeline, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("CREATE TABLE {}.t (id int PRIMARY KEY)").format(sql.Identifier(schema)))
    return pipeline, schema


def test_bad_capture_password_is_rejected_by_validation_without_echo(stack):
    pipeline, schema = _one_table(stack, "badpw")
    init_source(pipeline, progress=lambda m: None)
    real = capture_password(pipeline)
    wrong_file = secrets_file(pipeline).with_name(f"{schema}.properties")
    wrong_file.write_text("password=not-the-Real-one\n")
    bad = pipeline.model_copy(update={"connect": pipeline.connect.model_copy(update={"secrets_file": str(wrong_file)})})
    try:
        with pytest.raises(ConnectorInvalidError) as err:
            service.apply(bad, progress=lambda m: None)
        message = str(err.value)
        assert "password authentication failed" in message or "authentication" in message.lower()
        assert "not-the-Real-one" not in message and real not in message
        assert service.client(bad).config(bad.connect.connector_name) is None  # nothing was created
    finally:
        wrong_file.unlink()
        drop_capture(pipeline)


def test_capture_role_is_least_privilege(stack):
    pipeline, schema = _one_table(stack, "priv")
    try:
        init_source(pipeline, progress=lambda m: None)
        init_source(pipeline, progress=lambda m: None)  # idempotent
        with connection.connect(pipeline) as conn:
            row = conn.execute("SELECT rolsuper, rolreplication, rolcanlogin FROM pg_roles WHERE rolname = %s",
                               (pipeline.source.capture_user,)).fetchone()
            assert row == (False, True, True)
            tables = conn.execute("SELECT schemaname || '.' || tablename FROM pg_publication_tables "
                                  "WHERE pubname = %s ORDER BY 1", (pipeline.source.publication,)).fetchall()
            assert [t[0] for t in tables] == sorted([f"{schema}.t", f"cdc_{schema}.debezium_signal",
                                                     f"cdc_{schema}.heartbeat"])
            can_insert = conn.execute("SELECT has_table_privilege(%s, %s, 'INSERT')",
                                      (pipeline.source.capture_user, f"{schema}.t")).fetchone()[0]
            assert can_insert is False
    finally:
        drop_capture(pipeline)
