"""The ``target: aws`` DAG under Airflow's ``dag.test()`` against an emulated AWS (moto).

The health checks run against the real local stack; every job task is the real
``GlueJobOperator`` calling moto's Glue API (create the job, start a run, wait), so an
argument the AWS SDK or Glue refuses fails here. moto does not execute Glue job scripts:
that the scripts run under these arguments is tests/lakehouse/test_glue_integration.py.
"""

from __future__ import annotations

import json

import pytest

from cdclake.orchestration.jobs import JOBS, glue_operator_kwargs
from tests import moto_aws
from tests.lakehouse.conftest import write_pipeline
from tests.orchestration.test_airflow_integration import CHECKS, airflow_env, captured, helper  # noqa: F401

pytestmark = pytest.mark.integration
DAG_JOBS = ["bronze", "silver", "gold", "verify"]
BUCKET = "cdclake-dag-test"
ROLE = "cdclake-glue"
TRUST = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "glue.amazonaws.com"}, "Action": "sts:AssumeRole"}]}


@pytest.fixture
def aws():
    server, emulated = moto_aws.start()
    # What Terraform's glue module creates on AWS: the bucket and the jobs' role.
    emulated.client("s3").create_bucket(Bucket=BUCKET)
    emulated.client("iam").create_role(RoleName=ROLE, AssumeRolePolicyDocument=json.dumps(TRUST))
    yield emulated
    server.stop()


def aws_pipeline(pipeline, aws: moto_aws.EmulatedAWS):
    lakehouse = pipeline.lakehouse.model_copy(update=aws.lakehouse(BUCKET, f"s3://{BUCKET}/checkpoints"))
    artifacts = f"s3://{BUCKET}/artifacts"
    airflow_aws = pipeline.airflow.aws.model_copy(update={
        "region": moto_aws.REGION, "iam_role_name": ROLE, "scripts_location": f"{artifacts}/jobs",
        "config_location": f"{artifacts}/pipeline.yaml", "package_location": f"{artifacts}/cdclake-0.1.0-py3-none-any.whl"})
    airflow = pipeline.airflow.model_copy(update={"target": "aws", "aws": airflow_aws})
    return pipeline.model_copy(update={"lakehouse": lakehouse, "airflow": airflow})


def test_aws_dag_drives_glue_jobs_on_emulated_aws(airflow_env, captured, aws):  # noqa: F811
    pipeline = aws_pipeline(captured, aws)
    config = str(write_pipeline(pipeline, f"{pipeline.lakehouse.namespace}_aws"))
    connection = json.dumps({"conn_type": "aws", "extra": {"endpoint_url": aws.endpoint,
                                                            "region_name": moto_aws.REGION}})
    result = helper(airflow_env, "test", config, "self_managed_cdc_pipeline", CDCLAKE_CONFIG=config,
                    AIRFLOW_CONN_AWS_DEFAULT=connection, **moto_aws.DUMMY_CREDENTIALS)
    assert result["state"] == "success", result
    assert result["tasks"] == {task: "success" for task in CHECKS + DAG_JOBS}

    # What the operators created and started in Glue is what the job table renders.
    glue = aws.client("glue")
    for name in DAG_JOBS:
        expected = glue_operator_kwargs(pipeline, JOBS[name])
        job = glue.get_job(JobName=expected["job_name"])["Job"]
        assert job["Command"]["ScriptLocation"] == expected["script_location"]
        assert job["Role"].endswith(f":role/{ROLE}")
        create = expected["create_job_kwargs"]
        assert (job["GlueVersion"], job["WorkerType"], job["NumberOfWorkers"]) == (
            create["GlueVersion"], create["WorkerType"], create["NumberOfWorkers"])
        runs = glue.get_job_runs(JobName=expected["job_name"])["JobRuns"]
        assert [run["Arguments"] for run in runs] == [expected["script_args"]]
        assert [run["JobRunState"] for run in runs] == ["SUCCEEDED"]
