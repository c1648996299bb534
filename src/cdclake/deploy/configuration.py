"""The ``deploy:`` section of pipeline.yaml: sizing and names of the AWS deployment.

Every key has the reference architecture's value as its default, so a pipeline.yaml
without the section still loads (and renders the reference's layout). Example::

    deploy:
      aws:
        name: cdclake
        region: ap-south-1
        source_dsn: postgresql://cdclake_debezium@cdc.abc123.ap-south-1.rds.amazonaws.com:5432/cdc_demo
        db_password_secret_arn: arn:aws:secretsmanager:ap-south-1:123456789012:secret:cdclake/source
"""

from __future__ import annotations

import ipaddress
import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

NAME = re.compile(r"^[a-z][a-z0-9-]{1,30}$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class AwsDeployConfig(_Model):
    """Target ``aws``: the reference's layout (self-managed KRaft Kafka on EC2, Debezium on Fargate, Glue)."""

    name: str = Field("cdclake", description="prefix of every AWS resource name")
    region: str = Field("ap-south-1", description="AWS region (the reference's)")
    availability_zones: list[str] = Field(default_factory=lambda: ["a", "b", "c"],
                                          description="zone letters (or full names) of the three private subnets")
    vpc_cidr: str = "10.40.0.0/16"
    nat: bool = Field(True, description="a NAT gateway for outbound HTTPS (PyPI for Airflow and Glue)")
    bucket: str | None = Field(None, description="lakehouse bucket; default <name>-lakehouse-<region>")
    source_dsn: str | None = Field(None, description="the RDS source, postgresql://user@host:5432/db (no password)")
    source_parameter_family: str = Field("postgres15", description="RDS parameter group family of the source")
    db_password_secret_arn: str = Field(
        "arn:aws:secretsmanager:ap-south-1:000000000000:secret:cdclake/source-password",
        description="Secrets Manager secret holding the capture role's password")
    kafka_instance_type: str = "m5.xlarge"
    kafka_volume_gb: int = Field(500, ge=10)
    kafka_volume_iops: int = Field(3000, ge=3000)
    kafka_replication_factor: int = Field(3, ge=1, le=3)
    kafka_tarball_key: str = "artifacts/kafka_2.13-4.3.0.tgz"
    connect_image: str = Field("quay.io/debezium/connect:3.6.3.Final",
                               description="Connect + Debezium image (mirror it into ECR: the subnets have no internet route for it)")
    connect_cpu: int = Field(2048, description="Fargate CPU units per task (2048 = 2 vCPU)")
    connect_memory: int = Field(4096, description="Fargate memory per task, MiB")
    connect_tasks: int = Field(2, ge=1)
    airflow_instance_type: str = "t3.large"
    tags: dict[str, str] = Field(default_factory=lambda: {"project": "cdclake"})

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME.match(value):
            raise ValueError(f"deploy.aws.name {value!r} must be 2-31 lowercase letters, digits or '-'")
        return value

    @field_validator("vpc_cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        network = ipaddress.ip_network(value)
        if network.prefixlen > 20:
            raise ValueError(f"deploy.aws.vpc_cidr {value} is too small; use a /20 or larger, e.g. 10.40.0.0/16")
        return str(network)

    @field_validator("availability_zones")
    @classmethod
    def _three(cls, zones: list[str]) -> list[str]:
        if len(zones) != 3:
            raise ValueError("deploy.aws.availability_zones needs exactly three zones, e.g. [a, b, c]")
        return zones

    @property
    def bucket_name(self) -> str:
        return self.bucket or f"{self.name}-lakehouse-{self.region}"

    @property
    def zones(self) -> list[str]:
        return [z if len(z) > 1 else f"{self.region}{z}" for z in self.availability_zones]


class CostConfig(_Model):
    """Sizing of ``cdclake cost`` (the reference's table: 3 nodes, 6 TB retained)."""

    retained_tb: float = Field(6.0, gt=0, description="data kept on the brokers, TB (1000 GB), before replication")
    produced_gb: float = Field(2000.0, ge=0, description="data written to Kafka per month, GB")
    msk_brokers: int = Field(3, ge=1, description="MSK brokers of the comparison (kafka.m5.large, as the reference)")
    glue_job_minutes: float = Field(5.0, gt=0, description="average billed run time of each Glue job run")
    price_file: str | None = Field(None, description="a price table YAML instead of the bundled one")


class DeployConfig(_Model):
    aws: AwsDeployConfig = Field(default_factory=AwsDeployConfig)
    cost: CostConfig = Field(default_factory=CostConfig)
