"""Gold models with ref() on the real stack: captured silver -> a chain of models on Spark +
Iceberg, built parents first from one silver point, checked against PostgreSQL; data tests
that fail the run; --select; and the CLI's gold ls / unknown-ref error through the entry point."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from cdclake.errors import ExitCode
from cdclake.lakehouse import runner
from cdclake.lakehouse.configuration import GOLD_INPUTS_KEY, GOLD_MODEL_KEY
from cdclake.lakehouse.exceptions import JobsFailedError
from cdclake.lakehouse.spark import latest_summary_value
from cdclake.source import connection
from cdclake.source.workload import Workload
from tests.conftest import capture_pipeline, unique
from tests.lakehouse.conftest import wait_captured, write_pipeline
from tests.lakehouse.test_lakehouse_integration import QUIET, assert_exact, demo_capture

pytestmark = pytest.mark.integration
TABLES = ["users", "orders"]

# Names sort against the build order: a_top reads m_mid, which reads z_base.
MODELS = {
    "z_base.sql": "-- Orders per user.\nSELECT o.user_id, COUNT(*) AS n, SUM(o.total_amount) AS amount\n"
                  "FROM {{ source('orders') }} o GROUP BY o.user_id",
    "m_mid.sql": "SELECT u.id AS user_id, u.name, b.n, b.amount\nFROM {{ source('users') }} u\n"
                 "JOIN {{ ref('z_base') }} b ON b.user_id = u.id",
    "a_top.sql": "SELECT COUNT(*) AS buyers, SUM(n) AS orders FROM {{ ref('gold_m_mid') }}",
}
SCHEMA = """
version: 2
models:
  - name: m_mid
    description: Users with their orders.
    columns:
      - name: user_id
        data_tests: [not_null, unique, {relationships: {to: "source('users')", field: id}}]
"""
FAILING = SCHEMA + """      - name: name
        data_tests: [{accepted_values: {values: [nobody]}}]
"""


def write_models(folder: Path, schema: str = SCHEMA) -> None:
    (folder / "gold").mkdir(parents=True, exist_ok=True)
    for name, text in MODELS.items():
        (folder / "gold" / name).write_text(text)
    (folder / "gold" / "schema.yml").write_text(schema)


def gold_name(plan, model: str) -> str:
    return f"{plan.catalog.name}.{plan.namespace}.{model}"


def current(spark, plan, model: str) -> int:
    return latest_summary_value(spark, gold_name(plan, model), "-")[0]


def top_from_postgres(pipeline, schema: str) -> tuple:
    with connection.connect(pipeline, autocommit=True) as conn:
        return conn.execute(f"SELECT count(*), sum(n) FROM (SELECT u.id, count(*) AS n FROM {schema}.users u "
                            f"JOIN {schema}.orders o ON o.user_id = u.id GROUP BY u.id) t").fetchone()


def cli(config: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cdclake", "-c", str(config), *args], capture_output=True,
                          text=True, timeout=600)


@pytest.mark.timeout(1800)  # a guard on a loaded machine, not a timed assertion
def test_ref_chain_builds_in_order_from_one_silver_point_and_data_tests_fail_the_run(stack, spark, cleanup,
                                                                                     tmp_path):
    tag = unique("gref")
    pipeline, plan = demo_capture(stack, tag, TABLES, cleanup, ops=100)
    write_models(tmp_path)
    plan = dataclasses.replace(plan, models_dir=tmp_path)
    assert not runner.run(spark, plan, ["bronze", "silver"], progress=QUIET).failures

    report = runner.run(spark, plan, ["gold"], progress=QUIET)
    assert not report.failures
    assert [(g.model, g.rebuilt) for g in report.gold] == [("gold_z_base", True), ("gold_m_mid", True),
                                                           ("gold_a_top", True)]
    assert report.gold[1].tests == 3
    # Each child read its parent at the snapshot just built, and all at one silver point.
    silver = {r.silver: latest_summary_value(spark, r.silver, "-")[0] for r in (plan.table("users"),
                                                                                 plan.table("orders"))}
    marker = json.loads(latest_summary_value(spark, gold_name(plan, "gold_m_mid"), GOLD_MODEL_KEY)[1])
    assert marker["refs"] == {"gold_z_base": current(spark, plan, "gold_z_base")}
    assert json.loads(latest_summary_value(spark, gold_name(plan, "gold_a_top"), GOLD_INPUTS_KEY)[1]) == silver
    top = spark.sql(f"SELECT buyers, orders FROM {gold_name(plan, 'gold_a_top')}").first()
    assert tuple(top) == top_from_postgres(pipeline, tag) and top[0] > 0
    verified = assert_exact(plan)
    assert [g.model for g in verified.gold] == ["gold_z_base", "gold_m_mid", "gold_a_top"]
    assert not any(g.rebuilt for g in runner.run(spark, plan, ["gold"], progress=QUIET).gold)

    # New changes: a child alone would read a stale parent, so --select refuses; +child builds all.
    Workload(pipeline, seed=8, schema=tag).run(rate=500, ops=40, progress=QUIET)
    wait_captured(pipeline, plan)
    assert not runner.run(spark, plan, ["bronze", "silver"], progress=QUIET).failures
    alone = runner.run(spark, plan, ["gold"], progress=QUIET, select=["m_mid"])
    assert "gold_m_mid refs gold_z_base, which was built from other silver snapshots" in alone.failures["gold_m_mid"]
    chain = runner.run(spark, plan, ["gold"], progress=QUIET, select=["+a_top"])
    assert not chain.failures and all(g.rebuilt for g in chain.gold) and len(chain.gold) == 3
    assert tuple(spark.sql(f"SELECT * FROM {gold_name(plan, 'gold_a_top')}").first()) == top_from_postgres(pipeline,
                                                                                                            tag)

    # A failing data test fails the run, leaves the model's table as it was, skips its children.
    before = {m: current(spark, plan, m) for m in ("gold_m_mid", "gold_a_top")}
    (tmp_path / "gold" / "schema.yml").write_text(FAILING)
    failed = runner.run(spark, plan, ["gold"], progress=QUIET)
    assert "accepted_values(name) failed on" in failed.failures["gold_m_mid"]
    assert failed.failures["gold_a_top"] == "skipped: it refs gold_m_mid, which failed"
    with pytest.raises(JobsFailedError, match="gold_m_mid: gold_m_mid: 1 data test"):
        failed.raise_on_failure()
    assert {m: current(spark, plan, m) for m in before} == before

    # Through the entry point: an edited model and its child rebuild by --select, z_base untouched.
    (tmp_path / "gold" / "schema.yml").write_text(SCHEMA)
    mid = tmp_path / "gold" / "m_mid.sql"
    mid.write_text(mid.read_text().replace("b.amount", "b.amount, b.n * 2 AS n2"))
    config = write_pipeline(pipeline.model_copy(update={"lakehouse": pipeline.lakehouse.model_copy(
        update={"models_dir": str(tmp_path)})}), tag)
    bad = cli(config, "run", "gold", "--select", "nope")
    assert bad.returncode == ExitCode.LAKEHOUSE and "unknown gold model 'gold_nope' in --select; models: " \
        "gold_a_top, gold_m_mid, gold_z_base" in bad.stderr
    z_before = current(spark, plan, "gold_z_base")
    done = cli(config, "run", "gold", "--select", "m_mid+")
    assert done.returncode == 0, done.stderr
    assert "gold: rebuilt gold_m_mid, gold_a_top" in done.stdout
    assert current(spark, plan, "gold_z_base") == z_before
    assert_exact(plan)


def test_gold_ls_and_an_unknown_ref_through_the_entry_point(stack, tmp_path):
    write_models(tmp_path)
    tag = unique("gls")
    pipeline = capture_pipeline(stack, tag, TABLES)
    pipeline = pipeline.model_copy(update={"lakehouse": pipeline.lakehouse.model_copy(
        update={"models_dir": str(tmp_path)})})
    config = write_pipeline(pipeline, tag)
    listed = cli(config, "gold", "ls", "--output", "json")
    assert listed.returncode == 0, listed.stderr
    models = json.loads(listed.stdout)["models"]
    assert [(m["model"], m["refs"]) for m in models] == [("gold_z_base", []), ("gold_m_mid", ["gold_z_base"]),
                                                         ("gold_a_top", ["gold_m_mid"])]
    assert models[0]["description"] == "Orders per user." and "unique(user_id)" in models[1]["tests"]

    (tmp_path / "gold" / "a_top.sql").write_text("SELECT COUNT(*) AS buyers\nFROM {{ ref('m_mdi') }}")
    broken = cli(config, "gold", "ls")
    assert broken.returncode == ExitCode.LAKEHOUSE
    assert broken.stderr.strip().splitlines()[-1].endswith(
        f"{tmp_path}/gold/a_top.sql:2: model gold_a_top refs unknown model 'gold_m_mdi'; "
        "known models: gold_a_top, gold_m_mid, gold_z_base")
