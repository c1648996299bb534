"""Errors of the orchestration layer (the DAGs' jobs and the local Airflow)."""

from __future__ import annotations

from cdclake.errors import CdclakeError, ExitCode, NotInstalledError


class OrchestrationError(CdclakeError):
    """A DAG job or the local Airflow failed."""

    exit_code = ExitCode.ORCHESTRATION


class JobFailedError(OrchestrationError):
    """A job's process exited non-zero.

    Attributes:
        job: the job's name (bronze, silver, gold, verify, maintenance).
        returncode: the process's exit code.
    """

    def __init__(self, message: str, job: str, returncode: int) -> None:
        super().__init__(message)
        self.job = job
        self.returncode = returncode


class AirflowNotInstalledError(NotInstalledError):
    """Airflow's own virtualenv is missing."""
