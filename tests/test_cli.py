"""The CLI edge: domain errors become one line and an exit code; --debug shows the traceback."""

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from cdclake.cli import main
from cdclake.errors import ExitCode


def _cdclake(*args, cwd):
    return subprocess.run([sys.executable, "-m", "cdclake", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=60)


def test_malformed_config_is_one_line_and_exit_code_2(tmp_path):
    (tmp_path / "pipeline.yaml").write_text("kafka:\n  nodez: 3\n")
    result = _cdclake("status", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: pipeline.yaml: kafka.nodez: unknown key; did you mean 'nodes'?"]
    assert "Traceback" not in result.stderr


def test_debug_shows_the_traceback(tmp_path):
    (tmp_path / "pipeline.yaml").write_text("kafka: [1, 2\n")
    result = _cdclake("--debug", "status", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" in result.stderr and "invalid YAML" in result.stderr


def test_json_output_of_an_error(tmp_path):
    result = _cdclake("--output", "json", "status", cwd=tmp_path)
    assert result.returncode == 2
    assert '"error": "ConfigError"' in result.stdout and "no such config file" in result.stdout


# In-process runs of the entry point (cdclake.cli:main): fast, and engines can be fenced off.

TABLES = ["users", "sales.orders"]
KNOWN = "configured tables (source.tables): public.users, sales.orders"


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def cdclake(tmp_path, monkeypatch, capsys):
    """``cdclake(*args)`` runs the CLI in tmp_path on a two-table config; no engine may start."""
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump({"source": {"tables": TABLES}}))
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("CDCLAKE__")]:
        monkeypatch.delenv(name)
    _fence_engines(monkeypatch)

    def run(*args: str) -> Result:
        monkeypatch.setattr(sys, "argv", ["cdclake", *args])
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def _fence_engines(monkeypatch) -> None:
    """Spark, Kafka and PostgreSQL must not be touched by a command that fails on its arguments."""
    import cdclake.lakehouse.runner
    import cdclake.lakehouse.spark
    import cdclake.source.connection

    def started(*args, **kwargs):
        raise AssertionError("an engine was started before the arguments were checked")

    monkeypatch.setattr(cdclake.lakehouse.spark, "session", started)
    monkeypatch.setattr(cdclake.lakehouse.runner, "topic_partitions", started)
    monkeypatch.setattr(cdclake.source.connection, "connect", started)


def _one_line_error(result: Result) -> str:
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.err, result.err
    return lines[0]


def test_global_options_after_the_verb(cdclake, tmp_path):
    (tmp_path / "other.yaml").write_text("kafka:\n  nodez: 3\n")
    result = cdclake("status", "--output", "json", "-c", "other.yaml")
    assert result.code == ExitCode.CONFIG
    assert json.loads(result.out)["message"] == "other.yaml: kafka.nodez: unknown key; did you mean 'nodes'?"
    assert cdclake("status", "--output=json", "--config=missing.yaml").code == ExitCode.CONFIG


def test_debug_after_the_verb_shows_the_traceback(cdclake):
    result = cdclake("status", "-c", "missing.yaml", "--debug")
    assert result.code == ExitCode.CONFIG and "Traceback" in result.err and "no such config file" in result.err


def test_sql_takes_the_global_output(cdclake, monkeypatch):
    import cdclake.query.engines as engines

    monkeypatch.setattr(engines, "run_sql", lambda plan, statement, engine: engines.QueryResult(["n"], [(1,)]))
    assert cdclake("sql", "SELECT 1 AS n", "--output", "csv").out.splitlines() == ["n", "1"]
    assert json.loads(cdclake("--output", "json", "sql", "SELECT 1 AS n").out) == [{"n": 1}]


def test_csv_is_for_sql_only(cdclake):
    result = cdclake("status", "--output", "csv")
    assert result.code == ExitCode.USAGE and "--output csv is for `cdclake sql`" in result.err


@pytest.mark.parametrize("args", [
    ["run", "bronze", "-t", "no_such_tbl"],
    ["run", "all", "-t", "users", "-t", "orders"],  # orders lives in schema sales
    ["rebuild", "silver", "no_such_tbl"],
    ["verify", "no_such_tbl"],
    ["maintain", "--dry-run", "-t", "silver_users"],  # Iceberg names are not table names
    ["connector", "snapshot", "public.no_such_tbl"],
])
def test_unknown_table_is_a_config_error_listing_the_tables(cdclake, args):
    result = cdclake(*args)
    assert result.code == ExitCode.CONFIG
    assert KNOWN in _one_line_error(result)


def test_job_script_takes_the_same_table_names(tmp_path, monkeypatch, capsys):
    from cdclake.lakehouse.jobs import run as job

    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump({"source": {"tables": TABLES}}))
    _fence_engines(monkeypatch)
    code = job.main(["--config", str(tmp_path / "pipeline.yaml"), "--tables", "users,no_such_tbl"])
    assert code == ExitCode.CONFIG and "unknown table 'no_such_tbl'" in capsys.readouterr().err


def test_table_names_resolve_to_the_source_spelling():
    from cdclake.config.models import SourceConfig

    source = SourceConfig(tables=TABLES)
    assert source.resolve_table("users") == "public.users" == source.resolve_table("public.users")
    assert source.resolve_table("sales.orders").schema == "sales"


def test_each_area_has_its_own_exit_code():
    from cdclake.broker.exceptions import BrokerError
    from cdclake.capture.exceptions import CaptureError
    from cdclake.config.exceptions import ConfigError
    from cdclake.errors import CdclakeError, NotInstalledError
    from cdclake.health.pipeline import HealthCheckError
    from cdclake.lakehouse.exceptions import LakehouseError
    from cdclake.orchestration.exceptions import OrchestrationError
    from cdclake.query.exceptions import QueryError
    from cdclake.source.exceptions import SourceError
    from cdclake.stack.exceptions import StackError
    from cdclake.stream.exceptions import StreamError
    from cdclake.verify.exceptions import VerifyError

    areas = [CdclakeError, ConfigError, NotInstalledError, StackError, BrokerError, LakehouseError, CaptureError,
             QueryError, SourceError, StreamError, VerifyError, HealthCheckError, OrchestrationError]
    codes = [area.exit_code for area in areas]
    assert len(set(codes)) == len(codes) and all(isinstance(c, ExitCode) for c in codes)


def test_readme_documents_every_exit_code():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    documented = {int(code): name for code, name in re.findall(r"^\| (\d+) \| `(\w+)` \|", readme, re.MULTILINE)}
    assert documented == {code.value: code.name for code in ExitCode}


def test_stray_override_variable_is_named(cdclake, monkeypatch):
    monkeypatch.setenv("CDCLAKE__KAFKA__NODEZ", "3")
    result = cdclake("status")
    assert result.code == ExitCode.CONFIG
    assert "environment variable CDCLAKE__KAFKA__NODEZ" in _one_line_error(result)


def test_dsn_naming_another_database_is_one_line(cdclake, tmp_path):
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(
        {"source": {"dsn": "postgresql://admin@db.example:5432/shop", "database": "cdc_demo", "tables": TABLES}}))
    result = cdclake("source", "init")
    assert result.code == ExitCode.CONFIG
    assert "source.dsn names database 'shop' but source.database is 'cdc_demo'" in _one_line_error(result)


def test_missing_config_file_is_one_line(cdclake):
    result = cdclake("-c", "nowhere.yaml", "up")
    assert result.code == ExitCode.CONFIG and "pass -c/--config PATH" in _one_line_error(result)


def test_down_goes_on_with_a_bad_table_in_the_config(cdclake, tmp_path):
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump({"source": {"tables": ["bad-name"]}}))
    result = cdclake("down")
    assert result.code == 0 and "nothing was running" in result.out
    assert "bad-name" in result.err and "ignored" in result.err


@pytest.mark.parametrize("verb", ["load", "demo"])
def test_workload_flags_and_defaults_are_shared_and_shown(cdclake, verb):
    out = cdclake(verb, "--help").out
    for flag, default in (("--rate", "200.0"), ("--duration", "30.0"), ("--seed", "42")):
        assert re.search(rf"{flag} \w+.*?\[default: {re.escape(default)}\]", out, re.DOTALL), (flag, out)


def test_setup_installs_airflow_only_when_asked(cdclake, monkeypatch):
    import cdclake.install.airflow as airflow_install
    import cdclake.install.setup as setup

    monkeypatch.setattr(setup, "ensure_postgres", lambda progress: "present")
    monkeypatch.setattr(setup.jvm, "java_bin", lambda: "java")
    monkeypatch.setattr(setup.jvm, "resolve", lambda engine, progress: False)
    monkeypatch.setattr(setup, "ensure_python_extras", lambda progress: "present")
    monkeypatch.setattr(airflow_install, "ensure_airflow", lambda progress: "installed")
    assert json.loads(cdclake("setup", "--output", "json").out)["airflow"].startswith("skipped")
    assert json.loads(cdclake("setup", "--airflow", "--output", "json").out)["airflow"] == "installed"


@pytest.mark.parametrize("args", [["status"], ["connector", "snapshot"], ["sql"]])
def test_every_help_names_the_global_options(cdclake, args):
    out = " ".join(cdclake(*args, "--help").out.split())
    assert "Global options, before or after the command: -c/--config PATH" in out
