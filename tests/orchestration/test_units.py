"""Orchestration without Airflow or a stack: config, job rendering, health-check verdicts."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest

from cdclake.config import ConfigError, load
from cdclake.health import pipeline as health
from cdclake.orchestration import jobs, tasks
from cdclake.orchestration.exceptions import JobFailedError
from cdclake.orchestration.reconcile import within
from cdclake.verify.silver import TableReport
from tests.conftest import base_config, write_config


@pytest.fixture
def pipeline(tmp_path, clean_env):
    return load(write_config(tmp_path, base_config(airflow={"max_slot_lag_bytes": 1000})), environ={})


def test_airflow_section_defaults_and_errors(tmp_path, clean_env):
    default = load(write_config(tmp_path, base_config()), environ={}).airflow
    assert (default.target, default.schedule, default.retries, default.maintenance_schedule) == \
        ("local", "@hourly", 2, "@weekly")
    with pytest.raises(ConfigError, match="airflow.target"):
        load(write_config(tmp_path, base_config(airflow={"target": "gcp"})), environ={})
    with pytest.raises(ConfigError, match="s3://"):
        load(write_config(tmp_path, base_config(airflow={"aws": {"scripts_location": "/tmp/jobs"}})), environ={})
    with pytest.raises(ConfigError, match="unknown job"):
        load(write_config(tmp_path, base_config(airflow={"aws": {"job_names": {"platinum": "x"}}})), environ={})
    aws = load(write_config(tmp_path, base_config()), environ={"CDCLAKE__AIRFLOW__TARGET": "aws"}).airflow
    assert aws.target == "aws"


def test_local_argv_spark_submit_and_python(pipeline, monkeypatch):
    monkeypatch.setattr("cdclake.lakehouse.spark.local_jars", lambda: ["/j/a.jar", "/j/b.jar"])
    argv = jobs.local_argv(pipeline, jobs.JOBS["bronze"], "/cfg/p.yaml", "/venv/bin/python")
    assert argv[0] == "/venv/bin/spark-submit"
    assert argv[argv.index("--master") + 1] == "local[2]" and argv[argv.index("--jars") + 1] == "/j/a.jar,/j/b.jar"
    assert argv[-7:] == [str(jobs.LAKEHOUSE_JOBS / "run.py"), "--config", "/cfg/p.yaml", "--layer", "bronze",
                         "--mode", "available-now"]
    verify = jobs.local_argv(pipeline, jobs.JOBS["verify"], "/cfg/p.yaml", "/venv/bin/python")
    assert verify == ["/venv/bin/python", str(jobs.SCRIPTS / "verify.py"), "--config", "/cfg/p.yaml",
                      "--tolerance", "0.0"]
    assert jobs.local_env("/venv/bin/python")["PYSPARK_DRIVER_PYTHON"] == "/venv/bin/python"


def test_glue_operator_kwargs_run_the_same_scripts_from_s3(pipeline):
    bronze = jobs.glue_operator_kwargs(pipeline, jobs.JOBS["bronze"])
    aws = pipeline.airflow.aws
    assert bronze["job_name"] == "cdc-bronze-processor"
    assert bronze["script_location"] == f"{aws.scripts_location}/run.py"
    assert bronze["script_args"]["--config"] == "pipeline.yaml"
    assert bronze["script_args"]["--extra-files"] == aws.config_location
    assert bronze["script_args"]["--layer"] == "bronze" and bronze["script_args"]["--datalake-formats"] == "iceberg"
    assert bronze["create_job_kwargs"]["GlueVersion"] == "5.1"
    verify = jobs.glue_operator_kwargs(pipeline, jobs.JOBS["verify"])
    assert verify["script_location"].endswith("/verify.py") and "--datalake-formats" not in verify["script_args"]
    assert "pyiceberg" in verify["script_args"]["--additional-python-modules"]


def test_run_local_streams_output_and_fails_with_its_tail(pipeline, tmp_path):
    script = tmp_path / "job.py"
    script.write_text("import sys\nprint('working')\nprint('boom: no table', file=sys.stderr)\nsys.exit(3)\n")
    job = jobs.Job("verify", script, spark=False)
    lines: list[str] = []
    with pytest.raises(JobFailedError, match=r"job verify failed \(exit 3\)[\s\S]*boom: no table") as err:
        jobs.run_local(pipeline, job, str(tmp_path / "p.yaml"), sys.executable, log=lines.append)
    assert err.value.returncode == 3 and "working" in lines


def _slot(monkeypatch, **status):
    full = {"name": "debezium_slot", "exists": True, "active": True, "wal_status": "reserved", "lag_bytes": 10,
            "retained_wal_bytes": 20, **status}
    monkeypatch.setattr("cdclake.capture.service.slot_status", lambda pipeline: full)


@pytest.mark.parametrize("status, expected", [
    ({"lag_bytes": 5_000_000}, r"replication slot debezium_slot lags 4\.8 MiB \(5000000 bytes\).*threshold"),
    ({"active": False}, "debezium_slot is not active"),
    ({"wal_status": "lost"}, "debezium_slot has lost WAL"),
    ({"exists": False}, "debezium_slot does not exist.*cdclake connector apply"),
])
def test_slot_check_verdicts(pipeline, monkeypatch, status, expected):
    _slot(monkeypatch, **status)
    with pytest.raises(health.ReplicationSlotError, match=expected) as err:
        health.check_replication_slot(pipeline, pipeline.airflow.max_slot_lag_bytes)
    assert err.value.slot == "debezium_slot"


def test_slot_check_passes_under_threshold(pipeline, monkeypatch):
    _slot(monkeypatch)
    assert health.check_replication_slot(pipeline, 1000)["lag_bytes"] == 10


def _connector(monkeypatch, status):
    monkeypatch.setattr("cdclake.capture.service.client", lambda pipeline: SimpleNamespace(status=lambda name: status))


@pytest.mark.parametrize("status, expected", [
    (None, "does not exist.*cdclake connector apply"),
    ({"connector": {"state": "PAUSED"}, "tasks": [{"id": 0, "state": "PAUSED"}]},
     "connector PAUSED, task 0 PAUSED.*cdclake connector resume"),
    ({"connector": {"state": "RUNNING"}, "tasks": [{"id": 0, "state": "FAILED", "trace": "x\nCaused by: slot gone"}]},
     "task 0 FAILED.*cause: Caused by: slot gone"),
    ({"connector": {"state": "RUNNING"}, "tasks": []}, "no tasks"),
])
def test_connector_check_verdicts(pipeline, monkeypatch, status, expected):
    _connector(monkeypatch, status)
    with pytest.raises(health.ConnectorNotRunningError, match=expected):
        health.check_connector(pipeline)


def test_connector_check_passes_when_all_running(pipeline, monkeypatch):
    _connector(monkeypatch, {"connector": {"state": "RUNNING"}, "tasks": [{"id": 0, "state": "RUNNING"}]})
    assert health.check_connector(pipeline)["states"] == {"connector": "RUNNING", "task 0": "RUNNING"}


def test_human_bytes_and_tolerance():
    assert [health.human_bytes(n) for n in (None, 12, 1536, 3 << 30)] == ["unknown", "12 B", "1.5 KiB", "3.0 GiB"]
    exact, off = TableReport("public.t", 100, 100), TableReport("public.t", 100, 99, missing=1)
    assert within(exact, 0) and not within(off, 0) and within(off, 0.01)
    assert not within(TableReport("public.t", error="no table"), 1)


def test_failure_summary_names_task_dag_run_and_error():
    ti = SimpleNamespace(dag_id="self_managed_cdc_pipeline", task_id="check_debezium", run_id="r1", try_number=3)
    text = tasks.failure_summary({"ti": ti, "exception": ValueError("connector x PAUSED")})
    assert text == "task check_debezium of DAG self_managed_cdc_pipeline failed (run r1, try 3): connector x PAUSED"
