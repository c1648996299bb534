"""``cdclake deploy render --target aws``: pipeline.yaml -> terraform.tfvars.json + artifacts.

The output is deterministic (sorted keys, paths relative to the output directory, a
cluster id derived from the deployment name), so a re-render of an unchanged config is
byte-identical and a diff shows exactly what a config change does. Every engine setting
comes from the renderer its local counterpart uses: Kafka's ``server.properties``
(:func:`cdclake.stack.kafka.render_server_properties`), the Connect worker settings
(:func:`cdclake.stack.connect.distributed_worker_properties`), the Spark/Iceberg conf
(:func:`cdclake.lakehouse.spark.as_spark_conf`) and the Glue job arguments
(:func:`cdclake.orchestration.jobs.glue_operator_kwargs`).
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import uuid
from base64 import urlsafe_b64encode
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import yaml

from cdclake.config import Pipeline
from cdclake.deploy.configuration import AwsDeployConfig
from cdclake.deploy.exceptions import DeployError

TFVARS = "terraform.tfvars.json"
ARTIFACTS = "artifacts"
KAFKA_LOG_DIR = "/var/lib/kafka/data"
PASSWORD_ENV = "CDCLAKE_SOURCE_PASSWORD"  # the debezium module's ECS secret
KAFKA_HOST_INDEX = 10  # node i's address: the 10th host of private subnet i
# Kafka's own defaults for a 4-vCPU broker (the local stack's are for a 2-core laptop).
KAFKA_AWS_OVERRIDES = {"num.network.threads": "3", "num.io.threads": "8"}
# Spark conf that only makes sense on a laptop; Glue sets or forbids these itself.
LOCAL_ONLY_SPARK = ("spark.ui.", "spark.driver.", "spark.executor.", "spark.sql.shuffle.partitions", "spark.jars")
AIRFLOW_REQUIREMENTS = Path(__file__).resolve().parents[1] / "install" / "airflow-requirements.txt"


@dataclass(frozen=True)
class Layout:
    """The network of one deployment, computed from the VPC CIDR (as Terraform's cidrsubnet would)."""

    private: list[str]
    public: str | None
    kafka_ips: list[str]


@dataclass
class RenderReport:
    out_dir: str
    files: list[str] = field(default_factory=list)
    to_provide: list[str] = field(default_factory=list)


def layout(aws: AwsDeployConfig) -> Layout:
    """Three private /20s (or /4 of the VPC) from the bottom of the VPC, the NAT subnet at its top."""
    subnets = list(ipaddress.ip_network(aws.vpc_cidr).subnets(prefixlen_diff=4))
    private = [str(s) for s in subnets[:3]]
    ips = [str(subnets[i][KAFKA_HOST_INDEX]) for i in range(3)]
    return Layout(private, str(subnets[-1]) if aws.nat else None, ips)


def cluster_id(name: str) -> str:
    """A KRaft cluster id fixed by the deployment name: re-renders never change it."""
    return urlsafe_b64encode(uuid.uuid5(uuid.NAMESPACE_DNS, f"{name}.kafka.cdclake").bytes).decode().rstrip("=")


def kafka_nodes(pipeline: Pipeline, net: Layout) -> list[dict[str, Any]]:
    """Each node's id, fixed address and ``server.properties`` (the local stack's renderer)."""
    from cdclake.stack.kafka import QuorumNode, properties_text, render_server_properties

    aws = pipeline.deploy.aws
    quorum = [QuorumNode(i + 1, ip) for i, ip in enumerate(net.kafka_ips)]
    overrides = {**KAFKA_AWS_OVERRIDES, "num.partitions": str(pipeline.kafka.partitions)}
    return [{"node_id": node.node_id, "private_ip": node.host, "subnet_index": node.node_id - 1,
             "server_properties": properties_text(render_server_properties(
                 node, quorum, KAFKA_LOG_DIR, aws.kafka_replication_factor, overrides=overrides),
                 "cdclake deploy render")}
            for node in quorum]


def connect_environment(pipeline: Pipeline) -> dict[str, str]:
    """The Connect worker settings as the Debezium image's environment (``CONNECT_<KEY>``)."""
    from cdclake.stack.connect import distributed_worker_properties

    props = distributed_worker_properties(pipeline.connect.group_id, pipeline.deploy.aws.kafka_replication_factor)
    env = {f"CONNECT_{key.upper().replace('.', '_')}": value for key, value in props.items()}
    # The image's entrypoint requires these five under their short names.
    env.update({"GROUP_ID": props["group.id"], "CONFIG_STORAGE_TOPIC": props["config.storage.topic"],
                "OFFSET_STORAGE_TOPIC": props["offset.storage.topic"],
                "STATUS_STORAGE_TOPIC": props["status.storage.topic"]})
    return env


def aws_pipeline(pipeline: Pipeline, net: Layout) -> Pipeline:
    """The pipeline as it runs on AWS: RDS source, the brokers, Glue + S3, Airflow target aws."""
    aws = pipeline.deploy.aws
    if not aws.source_dsn:
        raise DeployError("deploy.aws.source_dsn is not set; set it to the RDS endpoint, e.g. "
                          "postgresql://cdclake_debezium@<instance>.rds.amazonaws.com:5432/"
                          f"{pipeline.source.database}", key="deploy.aws.source_dsn")
    bucket = f"s3://{aws.bucket_name}"
    raw = pipeline.model_dump(mode="json", exclude_none=True, exclude={"source": {"password", "password_file"}})
    raw["source"].update({"dsn": aws.source_dsn})
    raw["source"].pop("managed", None)
    raw["kafka"] = {**_without(raw["kafka"], "managed", "nodes", "port", "heap"),
                    "bootstrap_servers": ",".join(f"{ip}:9092" for ip in net.kafka_ips),
                    "replication_factor": aws.kafka_replication_factor}
    raw["connect"] = {**_without(raw["connect"], "managed", "port", "heap", "workers"),
                      "url": f"http://connect.{aws.name}.internal:8083", "password_env": PASSWORD_ENV}
    # Endpoint overrides are for emulators (moto, LocalStack, MinIO); on AWS the region's endpoints.
    raw["lakehouse"] = _without(raw["lakehouse"], "glue_endpoint", "s3_endpoint", "s3_path_style_access")
    raw["lakehouse"].update({"backend": "glue", "warehouse": f"{bucket}/iceberg", "aws_region": aws.region,
                             "checkpoints": f"{bucket}/checkpoints"})
    raw["spark"] = {**raw["spark"], "master": "glue"}
    raw["airflow"].update({"target": "aws"})
    raw["airflow"]["aws"].update({
        "region": aws.region, "scripts_location": f"{bucket}/{ARTIFACTS}/jobs",
        "config_location": f"{bucket}/{ARTIFACTS}/pipeline.yaml",
        "package_location": f"{bucket}/{ARTIFACTS}/{wheel_name()}", "iam_role_name": f"{aws.name}-glue"})
    return Pipeline.model_validate(raw)


def glue_jobs(deployed: Pipeline) -> dict[str, dict[str, Any]]:
    """The Glue jobs, with exactly the arguments the Airflow DAG's GlueJobOperator passes."""
    from cdclake.orchestration.jobs import JOBS, glue_operator_kwargs

    conf = glue_spark_conf(deployed)
    jobs = {}
    for job in JOBS.values():
        kwargs = glue_operator_kwargs(deployed, job)
        args = dict(kwargs["script_args"])
        if job.spark:
            args["--conf"] = conf
        create = kwargs["create_job_kwargs"]
        jobs[kwargs["job_name"]] = {
            "script_key": kwargs["script_location"].split("/", 3)[3],
            "description": kwargs["job_desc"], "glue_version": create["GlueVersion"],
            "worker_type": create["WorkerType"], "number_of_workers": create["NumberOfWorkers"],
            "default_arguments": args}
    return jobs


def glue_spark_conf(deployed: Pipeline) -> str:
    """The Iceberg/Glue catalog conf as Glue's one ``--conf`` value (``k=v --conf k=v ...``)."""
    from cdclake.lakehouse.configuration import plan_from_pipeline
    from cdclake.lakehouse.spark import as_spark_conf

    conf = as_spark_conf(plan_from_pipeline(deployed))
    kept = {k: v for k, v in sorted(conf.items()) if not k.startswith(LOCAL_ONLY_SPARK)}
    return " --conf ".join(f"{k}={v}" for k, v in kept.items())


def wheel_name() -> str:
    return f"cdclake-{version('cdclake')}-py3-none-any.whl"


def artifacts(deployed: Pipeline) -> dict[str, str]:
    """S3 key -> path relative to the output dir, of every file Terraform uploads."""
    from cdclake.orchestration.jobs import JOBS

    scripts = sorted({job.script.name for job in JOBS.values()})
    files = {f"{ARTIFACTS}/jobs/{name}": f"{ARTIFACTS}/jobs/{name}" for name in scripts}
    for name in ("pipeline.yaml", "airflow-requirements.txt", wheel_name(),
                 Path(deployed.deploy.aws.kafka_tarball_key).name):
        files[f"{ARTIFACTS}/{name}"] = f"{ARTIFACTS}/{name}"
    return files


def tfvars(pipeline: Pipeline) -> tuple[dict[str, Any], Pipeline]:
    """The root module's variables, and the pipeline as deployed."""
    from cdclake.source import rds

    aws = pipeline.deploy.aws
    net = layout(aws)
    deployed = aws_pipeline(pipeline, net)
    return {
        "name": aws.name, "region": aws.region, "tags": dict(sorted(aws.tags.items())),
        "vpc_cidr": aws.vpc_cidr, "availability_zones": aws.zones, "private_subnet_cidrs": net.private,
        "public_subnet_cidr": net.public, "kafka_nodes": kafka_nodes(pipeline, net),
        "kafka_cluster_id": cluster_id(aws.name), "kafka_instance_type": aws.kafka_instance_type,
        "kafka_volume_size_gb": aws.kafka_volume_gb, "kafka_volume_iops": aws.kafka_volume_iops,
        "kafka_tarball_key": aws.kafka_tarball_key, "connect_image": aws.connect_image,
        "connect_cpu": aws.connect_cpu, "connect_memory": aws.connect_memory, "connect_tasks": aws.connect_tasks,
        "connect_worker_environment": connect_environment(pipeline),
        "db_password_secret_arn": aws.db_password_secret_arn, "bucket_name": aws.bucket_name,
        "namespace": pipeline.lakehouse.namespace, "artifacts": artifacts(deployed), "glue_jobs": glue_jobs(deployed),
        "airflow_instance_type": aws.airflow_instance_type, "package_key": f"{ARTIFACTS}/{wheel_name()}",
        "config_key": f"{ARTIFACTS}/pipeline.yaml", "airflow_requirements_key": f"{ARTIFACTS}/airflow-requirements.txt",
        "source_parameter_family": aws.source_parameter_family, "source_parameters": rds.parameters(pipeline),
    }, deployed


def render(pipeline: Pipeline, out_dir: Path) -> RenderReport:
    """Write terraform.tfvars.json and the artifacts Terraform uploads into ``out_dir``.

    Returns:
        What was written, and the artifacts the user still provides (the wheel, the Kafka tarball).
    """
    variables, deployed = tfvars(pipeline)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = RenderReport(str(out_dir))
    (out_dir / TFVARS).write_text(json.dumps(variables, indent=2, sort_keys=True) + "\n")
    report.files.append(TFVARS)
    for written in _write_artifacts(deployed, out_dir / ARTIFACTS):
        report.files.append(f"{ARTIFACTS}/{written}")
    report.to_provide = [path for path in variables["artifacts"].values() if not (out_dir / path).exists()]
    return report


def _write_artifacts(deployed: Pipeline, target: Path) -> list[str]:
    from cdclake.orchestration.jobs import JOBS

    (target / "jobs").mkdir(parents=True, exist_ok=True)
    for script in sorted({job.script for job in JOBS.values()}):
        shutil.copyfile(script, target / "jobs" / script.name)
    shutil.copyfile(AIRFLOW_REQUIREMENTS, target / "airflow-requirements.txt")
    (target / "pipeline.yaml").write_text(
        "# rendered by cdclake deploy render --target aws; edit the source pipeline.yaml instead\n"
        + yaml.safe_dump(deployed.model_dump(mode="json", exclude_none=True, exclude={"deploy"}), sort_keys=False))
    return sorted([f"jobs/{s.name}" for s in {job.script for job in JOBS.values()}]
                  + ["airflow-requirements.txt", "pipeline.yaml"])


def _without(section: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in section.items() if k not in keys}
