"""The DAGs' jobs, each rendered for its target from one table.

A job is one script with Glue-style arguments. Target ``local`` runs it on this machine:
the Spark jobs under ``spark-submit`` (the project's PySpark, the jars ``cdclake setup``
resolved), verify under plain ``python``. Target ``aws`` runs the very same script as an
AWS Glue 5.1 job through ``GlueJobOperator``.

The local job processes use the project's virtualenv, not Airflow's: PySpark, pyiceberg and
DuckDB live there, and Airflow's dependency pins never move them.

Example:
    >>> job = JOBS["bronze"]
    >>> job.script.name, job.args
    ('run.py', {'--layer': 'bronze', '--mode': 'available-now'})
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cdclake.config import Pipeline
from cdclake.orchestration.exceptions import JobFailedError

LAKEHOUSE_JOBS = Path(__file__).resolve().parents[1] / "lakehouse" / "jobs"
SCRIPTS = Path(__file__).resolve().parent / "scripts"
REPO_ROOT = Path(__file__).resolve().parents[3]  # in a source checkout
JOB_PYTHON_ENV = "CDCLAKE_JOB_PYTHON"
# verify needs pyiceberg and DuckDB on Glue (the Spark jobs use Glue's own Iceberg).
VERIFY_MODULES = ("pyiceberg[glue,pyarrow,duckdb]==0.12.0", "duckdb==2.0.0")
LOG_TAIL = 30


@dataclass(frozen=True)
class Job:
    """One job script and its arguments (besides ``--config``)."""

    name: str
    script: Path
    args: dict[str, str] = field(default_factory=dict)
    spark: bool = True
    python_modules: tuple[str, ...] = ()


JOBS = {
    "bronze": Job("bronze", LAKEHOUSE_JOBS / "run.py", {"--layer": "bronze", "--mode": "available-now"}),
    "silver": Job("silver", LAKEHOUSE_JOBS / "run.py", {"--layer": "silver"}),
    "gold": Job("gold", LAKEHOUSE_JOBS / "run.py", {"--layer": "gold"}),
    "verify": Job("verify", SCRIPTS / "verify.py", spark=False, python_modules=VERIFY_MODULES),
    "maintenance": Job("maintenance", SCRIPTS / "maintain.py"),
}


def job_args(pipeline: Pipeline, job: Job) -> dict[str, str]:
    """The job's arguments that come from the config (verify's tolerance)."""
    if job.name == "verify":
        return {**job.args, "--tolerance": str(pipeline.airflow.verify_tolerance)}
    return dict(job.args)


def job_python() -> str:
    """The interpreter of the project's virtualenv, where PySpark and pyiceberg are installed.

    ``CDCLAKE_JOB_PYTHON`` wins (``cdclake airflow up`` sets it to its own interpreter),
    then the checkout's ``.venv``, then the running interpreter.
    """
    configured = os.environ.get(JOB_PYTHON_ENV)
    if configured:
        return configured
    venv = REPO_ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def local_argv(pipeline: Pipeline, job: Job, config_path: str, python: str) -> list[str]:
    """The command line that runs ``job`` on this machine.

    Args:
        pipeline: the validated pipeline (Spark master, driver memory).
        job: the job.
        config_path: pipeline.yaml as the job process should read it.
        python: the project virtualenv's interpreter.

    Returns:
        ``spark-submit ... script --config PATH ...`` or ``python script --config PATH ...``.
    """
    tail = [str(job.script), "--config", config_path, *_flat(job_args(pipeline, job))]
    if not job.spark:
        return [python, *tail]
    from cdclake.lakehouse.spark import JVM_UTC, local_jars

    spark = pipeline.spark
    argv = [str(Path(python).parent / "spark-submit"), "--master", spark.master, "--name", f"cdclake-{job.name}",
            "--driver-memory", spark.driver_memory, "--conf", f"spark.driver.extraJavaOptions={JVM_UTC}"]
    if spark.master.startswith("local"):
        argv += ["--jars", ",".join(local_jars())]
    return argv + tail


def local_env(python: str) -> dict[str, str]:
    """The job process's environment: PySpark's driver and workers use the project's python."""
    return {**os.environ, "PYSPARK_PYTHON": python, "PYSPARK_DRIVER_PYTHON": python,
            "SPARK_LOCAL_IP": os.environ.get("SPARK_LOCAL_IP", "127.0.0.1"), "PYTHONUNBUFFERED": "1"}


def run_local(pipeline: Pipeline, job: Job, config_path: str, python: str,
              log: Callable[[str], None] = print) -> None:
    """Run ``job`` as a child process, streaming its output to ``log``.

    Raises:
        JobFailedError: the process exited non-zero; the message holds the last lines of its output.
    """
    argv = local_argv(pipeline, job, config_path, python)
    log(f"running {job.name}: {' '.join(_short(a) for a in argv)}")
    tail: deque[str] = deque(maxlen=LOG_TAIL)
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=local_env(python), cwd=Path(config_path).resolve().parent) as proc:
        for line in proc.stdout:
            line = line.rstrip()
            tail.append(line)
            log(line)
    if proc.returncode != 0:
        lines = "\n".join("  | " + line for line in tail)
        raise JobFailedError(f"job {job.name} failed (exit {proc.returncode}); last lines of its output:\n{lines}",
                             job=job.name, returncode=proc.returncode)


def glue_operator_kwargs(pipeline: Pipeline, job: Job) -> dict[str, Any]:
    """``GlueJobOperator`` keyword arguments for ``job`` (target ``aws``).

    The script is the same file as locally, uploaded under ``airflow.aws.scripts_location``;
    pipeline.yaml travels with ``--extra-files`` and lands in the job's working directory.
    """
    aws = pipeline.airflow.aws
    args = {"--config": Path(aws.config_location).name, "--extra-files": aws.config_location,
            "--additional-python-modules": ",".join([aws.package_location, *job.python_modules]),
            **job_args(pipeline, job)}
    if job.spark:
        args["--datalake-formats"] = "iceberg"
    return {
        "job_name": aws.job_names.get(job.name, f"cdclake-{job.name}"),
        "job_desc": f"cdclake {job.name} job ({job.script.name})",
        "script_location": f"{aws.scripts_location}/{job.script.name}",
        "script_args": args,
        "iam_role_name": aws.iam_role_name,
        "region_name": aws.region,
        "aws_conn_id": aws.aws_conn_id,
        "create_job_kwargs": {"GlueVersion": aws.glue_version, "WorkerType": aws.worker_type,
                              "NumberOfWorkers": aws.number_of_workers},
        "wait_for_completion": True,
        "verbose": True,
    }


def _flat(args: dict[str, str]) -> list[str]:
    return [token for pair in args.items() for token in pair]


def _short(arg: str) -> str:
    """The jar list abbreviated in logs."""
    return arg if len(arg) < 200 else f"{arg[:80]}...({arg.count(',') + 1} jars)"
