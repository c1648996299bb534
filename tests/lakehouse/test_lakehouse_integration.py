"""The lakehouse on the real stack: Debezium events -> bronze -> silver -> gold on Spark,
then ``verify`` against PostgreSQL. Every test owns its schema, topics and namespace."""

from __future__ import annotations

import json

import pytest
from psycopg import sql

from cdclake.broker import clients
from cdclake.lakehouse import runner
from cdclake.lakehouse.configuration import SILVER_WATERMARK_KEY, plan_from_pipeline
from cdclake.lakehouse.maintenance import maintain
from cdclake.lakehouse.spark import latest_summary_value
from cdclake.query.engines import run_sql
from cdclake.source import connection
from cdclake.source.demo import create_demo
from cdclake.source.workload import Workload
from cdclake.verify.verify import verify
from tests.conftest import unique
from tests.lakehouse.conftest import lake_pipeline, start_capture, wait_captured

pytestmark = pytest.mark.integration
DEMO = ["departments", "users", "products", "orders"]
QUIET = lambda message: None  # noqa: E731


def demo_capture(stack, tag: str, tables: list[str], cleanup, ops: int):
    pipeline = lake_pipeline(stack, tag, tables)
    cleanup(pipeline)
    with connection.connect(pipeline, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(tag)))
    create_demo(pipeline, seed=11, users=60, products=20, orders=120, schema=tag)
    start_capture(pipeline)
    Workload(pipeline, seed=5, schema=tag).run(rate=500, ops=ops, progress=QUIET)
    plan = plan_from_pipeline(pipeline)
    wait_captured(pipeline, plan)
    return pipeline, plan


def snapshot_ids(spark, plan) -> dict[str, int | None]:
    names = [r.bronze for r in plan.tables] + [r.silver for r in plan.tables]
    names += [f"{plan.catalog.name}.{plan.namespace}.{m}" for m in ("gold_user_stats", "gold_revenue_by_product_day",
                                                                      "gold_segment_summary")]
    return {n: latest_summary_value(spark, n, "-")[0] for n in names if spark.catalog.tableExists(n)}


def assert_exact(plan, gold: bool = True):
    report = verify(plan, gold=gold, progress=QUIET)
    assert report.ok, json.dumps(report.as_dict(), indent=1, default=str)[:4000]
    return report


def test_end_to_end_silver_equals_source_and_gold_equals_postgres(stack, spark, cleanup):
    tag = unique("e2e")
    pipeline, plan = demo_capture(stack, tag, DEMO, cleanup, ops=700)
    report = runner.run(spark, plan, ["bronze", "silver", "gold"], progress=QUIET)
    assert not report.failures
    verified = assert_exact(plan)
    assert sum(t.source_rows for t in verified.tables) > 200 and all(g.source_rows for g in verified.gold)

    # The workload's hard cases really went through: TOAST placeholders and key moves.
    products, users = plan.table("products"), plan.table("users")
    assert spark.sql(f"SELECT count(*) FROM {users.bronze} WHERE event_value LIKE "
                     "'%__debezium_unavailable_value%'").first()[0] > 0
    assert spark.sql(f"SELECT count(*) FROM {products.bronze} d JOIN {products.bronze} c ON c.lsn = d.lsn "
                     "AND d.op = 'd' AND c.op = 'c'").first()[0] > 0

    # Running every job again is a no-op: no new snapshot anywhere.
    before = snapshot_ids(spark, plan)
    again = runner.run(spark, plan, ["bronze", "silver", "gold"], progress=QUIET)
    assert not again.failures and not any(r.merged for r in again.silver) and not any(g.rebuilt for g in again.gold)
    assert snapshot_ids(spark, plan) == before

    # Both engines answer the same SQL by the same names; time travel to the first build.
    query = f"SELECT segment, count(*) AS n, sum(lifetime_value) AS v FROM {plan.namespace}.gold_user_stats " \
            "GROUP BY segment ORDER BY segment"
    assert run_sql(plan, query).rows == run_sql(plan, query, "spark", spark=spark).rows
    orders = plan.table("orders")
    first = latest_summary_value(spark, orders.silver, SILVER_WATERMARK_KEY)[0]
    Workload(pipeline, seed=9, schema=tag).run(rate=500, ops=100, progress=QUIET)
    wait_captured(pipeline, plan)
    assert not runner.run(spark, plan, ["bronze", "silver", "gold"], progress=QUIET).failures
    old = f"SELECT count(*) FROM {orders.silver_short} VERSION AS OF {first}"
    assert run_sql(plan, old).rows == run_sql(plan, old, "spark", spark=spark).rows
    assert_exact(plan)

    # Maintenance (dry run, then for real) keeps silver exact and the next run a no-op.
    only = [f"bronze_{orders.base}", f"silver_{orders.base}"]
    dry = maintain(spark, plan, dry_run=True, progress=QUIET, only=only)
    assert len(dry) == 2 and all("data_files" in r.actions for r in dry)
    done = maintain(spark, plan, progress=QUIET, only=only)
    assert all("rewrite_manifests" in r.actions for r in done)
    assert not any(r.merged for r in runner.run(spark, plan, ["silver"], progress=QUIET).silver)
    assert_exact(plan, gold=False)


def produce(bootstrap: str, topic: str, values: list[bytes | None]) -> None:
    producer = clients.producer(bootstrap)
    for value in values:
        producer.produce(topic, key=b'{"id": 0}', value=value)
    assert producer.flush(10) == 0


def test_schema_evolution_unparseable_events_and_table_isolation(stack, spark, cleanup):
    tag = unique("evo")
    pipeline = lake_pipeline(stack, tag, ["items", "other"])
    cleanup(pipeline)
    with connection.connect(pipeline, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(tag)))
        conn.execute(sql.SQL("CREATE TABLE {}.items (id int PRIMARY KEY, name text, qty int)").format(
            sql.Identifier(tag)))
        conn.execute(sql.SQL("CREATE TABLE {}.other (id int PRIMARY KEY, v int)").format(sql.Identifier(tag)))
        conn.execute(sql.SQL("INSERT INTO {}.items SELECT g, 'item ' || g, g FROM generate_series(1, 20) g").format(
            sql.Identifier(tag)))
        conn.execute(sql.SQL("INSERT INTO {}.other SELECT g, g FROM generate_series(1, 5) g").format(
            sql.Identifier(tag)))
    start_capture(pipeline)
    plan = plan_from_pipeline(pipeline)
    items, other = plan.table("items"), plan.table("other")
    wait_captured(pipeline, plan)
    assert not runner.run(spark, plan, ["bronze", "silver"], progress=QUIET).failures

    # Mid-stream: a new column, a widened type, and two payloads that are not change events.
    t = sql.Identifier(tag)
    with connection.connect(pipeline, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER TABLE {}.items ADD COLUMN note text").format(t))
        conn.execute(sql.SQL("ALTER TABLE {}.items ALTER COLUMN qty TYPE bigint").format(t))
        conn.execute(sql.SQL("UPDATE {}.items SET note = 'n' || id, qty = id * 10000000000 WHERE id <= 10").format(t))
        conn.execute(sql.SQL("INSERT INTO {}.items VALUES (21, 'new', 5000000000, 'fresh')").format(t))
    produce(pipeline.kafka.bootstrap, items.topic, [b"{not json", b"\xff\xfe binary"])
    wait_captured(pipeline, plan)
    assert not runner.run(spark, plan, ["bronze", "silver"], progress=QUIET).failures
    types = {f.name: f.dataType.simpleString() for f in spark.table(items.silver).schema.fields}
    assert types["note"] == "string" and types["qty"] == "bigint"
    assert spark.sql(f"SELECT count(*) FROM {items.silver} WHERE note IS NOT NULL").first()[0] == 11
    flagged = spark.sql(f"SELECT parse_error, raw_value FROM {items.bronze} WHERE parse_error IS NOT NULL").collect()
    assert len(flagged) == 2 and any(r.raw_value == b"\xff\xfe binary" for r in flagged)
    assert_exact(plan, gold=False)

    # An incompatible change stops that table only, naming the column and the fix.
    with connection.connect(pipeline, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER TABLE {}.other ALTER COLUMN v TYPE text").format(t))
        conn.execute(sql.SQL("UPDATE {}.other SET v = 'x' WHERE id = 1").format(t))
        conn.execute(sql.SQL("UPDATE {}.items SET name = 'still flowing' WHERE id = 1").format(t))
    wait_captured(pipeline, plan)
    report = runner.run(spark, plan, ["bronze", "silver"], progress=QUIET)
    assert set(report.failures) == {other.source}
    assert f"{other.source}.v" in report.failures[other.source] and "rebuild silver" in report.failures[other.source]
    assert spark.sql(f"SELECT name FROM {items.silver} WHERE id = 1").first()[0] == "still flowing"
