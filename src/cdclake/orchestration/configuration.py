"""The ``airflow:`` section of pipeline.yaml: the DAGs, their target, the local Airflow.

Kept free of heavy imports (no Airflow): ``cdclake.config.models`` imports it, and the
CLI must start fast. Example::

    airflow:
      target: aws                      # local: spark-submit on this machine; aws: Glue jobs
      email: [data-eng@example.com]
      max_slot_lag_bytes: 1073741824
      aws:
        region: eu-west-1
        scripts_location: s3://my-bucket/cdclake/jobs
        config_location: s3://my-bucket/cdclake/pipeline.yaml
        iam_role_name: cdclake-glue
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# The jobs of the two DAGs, in the order the hourly DAG runs the first four.
JOBS = ("bronze", "silver", "gold", "verify", "maintenance")


class _Model(BaseModel):
    # Unknown keys are rejected: a typo must never pass silently.
    model_config = ConfigDict(extra="forbid", validate_default=True)


class GlueConfig(_Model):
    """Target ``aws``: each job is an AWS Glue 5.1 job running cdclake's job scripts from S3."""

    region: str | None = Field(None, description="AWS region of the Glue jobs (default: the connection's)")
    aws_conn_id: str = Field("aws_default", description="Airflow connection holding the AWS credentials")
    scripts_location: str = Field("s3://cdclake-artifacts/jobs",
                                  description="S3 prefix holding run.py, maintain.py and verify.py")
    config_location: str = Field("s3://cdclake-artifacts/pipeline.yaml",
                                 description="pipeline.yaml on S3, shipped to each job with --extra-files")
    package_location: str = Field("s3://cdclake-artifacts/cdclake-0.1.0-py3-none-any.whl",
                                  description="the cdclake wheel, installed with --additional-python-modules")
    iam_role_name: str | None = Field(None, description="IAM role the Glue jobs run as (creating jobs needs it)")
    glue_version: str = "5.1"
    worker_type: str = "G.1X"
    number_of_workers: int = Field(2, ge=2)
    job_names: dict[str, str] = Field(
        default_factory=lambda: {"bronze": "cdc-bronze-processor", "silver": "cdc-silver-processor",
                                 "gold": "cdc-gold-processor", "verify": "cdc-verify",
                                 "maintenance": "cdc-iceberg-maintenance"},
        description="Glue job name of each job (the reference's names by default)")

    @field_validator("scripts_location", "config_location", "package_location")
    @classmethod
    def _s3(cls, value: str, info) -> str:
        if not value.startswith("s3://"):
            raise ValueError(f"{info.field_name} must be an s3:// URI, got {value!r}")
        return value.rstrip("/")

    @field_validator("job_names")
    @classmethod
    def _known_jobs(cls, names: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(names) - set(JOBS))
        if unknown:
            raise ValueError(f"unknown job(s) {', '.join(unknown)}; jobs are {', '.join(JOBS)}")
        return names


class AirflowConfig(_Model):
    """The DAGs ``self_managed_cdc_pipeline`` and ``iceberg_maintenance``, and the local Airflow."""

    target: Literal["local", "aws"] = Field("local", description="local: spark-submit; aws: GlueJobOperator")
    schedule: str = Field("@hourly", description="the pipeline DAG's schedule")
    maintenance_schedule: str = Field("@weekly", description="the maintenance DAG's schedule")
    start_date: date = date(2024, 1, 1)
    owner: str = "data-engineering"
    retries: int = Field(2, ge=0)
    retry_delay_seconds: int = Field(300, ge=0)
    email: list[str] = Field(default_factory=list, description="target aws: failure e-mail recipients")
    max_slot_lag_bytes: int = Field(1 << 30, ge=0, description="check_replication_slot fails above this lag")
    verify_tolerance: float = Field(0.0, ge=0, le=1, description=(
        "verify: fraction of a table's source rows allowed to differ (rows changed after the run on a live source)"))
    port: int = Field(8080, ge=1024, le=65535, description="local Airflow api-server port")
    metadata_db: Literal["sqlite", "postgres"] = Field(
        "sqlite", description="local Airflow metadata database: SQLite in the state dir, or the stack's PostgreSQL")
    aws: GlueConfig = Field(default_factory=GlueConfig)

    @field_validator("email")
    @classmethod
    def _emails(cls, emails: list[str]) -> list[str]:
        for address in emails:
            if "@" not in address:
                raise ValueError(f"{address!r} is not an e-mail address")
        return emails
