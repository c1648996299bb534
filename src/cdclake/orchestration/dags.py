"""The DAG factory: ``self_managed_cdc_pipeline`` and ``iceberg_maintenance`` from pipeline.yaml.

One factory serves both targets (``airflow.target``): the health checks are the same
Python tasks everywhere; each job is a ``PythonOperator`` running it under
``spark-submit`` on this machine (``local``) or a ``GlueJobOperator`` (``aws``).

The DAG file Airflow loads (``dags/cdclake_dags.py``) is two lines::

    from cdclake.orchestration.dags import dags_from_environment
    globals().update(dags_from_environment())

Example (what the tests do)::

    dags = build_dags("/path/to/pipeline.yaml")
    dags["self_managed_cdc_pipeline"].test()
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cdclake.config import Pipeline, load
from cdclake.orchestration import jobs, tasks

if TYPE_CHECKING:
    from airflow.sdk import DAG

PIPELINE_DAG = "self_managed_cdc_pipeline"
MAINTENANCE_DAG = "iceberg_maintenance"
CHECKS = ("check_kafka_health", "check_debezium", "check_replication_slot")
PIPELINE_JOBS = ("bronze", "silver", "gold", "verify")
CONFIG_ENV = "CDCLAKE_CONFIG"
JOB_TIMEOUT = timedelta(hours=2)
CHECK_TIMEOUT = timedelta(minutes=5)


def dags_from_environment() -> dict[str, DAG]:
    """The DAGs for ``$CDCLAKE_CONFIG`` (default: pipeline.yaml in the checkout)."""
    return build_dags(os.environ.get(CONFIG_ENV) or str(jobs.REPO_ROOT / "pipeline.yaml"))


def build_dags(config_path: str | Path) -> dict[str, DAG]:
    """Both DAGs, keyed by DAG id, rendered from the pipeline config at ``config_path``.

    Raises:
        ConfigError: the config is invalid (Airflow shows it as the DAG file's import error).
    """
    path = str(Path(config_path).resolve())
    pipeline = load(path)
    return {PIPELINE_DAG: pipeline_dag(pipeline, path), MAINTENANCE_DAG: maintenance_dag(pipeline, path)}


def default_args(pipeline: Pipeline) -> dict[str, Any]:
    """Retries, owner, timeouts and the failure notification (e-mail on ``aws``, a log line always)."""
    cfg = pipeline.airflow
    callbacks: list[Any] = [tasks.log_failure]
    if cfg.target == "aws" and cfg.email:
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        callbacks.append(SmtpNotifier(
            to=cfg.email, subject="cdclake: {{ ti.task_id }} of {{ dag.dag_id }} failed",
            html_content="Run {{ run_id }}, try {{ ti.try_number }}: {{ exception }}<br>Log: {{ ti.log_url }}"))
    return {"owner": cfg.owner, "depends_on_past": False, "retries": cfg.retries,
            "retry_delay": timedelta(seconds=cfg.retry_delay_seconds), "on_failure_callback": callbacks}


def _dag(pipeline: Pipeline, dag_id: str, schedule: str, doc: str) -> DAG:
    from airflow.sdk import DAG

    cfg = pipeline.airflow
    start = datetime.combine(cfg.start_date, datetime.min.time(), tzinfo=timezone.utc)
    return DAG(dag_id, default_args=default_args(pipeline), schedule=schedule, start_date=start, catchup=False,
               max_active_runs=1, doc_md=doc, tags=["cdclake", cfg.target])


def pipeline_dag(pipeline: Pipeline, config_path: str) -> DAG:
    """``self_managed_cdc_pipeline``: the three health checks, then bronze ▸ silver ▸ gold ▸ verify."""
    dag = _dag(pipeline, PIPELINE_DAG, pipeline.airflow.schedule,
               f"Health checks, then bronze, silver, gold and verify for `{config_path}` "
               f"(target {pipeline.airflow.target}).")
    with dag:
        steps = [_check(name, config_path) for name in CHECKS]
        steps += [job_task(pipeline, jobs.JOBS[name], config_path) for name in PIPELINE_JOBS]
    _chain(steps)
    return dag


def maintenance_dag(pipeline: Pipeline, config_path: str) -> DAG:
    """``iceberg_maintenance``: compaction, snapshot expiry, orphan removal of every table."""
    dag = _dag(pipeline, MAINTENANCE_DAG, pipeline.airflow.maintenance_schedule,
               "Compaction, position-delete rewrite, snapshot expiry, orphan file removal and manifest "
               "rewrite of every Iceberg table (`cdclake maintain`).")
    with dag:
        job_task(pipeline, jobs.JOBS["maintenance"], config_path)
    return dag


def _check(name: str, config_path: str):
    from airflow.providers.standard.operators.python import PythonOperator

    return PythonOperator(task_id=name, python_callable=getattr(tasks, name), op_kwargs={"config_path": config_path},
                          execution_timeout=CHECK_TIMEOUT)


def job_task(pipeline: Pipeline, job: jobs.Job, config_path: str):
    """The task running ``job``: a Glue job on ``aws``, a local child process otherwise."""
    if pipeline.airflow.target == "aws":
        from airflow.providers.amazon.aws.operators.glue import GlueJobOperator

        return GlueJobOperator(task_id=job.name, execution_timeout=JOB_TIMEOUT,
                               **jobs.glue_operator_kwargs(pipeline, job))
    from airflow.providers.standard.operators.python import PythonOperator

    return PythonOperator(task_id=job.name, python_callable=tasks.run_job, execution_timeout=JOB_TIMEOUT,
                          op_kwargs={"config_path": config_path, "job": job.name, "python": jobs.job_python()})


def _chain(steps: list) -> None:
    for upstream, downstream in zip(steps, steps[1:]):
        upstream >> downstream
