"""source init on Amazon RDS / Aurora: detection, the printed parameter-group fix, the role."""

from __future__ import annotations

import pytest
from psycopg import sql

from cdclake.config import Pipeline
from cdclake.source.exceptions import SourceSettingError
from cdclake.source.prepare import RDS, SELF_MANAGED, InitReport, ServerFacts, _ensure_role, check_settings
from cdclake.source.prepare import role_statements, setting_problems, server_facts
from cdclake.source.rds import parameter_group_command, parameters, size_mb
from tests.conftest import TEST_PG_PORT, running_postgres

READY = {"wal_level": "logical", "max_replication_slots": "10", "max_wal_senders": "10"}


def test_rds_without_logical_replication_prints_the_parameter_group_change():
    facts = ServerFacts(RDS, {**READY, "wal_level": "replica", "rds.logical_replication": "off"})
    [problem] = setting_problems(facts, Pipeline())
    assert problem.startswith("rds.logical_replication=off; in the DB parameter group (ALTER SYSTEM is not allowed")
    assert ("aws rds modify-db-parameter-group --db-parameter-group-name <your-parameter-group> --parameters "
            "ParameterName=max_replication_slots,ParameterValue=10,ApplyMethod=pending-reboot") in problem
    assert "ParameterName=rds.logical_replication,ParameterValue=1,ApplyMethod=pending-reboot" in problem
    assert "ParameterName=max_slot_wal_keep_size,ParameterValue=10240" in problem
    assert "aws rds reboot-db-instance" in problem


def test_rds_parameter_set_but_not_rebooted_says_reboot():
    facts = ServerFacts(RDS, {**READY, "wal_level": "replica", "rds.logical_replication": "on"})
    [problem] = setting_problems(facts, Pipeline())
    assert "pending reboot" in problem and "reboot-db-instance" in problem


def test_ready_servers_have_no_problems():
    assert setting_problems(ServerFacts(RDS, {**READY, "rds.logical_replication": "1"}), Pipeline()) == []
    assert setting_problems(ServerFacts(SELF_MANAGED, READY), Pipeline()) == []


def test_self_managed_advice_is_unchanged():
    facts = ServerFacts(SELF_MANAGED, {**READY, "wal_level": "replica"})
    assert setting_problems(facts, Pipeline()) == ["wal_level=replica; set wal_level=logical"]


def test_rds_role_gets_rds_replication_not_the_attribute():
    rds = [s.as_string(None) for s in role_statements(RDS, "cdc", "pw", exists=False)]
    assert rds == ['CREATE ROLE "cdc" WITH LOGIN NOREPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD \'pw\'',
                   'GRANT "rds_replication" TO "cdc"']
    plain = [s.as_string(None) for s in role_statements(SELF_MANAGED, "cdc", "pw", exists=True)]
    assert plain == ['ALTER ROLE "cdc" WITH LOGIN REPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD \'pw\'']
    assert not any("ALTER SYSTEM" in s for s in rds + plain)


@pytest.mark.parametrize(("size", "mb"), [("10GB", 10240), ("512MB", 512), ("1TB", 1048576), ("2048kB", 2), ("64", 64)])
def test_size_mb(size, mb):
    assert size_mb(size) == mb


def test_parameters_follow_the_config():
    pipeline = Pipeline.model_validate({"source": {"max_slot_wal_keep_size": "2GB"}})
    assert parameters(pipeline)["max_slot_wal_keep_size"] == "2048"
    assert parameter_group_command({"a": "1"}, "pg").startswith(
        "aws rds modify-db-parameter-group --db-parameter-group-name pg --parameters "
        "ParameterName=a,ParameterValue=1,ApplyMethod=pending-reboot")


@pytest.fixture
def rds_like(stack_dir):
    """A real PostgreSQL that presents itself as RDS: rds.* settings and the rds_replication role."""
    conf = "wal_level = replica\nrds.logical_replication = off\nrds.extensions = 'pg_stat_statements'\n"
    with running_postgres(stack_dir, TEST_PG_PORT + 9, conf) as pg, pg.connect() as conn:
        conn.autocommit = True
        conn.execute("CREATE ROLE rds_replication NOLOGIN")
        yield conn


@pytest.mark.integration
def test_local_server_impersonating_rds(rds_like):
    assert server_facts(rds_like).flavour == RDS
    with pytest.raises(SourceSettingError) as err:
        check_settings(rds_like)
    assert "rds.logical_replication=off; in the DB parameter group" in str(err.value)
    assert "aws rds modify-db-parameter-group" in str(err.value)
    assert "postgresql.conf" not in str(err.value)
    role = "cdclake_rds_capture"
    _ensure_role(rds_like, RDS, role, "pw", InitReport("d", "p", [], role))
    member, replication = rds_like.execute(
        "SELECT pg_has_role(r.oid, 'rds_replication', 'MEMBER'), r.rolreplication FROM pg_roles r WHERE rolname = %s",
        (role,)).fetchone()
    assert member and not replication
    rds_like.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
