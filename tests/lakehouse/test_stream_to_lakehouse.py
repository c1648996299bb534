"""The shipped pipeline.yaml's stream example in front of the lakehouse, on the real stack:
``cdclake stream`` filters and enriches users while the workload runs, bronze reads exactly
what it writes (and the CDC topics of the tables it does not read), and ``verify`` is exact
for every table it does not reshape, reporting the filtered one as such."""

from __future__ import annotations

import json

import pytest
from psycopg import sql

from cdclake.capture import service
from cdclake.config import load
from cdclake.lakehouse import runner
from cdclake.lakehouse.configuration import plan_from_pipeline
from cdclake.source import connection
from cdclake.source.demo import create_demo
from cdclake.source.workload import Workload
from cdclake.verify.verify import verify
from tests.conftest import read_topics, unique
from tests.lakehouse.conftest import lake_pipeline, start_capture, wait_records
from tests.stream.test_stream_integration import running

pytestmark = pytest.mark.integration
QUIET = lambda message: None  # noqa: E731
DEMO = ["departments", "users", "products", "orders"]


def shipped_stream(tag: str):
    """pipeline.yaml's stream section, on this test's topics, group and output prefix."""
    text = json.dumps(load("pipeline.yaml", environ={}).stream.model_dump(mode="json"))
    text = text.replace('"cdc.', f'"cdc_{tag}.{tag}__').replace('"bronze.', f'"out_{tag}.{tag}__')
    section = {**json.loads(text), "group_id": f"g_{tag}", "output_prefix": f"out_{tag}",
               "dead_letter_topic": f"dlq_{tag}", "commit_interval_ms": 200, "enabled": True}
    return type(load("pipeline.yaml", environ={}).stream).model_validate(section)


def test_shipped_stream_example_feeds_bronze_and_verify_reports_the_filtered_table(stack, spark, cleanup):
    tag = unique("strm")
    pipeline = lake_pipeline(stack, tag, DEMO)
    pipeline = pipeline.model_copy(update={"stream": shipped_stream(tag)})
    cleanup(pipeline)
    with connection.connect(pipeline, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(tag)))
    create_demo(pipeline, seed=3, users=40, products=10, orders=60, schema=tag)
    start_capture(pipeline)
    plan = plan_from_pipeline(pipeline)
    users = plan.table("users")
    assert users.topic == f"out_{tag}.{tag}__users" and users.transformed
    assert plan.table("orders").topic == f"cdc_{tag}.{tag}__orders" and not plan.table("orders").transformed

    stream = pipeline.stream.model_dump(mode="json")
    with running(stack, stream):
        Workload(pipeline, seed=4, schema=tag).run(rate=300, ops=300, progress=QUIET)
        cdc_users = f"cdc_{tag}.{tag}__users"
        service.wait_caught_up(pipeline, service.current_lsn(pipeline))  # every change is in Kafka
        total = wait_records(pipeline, [cdc_users], 40)
        inserts = {r["key"]["id"] for r in read_topics(pipeline.kafka.bootstrap, [cdc_users],
                                                       lambda rs: len(rs) >= total) if r["value"]["__op"] == "c"}
        wait_records(pipeline, [users.topic], len(inserts))
    report = runner.run(spark, plan, ["bronze", "silver"], progress=QUIET)
    assert not report.failures, report.failures

    # silver_users holds exactly the inserts the filter passed, enriched columns left aside.
    keys = {r[0] for r in spark.sql(f"SELECT id FROM {users.silver}").collect()}
    assert keys == inserts and inserts
    result = verify(plan, gold=False, progress=QUIET)
    by_table = {t.table: t for t in result.tables}
    assert result.ok and by_table[users.source].skipped
    assert all(by_table[t.source].silver_rows > 0 and not by_table[t.source].skipped
               for t in plan.tables if t is not users)
