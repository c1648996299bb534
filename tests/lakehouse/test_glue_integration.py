"""``lakehouse.backend: glue`` for real, against an emulated AWS (moto: S3 + the Glue Data
Catalog) and the session's real PostgreSQL, Kafka and Debezium.

The bronze, silver and gold job scripts run as AWS Glue runs them: the script file, Glue's
own arguments plus the ones the DAG's GlueJobOperator passes, the catalog conf Terraform
gives the job, and a launcher that brings Spark and the jars (here ``spark-submit``, on
Glue its runtime). They must not load the local installer or stack modules.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cdclake.config import Pipeline
from cdclake.deploy.render import glue_spark_conf
from cdclake.lakehouse.configuration import LakehousePlan, plan_from_pipeline
from cdclake.lakehouse.spark import jvm, session
from cdclake.orchestration.jobs import JOBS, glue_operator_kwargs
from cdclake.source import connection
from tests import moto_aws
from tests.conftest import unique
from tests.lakehouse.conftest import silver_rows, source_rows, write_pipeline
from tests.lakehouse.test_lakehouse_integration import DEMO, demo_capture

pytestmark = pytest.mark.integration
BUCKET = "cdclake-glue-test"
# Columns compared with PostgreSQL per demo table (the test computes the source side itself).
COMPARED = {"departments": "id, name, budget", "users": "id, name, email, is_active, department_id",
            "products": "id, sku, name, price", "orders": "id, user_id, product_id, quantity, total_amount, status"}
LOCAL_ONLY_MODULES = ("cdclake.install", "cdclake.stack")
IMPORTED = re.compile(r"^import time:\s+\d+\s+\|\s+\d+\s+\|\s+(\S+)\s*$", re.MULTILINE)


@pytest.fixture(scope="module")
def aws():
    server, emulated = moto_aws.start()
    emulated.client("s3").create_bucket(Bucket=BUCKET)  # Terraform's glue module creates it on AWS
    yield emulated
    server.stop()


@pytest.fixture(scope="module")
def glue_spark(spark, aws):
    """The session's Spark, with the dummy credentials for the AWS SDK inside its JVM."""
    system = jvm(spark).java.lang.System
    system.setProperty("aws.accessKeyId", "testing")
    system.setProperty("aws.secretAccessKey", "testing")
    return spark


def on_glue(pipeline: Pipeline, aws: moto_aws.EmulatedAWS, name: str, **lakehouse_keys) -> Pipeline:
    """The pipeline as deployed, on the emulator: Glue catalog, S3 warehouse, master chosen by the launcher."""
    checkpoints = (pipeline.state_dir / "checkpoints" / name).as_uri()  # Glue: s3:// through EMRFS
    lakehouse = pipeline.lakehouse.model_copy(update={**aws.lakehouse(BUCKET, checkpoints), **lakehouse_keys})
    airflow_aws = pipeline.airflow.aws.model_copy(update={
        "region": moto_aws.REGION, "scripts_location": f"s3://{BUCKET}/artifacts/jobs",
        "config_location": f"s3://{BUCKET}/artifacts/{name}.yaml"})
    airflow = pipeline.airflow.model_copy(update={"target": "aws", "aws": airflow_aws})
    spark = pipeline.spark.model_copy(update={"master": "glue"})
    return pipeline.model_copy(update={"lakehouse": lakehouse, "airflow": airflow, "spark": spark,
                                       "source": by_address(pipeline)})


def by_address(pipeline: Pipeline):
    """The session's PostgreSQL reached by DSN and password file, as a deployed job reaches RDS."""
    from cdclake.stack.postgres import LocalPostgres

    local = LocalPostgres(pipeline.state_dir, pipeline.source.port)
    return pipeline.source.model_copy(update={"managed": None, "dsn": connection.admin_dsn(pipeline),
                                              "password_file": local.password_file})


def glue_plan(spark, pipeline: Pipeline) -> LakehousePlan:
    """The plan, with its Glue catalog set on the test's Spark session."""
    plan = plan_from_pipeline(pipeline)
    session(plan)
    return plan


def glue_job(aws: moto_aws.EmulatedAWS, pipeline: Pipeline, config: Path, name: str):
    """Run job ``name`` as Glue does; returns (the process, the cdclake modules it imported).

    The script gets Glue's own arguments and the GlueJobOperator's ``script_args``; the Spark
    jobs get the ``--conf`` Terraform renders (``glue_spark_conf``) from the launcher.
    """
    job = JOBS[name]
    kwargs = glue_operator_kwargs(pipeline, job)
    glue_own = ["--JOB_ID", f"j_{name}", "--JOB_RUN_ID", f"jr_{name}", "--JOB_NAME", kwargs["job_name"],
                "--job-bookmark-option", "job-bookmark-disable", "--TempDir", f"s3://{BUCKET}/tmp"]
    script_args = [token for pair in kwargs["script_args"].items() for token in pair]
    launcher = [sys.executable]
    if job.spark:
        from cdclake.lakehouse.spark import JVM_UTC, local_jars

        confs = [c for conf in glue_spark_conf(pipeline).split(" --conf ") for c in ("--conf", conf)]
        launcher = [str(Path(sys.executable).parent / "spark-submit"), "--master", "local[2]",
                    "--driver-memory", "2g", "--jars", ",".join(local_jars()),
                    "--conf", f"spark.driver.extraJavaOptions={JVM_UTC}", "--conf", "spark.driver.bindAddress=127.0.0.1",
                    "--conf", "spark.driver.host=127.0.0.1", "--conf", "spark.ui.enabled=false", *confs]
    env = {**aws.env(), "PYTHONPROFILEIMPORTTIME": "1", "PYSPARK_PYTHON": sys.executable,
           "PYSPARK_DRIVER_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1"}
    proc = subprocess.run([*launcher, str(job.script), *glue_own, *script_args], cwd=config.parent, env=env,
                          capture_output=True, text=True, timeout=900)
    # spark-submit merges the Python driver's stderr (where the import log goes) into its stdout.
    modules = {m for m in IMPORTED.findall(proc.stdout + proc.stderr) if m.startswith("cdclake")}
    return proc, modules


def assert_glue_job(aws, pipeline: Pipeline, config: Path, name: str) -> subprocess.CompletedProcess:
    proc, modules = glue_job(aws, pipeline, config, name)
    output = "\n".join(line for line in (proc.stdout + proc.stderr).splitlines() if not line.startswith("import time"))
    assert proc.returncode == 0, f"{name} job failed:\n{output[-4000:]}"
    assert "cdclake.lakehouse.configuration" in modules, "the import log shows no cdclake module: not recorded"
    local = sorted(m for m in modules if m.startswith(LOCAL_ONLY_MODULES))
    assert not local, f"the {name} job loaded local-stack modules Glue does not have: {local}"
    return proc


def cli(aws, config: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cdclake", "-c", str(config), *args], env=aws.env(),
                          capture_output=True, text=True, timeout=600)


@pytest.mark.timeout(3600)  # four Spark job processes and a capture, on a shared 2-core machine
def test_bronze_silver_gold_as_glue_jobs_on_emulated_aws(stack, glue_spark, aws, cleanup):
    tag = unique("glue")
    captured, _ = demo_capture(stack, tag, DEMO, cleanup, ops=300)
    pipeline = on_glue(captured, aws, tag)
    config = write_pipeline(pipeline, tag)
    aws.client("s3").upload_file(str(config), BUCKET, f"artifacts/{config.name}")  # as Terraform uploads it

    for layer in ("bronze", "silver", "gold"):
        assert_glue_job(aws, pipeline, config, layer)

    # Silver equals PostgreSQL, read back through Spark's GlueCatalog and S3FileIO.
    plan = glue_plan(glue_spark, pipeline)
    compared = 0
    for table, columns in COMPARED.items():
        rows = source_rows(captured, f"{tag}.{table}", columns)
        assert silver_rows(glue_spark, plan.table(table).silver, columns) == rows, table
        compared += len(rows)
    assert compared > 200

    # The tables are Iceberg tables in the Glue catalog, their files in the bucket.
    glue_tables = {t["Name"]: t for t in aws.client("glue").get_tables(DatabaseName=plan.namespace)["TableList"]}
    expected = {f"{layer}_{plan.table(t).base}" for layer in ("bronze", "silver") for t in DEMO} | {"gold_user_stats"}
    assert expected <= set(glue_tables), sorted(glue_tables)
    for table in expected:
        params = glue_tables[table]["Parameters"]
        assert params["table_type"] == "ICEBERG"
        assert params["metadata_location"].startswith(f"s3://{BUCKET}/iceberg/{plan.namespace}.db/{table}/")

    verified = cli(aws, config, "verify")
    assert verified.returncode == 0, verified.stdout[-3000:] + verified.stderr[-3000:]
    assert verified.stdout.count("ok  ") >= len(DEMO) + 1

    # `cdclake sql` reads the same tables through pyiceberg's GlueCatalog (DuckDB engine).
    answer = cli(aws, config, "--output", "json", "sql",
                 f"SELECT count(*) AS n, sum(quantity) AS q FROM {plan.table('orders').silver_short}")
    assert answer.returncode == 0, answer.stderr[-2000:]
    expected_orders = source_rows(captured, f"{tag}.orders", "count(*), sum(quantity)")[0]
    assert [(int(r["n"]), int(r["q"])) for r in json.loads(answer.stdout)] == [expected_orders]

    # The verify job as Glue runs it (plain python, pyiceberg; no Spark, no local stack).
    assert "ok" in assert_glue_job(aws, pipeline, config, "verify").stdout


@pytest.mark.parametrize("point, caught_by", [
    ("PutMetadata", "is not same as the current Glue location"),  # Iceberg's metadata-location check
    ("UpdateTable", "Glue detected concurrent update"),  # Glue's table VersionId
])
def test_two_writers_on_one_glue_table_lose_nothing(stack, glue_spark, aws, point, caught_by):
    """A rival commit lands inside a writer's commit: the writer's conflict is detected, and
    retried it lands on top of the rival's; no commit is lost."""
    ns = unique("race")
    plan = glue_plan(glue_spark, on_glue(stack, aws, ns, namespace=ns))
    name = f"{plan.catalog.name}.{ns}.two_writers"
    glue_spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {plan.catalog.name}.{ns}")
    glue_spark.sql(f"CREATE TABLE {name} (id int, writer string) USING iceberg "
                   "TBLPROPERTIES ('format-version'='2', 'commit.retry.num-retries'='0')")
    glue_spark.sql(f"INSERT INTO {name} VALUES (0, 'seed')")

    def rows():
        return silver_rows(glue_spark, name, "id, writer")

    def rival(row_id: int):
        return lambda: glue_spark.sql(f"INSERT INTO {name} VALUES ({row_id}, 'rival')")

    moto_aws.RACE.arm(point, rival(1))
    with pytest.raises(Exception, match=caught_by):
        glue_spark.sql(f"INSERT INTO {name} VALUES (2, 'writer')")
    assert moto_aws.RACE.ran.is_set() and moto_aws.RACE.error is None
    assert rows() == [(0, "seed"), (1, "rival")]  # the rival won; the loser left nothing behind

    # With Iceberg's commit retries (the default the jobs run with), the loser re-applies its
    # append on the winner's snapshot.
    glue_spark.sql(f"ALTER TABLE {name} UNSET TBLPROPERTIES ('commit.retry.num-retries')")
    moto_aws.RACE.arm(point, rival(3))
    glue_spark.sql(f"INSERT INTO {name} VALUES (4, 'writer')")
    assert moto_aws.RACE.ran.is_set() and moto_aws.RACE.error is None
    assert rows() == [(0, "seed"), (1, "rival"), (3, "rival"), (4, "writer")]
    glue = aws.client("glue").get_table(DatabaseName=ns, Name="two_writers")["Table"]["Parameters"]
    current = glue_spark.sql(f"SELECT file FROM {name}.metadata_log_entries ORDER BY timestamp DESC LIMIT 1").first()
    assert glue["metadata_location"] == current[0]
