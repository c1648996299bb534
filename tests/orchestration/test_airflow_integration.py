"""The DAGs in a real Apache Airflow 3 (its own virtualenv) against the real local stack.

Airflow runs in ``.venv-airflow``, so every Airflow call goes through ``airflow_helper.py``
in a child process; the tests themselves (and the Spark jobs) use the project's venv.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from psycopg import sql

from cdclake.capture import service
from cdclake.install.airflow import REPO_ROOT, airflow_bin, ensure_airflow, venv_python
from cdclake.lakehouse.configuration import plan_from_pipeline
from cdclake.source import connection
from cdclake.source.demo import create_demo
from cdclake.source.workload import Workload
from cdclake.verify.verify import verify
from tests.conftest import drop_capture, searchable_dir, unique
from tests.lakehouse.conftest import lake_pipeline, start_capture, wait_captured, write_pipeline

pytestmark = pytest.mark.integration
HELPER = Path(__file__).with_name("airflow_helper.py")
CHECKS = ["check_kafka_health", "check_debezium", "check_replication_slot"]
JOBS = ["bronze", "silver", "gold", "verify"]
QUIET = lambda message: None  # noqa: E731


@pytest.fixture(scope="session")
def airflow_env():
    """Airflow's venv (installed by setup; a no-op here) and a migrated SQLite metadata DB."""
    ensure_airflow(progress=print)
    home = searchable_dir("airflow")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CDCLAKE__", "AIRFLOW__", "VIRTUAL_ENV"))}
    env.update({
        "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "CDCLAKE_JOB_PYTHON": sys.executable,
    })
    subprocess.run([str(airflow_bin()), "db", "migrate"], env=env, check=True, capture_output=True, timeout=600)
    yield env
    shutil.rmtree(home, ignore_errors=True)


def helper(env: dict, *args: str, timeout: float = 600, **extra_env: str) -> dict:
    result = subprocess.run([str(venv_python()), str(HELPER), *args], env={**env, **extra_env},
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, (result.stdout[-3000:] + result.stderr[-5000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_both_dags_import_for_both_targets(airflow_env):
    for target in ("local", "aws"):
        bag = helper(airflow_env, "dagbag", str(REPO_ROOT / "dags"), CDCLAKE_CONFIG=str(REPO_ROOT / "pipeline.yaml"),
                     CDCLAKE__AIRFLOW__TARGET=target, CDCLAKE__AIRFLOW__EMAIL='["oncall@example.com"]')
        assert bag["import_errors"] == {}
        assert set(bag["dags"]) == {"self_managed_cdc_pipeline", "iceberg_maintenance"}
        pipeline_dag, maintenance = bag["dags"]["self_managed_cdc_pipeline"], bag["dags"]["iceberg_maintenance"]
        assert (pipeline_dag["catchup"], pipeline_dag["retries"]) == (False, 2)
        assert "@hourly" in pipeline_dag["schedule"] or "0 * * * *" in pipeline_dag["schedule"]
        assert "log_failure" in pipeline_dag["callbacks"]
        assert ("SmtpNotifier" in pipeline_dag["callbacks"]) == (target == "aws")  # e-mail on AWS only
        order = CHECKS + JOBS
        assert list(pipeline_dag["tasks"]) == order
        for upstream, task in zip(order, order[1:]):
            assert pipeline_dag["tasks"][task]["upstream"] == [upstream]
        kind = "GlueJobOperator" if target == "aws" else "PythonOperator"
        assert {pipeline_dag["tasks"][j]["type"] for j in JOBS} == {kind}
        assert {pipeline_dag["tasks"][c]["type"] for c in CHECKS} == {"PythonOperator"}
        assert maintenance["tasks"]["maintenance"]["type"] == kind
        if target == "aws":
            bronze = pipeline_dag["tasks"]["bronze"]
            assert bronze["script_location"].endswith("/run.py") and bronze["job_name"] == "cdc-bronze-processor"
            assert bronze["script_args"]["--layer"] == "bronze"
            assert maintenance["tasks"]["maintenance"]["script_location"].endswith("/maintain.py")


@pytest.fixture(scope="module")
def captured(stack):
    """The demo database captured into its own topics and namespace, with a finished workload."""
    tag = unique("af")
    pipeline = lake_pipeline(stack, tag, ["departments", "users", "products", "orders"])
    with connection.connect(pipeline, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(tag)))
    try:
        create_demo(pipeline, seed=13, users=40, products=15, orders=80, schema=tag)
        start_capture(pipeline)
        Workload(pipeline, seed=4, schema=tag).run(rate=400, ops=300, progress=QUIET)
        wait_captured(pipeline, plan_from_pipeline(pipeline))
        yield pipeline
    finally:
        drop_capture(pipeline)


def config_file(pipeline, name: str, **airflow) -> str:
    """The pipeline with these ``airflow:`` keys, as a YAML file in the stack's directory."""
    variant = pipeline.model_copy(update={"airflow": pipeline.airflow.model_copy(update=airflow)})
    return str(write_pipeline(variant, f"{pipeline.lakehouse.namespace}_{name}"))


def run_dag(env: dict, config: str) -> dict:
    return helper(env, "test", config, "self_managed_cdc_pipeline", CDCLAKE_CONFIG=config)


def test_dag_runs_end_to_end_and_silver_passes_verify(airflow_env, captured):
    result = run_dag(airflow_env, config_file(captured, "e2e"))
    assert result["state"] == "success", result
    assert result["tasks"] == {task: "success" for task in CHECKS + JOBS}
    plan = plan_from_pipeline(captured)
    report = verify(plan, gold=False, progress=QUIET)
    assert report.ok, json.dumps(report.as_dict(), default=str)[:3000]
    assert all(t.source_rows > 0 for t in report.tables)


def test_paused_connector_fails_check_debezium_and_nothing_downstream_runs(airflow_env, captured):
    connect, name = service.client(captured), captured.connect.connector_name
    connect.pause(name)
    try:
        _wait(lambda: (connect.status(name) or {}).get("connector", {}).get("state") == "PAUSED", "PAUSED")
        result = run_dag(airflow_env, config_file(captured, "paused", retries=0))
    finally:
        connect.resume(name)
        service.wait_running(captured)
    assert result["state"] == "failed"
    assert result["tasks"]["check_kafka_health"] == "success"
    assert result["tasks"]["check_debezium"] == "failed"
    assert {result["tasks"][t] for t in ["check_replication_slot", *JOBS]} == {"upstream_failed"}
    assert any(f"connector {name}" in m and "PAUSED" in m for m in result["failures"]), result["failures"]


def test_slot_over_lag_threshold_fails_check_replication_slot_naming_slot_and_lag(airflow_env, captured):
    stop = threading.Event()
    writer = threading.Thread(target=_write_wal, args=(captured, stop), daemon=True)
    writer.start()  # WAL keeps growing past what the connector has confirmed
    try:
        result = run_dag(airflow_env, config_file(captured, "lag", retries=0, max_slot_lag_bytes=1))
    finally:
        stop.set()
        writer.join(10)
    assert result["tasks"]["check_debezium"] == "success"
    assert result["tasks"]["check_replication_slot"] == "failed"
    assert {result["tasks"][t] for t in JOBS} == {"upstream_failed"}
    slot = captured.source.slot
    message = next(m for m in result["failures"] if "check_replication_slot" in m)
    assert f"replication slot {slot} lags" in message and "bytes" in message and "threshold" in message


def _write_wal(pipeline, stop: threading.Event) -> None:
    with connection.connect(pipeline, autocommit=True) as conn:
        while not stop.wait(0.1):
            conn.execute("SELECT pg_logical_emit_message(false, 'cdclake-test', repeat('x', 10000))")


def _wait(condition, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)
