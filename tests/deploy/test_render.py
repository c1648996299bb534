"""cdclake deploy render: deterministic tfvars for the repo's pipeline.yaml, from the local renderers."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest

from cdclake.config import load
from cdclake.deploy.exceptions import DeployError
from cdclake.deploy.render import TFVARS, layout, render
from cdclake.stack.kafka import LocalKafka
from tests.deploy.terraform_refs import load_module

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "deploy" / "terraform" / "examples" / "complete" / "rendered.tfvars.json"


@pytest.fixture(scope="module")
def pipeline():
    return load(ROOT / "pipeline.yaml", environ={})


@pytest.fixture(scope="module")
def rendered(pipeline, tmp_path_factory):
    out = tmp_path_factory.mktemp("aws")
    render(pipeline, out)
    return out


def _vars(out: Path) -> dict:
    return json.loads((out / TFVARS).read_text())


def test_render_matches_the_checked_in_example(rendered):
    assert (rendered / TFVARS).read_text() == GOLDEN.read_text(), (
        "the rendered tfvars changed: if intended, run `cdclake deploy render --out build/aws` and copy "
        "build/aws/terraform.tfvars.json to deploy/terraform/examples/complete/rendered.tfvars.json")


def test_render_is_deterministic(pipeline, rendered, tmp_path):
    render(pipeline, tmp_path)
    assert (tmp_path / TFVARS).read_bytes() == (rendered / TFVARS).read_bytes()
    assert (tmp_path / "artifacts" / "pipeline.yaml").read_bytes() == (rendered / "artifacts" / "pipeline.yaml").read_bytes()


def test_tfvars_are_exactly_the_root_module_variables(rendered):
    root = load_module(ROOT / "deploy" / "terraform")
    assert set(_vars(rendered)) - set(root.variables) == set()
    assert root.required - set(_vars(rendered)) == set()


def test_reference_sizing(rendered):
    v = _vars(rendered)
    assert (v["kafka_instance_type"], v["kafka_volume_size_gb"], len(v["kafka_nodes"])) == ("m5.xlarge", 500, 3)
    assert (v["connect_cpu"], v["connect_memory"], v["connect_tasks"]) == (2048, 4096, 2)
    assert v["source_parameters"]["rds.logical_replication"] == "1"
    assert v["source_parameters"]["max_slot_wal_keep_size"] == "10240"  # 10GB in MB


def _props(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))


def test_server_properties_come_from_the_local_stack_renderer(rendered, tmp_path):
    nodes = _vars(rendered)["kafka_nodes"]
    ips = layout(load(ROOT / "pipeline.yaml", environ={}).deploy.aws).kafka_ips
    local = LocalKafka(tmp_path, 3, 19092, 3)
    local_props = local.server_properties(local.node_list()[0])
    for node, ip in zip(nodes, ips, strict=True):
        props = _props(node["server_properties"])
        assert props["node.id"] == str(node["node_id"]) and node["private_ip"] == ip
        assert props["controller.quorum.voters"] == ",".join(f"{i + 1}@{a}:9093" for i, a in enumerate(ips))
        assert props["advertised.listeners"] == f"PLAINTEXT://{ip}:9092"
        assert set(props) == set(local_props)
        for key in ("default.replication.factor", "min.insync.replicas", "transaction.state.log.min.isr",
                    "transaction.state.log.replication.factor", "process.roles"):
            assert props[key] == local_props[key]


def test_each_node_keeps_its_address_in_its_own_subnet(rendered):
    v = _vars(rendered)
    for node in v["kafka_nodes"]:
        subnet = ipaddress.ip_network(v["private_subnet_cidrs"][node["subnet_index"]])
        assert ipaddress.ip_address(node["private_ip"]) in subnet


def test_glue_jobs_carry_iceberg_and_the_glue_catalog_conf(rendered):
    jobs = _vars(rendered)["glue_jobs"]
    assert set(jobs) == {"cdc-bronze-processor", "cdc-silver-processor", "cdc-gold-processor", "cdc-verify",
                         "cdc-iceberg-maintenance"}
    bronze = jobs["cdc-bronze-processor"]
    assert bronze["glue_version"] == "5.1" and bronze["default_arguments"]["--datalake-formats"] == "iceberg"
    conf = bronze["default_arguments"]["--conf"]
    assert "spark.sql.catalog.lake.catalog-impl=org.apache.iceberg.aws.glue.GlueCatalog" in conf
    assert "spark.sql.catalog.lake.warehouse=s3://cdclake-lakehouse-ap-south-1/iceberg" in conf
    assert "jdbc" not in conf


def test_emulator_endpoints_never_reach_the_deployed_pipeline(pipeline):
    from cdclake.deploy.render import aws_pipeline

    local = pipeline.model_copy(update={"lakehouse": pipeline.lakehouse.model_copy(update={
        "glue_endpoint": "http://127.0.0.1:5000", "s3_endpoint": "http://127.0.0.1:5000",
        "s3_path_style_access": True})})
    lake = aws_pipeline(local, layout(local.deploy.aws)).lakehouse
    assert (lake.glue_endpoint, lake.s3_endpoint, lake.s3_path_style_access) == (None, None, False)


def test_deployed_pipeline_loads_and_targets_aws(rendered):
    deployed = load(rendered / "artifacts" / "pipeline.yaml", environ={})
    assert deployed.airflow.target == "aws" and deployed.lakehouse.backend == "glue"
    assert deployed.kafka.bootstrap_servers.count(":9092") == 3
    assert not deployed.source.is_managed


def test_deployed_connector_reads_the_password_from_the_task_secret(rendered):
    from cdclake.capture.connector import connector_config

    text = (ROOT / "deploy" / "terraform" / "modules" / "debezium" / "main.tf").read_text()
    config = connector_config(load(rendered / "artifacts" / "pipeline.yaml", environ={}))
    assert config["database.password"] == "${env:CDCLAKE_SOURCE_PASSWORD}"
    assert 'password_env = "CDCLAKE_SOURCE_PASSWORD"' in text


def test_connect_workers_resolve_env_references(rendered):
    env = _vars(rendered)["connect_worker_environment"]
    assert "env" in env["CONNECT_CONFIG_PROVIDERS"].split(",")
    assert env["CONNECT_CONFIG_PROVIDERS_ENV_CLASS"].endswith("EnvVarConfigProvider")
    assert env["CONNECT_CONFIG_STORAGE_REPLICATION_FACTOR"] == "3"


def test_no_secret_in_the_rendered_files(rendered):
    for path in [rendered / TFVARS, rendered / "artifacts" / "pipeline.yaml"]:
        assert "password=" not in path.read_text() and "PASSWORD\"" not in path.read_text()


def test_missing_source_dsn_names_the_key(tmp_path):
    config = tmp_path / "pipeline.yaml"
    config.write_text("source: {tables: [users]}\n")
    with pytest.raises(DeployError, match="deploy.aws.source_dsn is not set; set it to"):
        render(load(config, environ={}), tmp_path / "out")
