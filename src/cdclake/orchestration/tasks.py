"""What the DAGs' Python tasks run, inside the Airflow worker.

Each task receives the path of pipeline.yaml, loads it (the task is an edge: it resolves
the config once) and calls cdclake's own functions: the health checks in-process, the
local jobs as child processes of the project's interpreter. Return values are small
JSON-ready summaries that Airflow keeps as XComs.
"""

from __future__ import annotations

import logging
from typing import Any

from cdclake.config import Pipeline, load
from cdclake.health import pipeline as health
from cdclake.orchestration import jobs

LOG = logging.getLogger("cdclake.orchestration")


def _pipeline(config_path: str) -> Pipeline:
    return load(config_path)


def check_kafka_health(config_path: str) -> dict[str, Any]:
    """Task ``check_kafka_health``: metadata from the brokers, no under-replicated partitions."""
    return _logged(health.check_kafka(_pipeline(config_path)))


def check_debezium(config_path: str) -> dict[str, Any]:
    """Task ``check_debezium``: the connector and all its tasks RUNNING."""
    return _logged(health.check_connector(_pipeline(config_path)))


def check_replication_slot(config_path: str) -> dict[str, Any]:
    """Task ``check_replication_slot``: active, lag under ``airflow.max_slot_lag_bytes``, WAL not lost."""
    pipeline = _pipeline(config_path)
    return _logged(health.check_replication_slot(pipeline, pipeline.airflow.max_slot_lag_bytes))


def run_job(config_path: str, job: str, python: str) -> dict[str, str]:
    """Tasks ``bronze``, ``silver``, ``gold``, ``verify``, ``maintenance`` of target ``local``."""
    jobs.run_local(_pipeline(config_path), jobs.JOBS[job], config_path, python, log=LOG.info)
    return {"job": job, "state": "succeeded"}


def log_failure(context: dict[str, Any]) -> None:
    """``on_failure_callback``: one line naming the DAG, task, run, try and the error."""
    LOG.error("cdclake: %s", failure_summary(context))


def failure_summary(context: dict[str, Any]) -> str:
    ti = context.get("ti") or context.get("task_instance")
    exception = context.get("exception")
    dag_id = getattr(ti, "dag_id", "?")
    task_id = getattr(ti, "task_id", "?")
    return (f"task {task_id} of DAG {dag_id} failed (run {getattr(ti, 'run_id', '?')}, "
            f"try {getattr(ti, 'try_number', '?')}): {exception}")


def _logged(summary: dict[str, Any]) -> dict[str, Any]:
    LOG.info("healthy: %s", summary)
    return summary
