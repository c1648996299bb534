"""Unit tests of the lakehouse, query and verify pieces: no JVM, no stack."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import SecretStr

from cdclake.config.tables import TableId, topic_name
from cdclake.lakehouse import bronze, gold, silver
from cdclake.lakehouse.configuration import CatalogSettings, LakehousePlan, TableRef
from cdclake.lakehouse.exceptions import LakehouseError, SchemaChangeError
from cdclake.lakehouse.jobs.args import resolved_options
from cdclake.lakehouse.pgschema import Column, TableSchema, convert, schema_changes, spark_scalar_type
from cdclake.lakehouse.spark import as_spark_conf
from cdclake.query.engines import QueryResult, table_pattern
from cdclake.query.render import as_csv, as_json, as_table
from cdclake.verify.normalize import canonical


def plan(**kw) -> LakehousePlan:
    catalog = CatalogSettings("lake", "jdbc", "file:///tmp/wh", jdbc_url="jdbc:postgresql://127.0.0.1:5/cat",
                              user="cdclake", password=SecretStr("s3cret"))
    refs = (TableRef("public.users", "cdc.users", "lake", "cdc_db"),
            TableRef("sales.orders", "cdc.sales__orders", "lake", "cdc_db"))
    return LakehousePlan(catalog=catalog, namespace="cdc_db", bootstrap="b:9092", checkpoints="file:///tmp/cp",
                         **{"tables": refs, **kw})


def col(name, pg_type, typmod=-1, is_array=False, key_pos=0, declared=None) -> Column:
    return Column(name, pg_type, is_array, typmod, declared or pg_type, key_pos=key_pos)


def numeric(p, s) -> int:
    return ((p << 16) | s) + 4


# --- names and config -------------------------------------------------------------------

def test_table_names_follow_the_event_contract():
    users, orders = plan().tables
    assert (users.bronze, users.silver_short) == ("lake.cdc_db.bronze_users", "cdc_db.silver_users")
    assert orders.silver == "lake.cdc_db.silver_sales__orders"
    assert topic_name("cdc", TableId.parse("public.users")) == "cdc.users"
    assert topic_name("cdc", TableId.parse("sales.orders")) == "cdc.sales__orders"
    assert plan().table("silver_users") == users and plan().table("sales.orders") == orders
    assert plan().table("silver_sales__orders") == orders and plan().table("orders") == orders
    both = plan(tables=(*plan().tables, TableRef("public.orders", "cdc.orders", "lake", "cdc_db")))
    assert both.table("orders").source == "public.orders"  # public's, never the other schema's


def test_public_and_schema_tables_of_one_flattened_name_stay_apart():
    refs = [TableRef(t, "", "lake", "ns") for t in ("public.sales_orders", "sales.orders")]
    assert len({r.silver for r in refs}) == len({r.tombstones for r in refs}) == 2
    p = plan(tables=tuple(refs))
    assert len({bronze.checkpoint(p, r) for r in refs}) == 2


def test_unknown_table_lists_the_configured_ones():
    with pytest.raises(LakehouseError, match="public.users, sales.orders"):
        plan().table("nope")


def test_spark_conf_local_jdbc_catalog():
    conf = as_spark_conf(plan(spark_conf={"spark.sql.shuffle.partitions": "8"}), jars=["/a.jar", "/b.jar"])
    assert conf["spark.sql.catalog.lake.type"] == "jdbc"
    assert conf["spark.sql.catalog.lake.jdbc.schema-version"] == "V1"
    assert conf["spark.sql.catalog.lake.uri"] == "jdbc:postgresql://127.0.0.1:5/cat"
    assert conf["spark.sql.session.timeZone"] == "UTC"
    assert conf["spark.jars"] == "/a.jar,/b.jar"
    assert conf["spark.sql.shuffle.partitions"] == "8"  # pipeline.yaml's spark.conf wins
    assert "s3cret" not in repr(plan().catalog)


def test_spark_conf_glue_catalog_and_s3fileio():
    glue = CatalogSettings("lake", "glue", "s3://bucket/iceberg", region="eu-west-1")
    conf = as_spark_conf(LakehousePlan(catalog=glue, namespace="cdc_db", tables=(), bootstrap="b:9092",
                                       checkpoints="s3://bucket/cp", spark_master="yarn"))
    assert conf["spark.sql.catalog.lake.catalog-impl"] == "org.apache.iceberg.aws.glue.GlueCatalog"
    assert conf["spark.sql.catalog.lake.io-impl"] == "org.apache.iceberg.aws.s3.S3FileIO"
    assert conf["spark.sql.catalog.lake.warehouse"] == "s3://bucket/iceberg"
    assert "spark.sql.catalog.lake.type" not in conf and "spark.driver.bindAddress" not in conf


def test_glue_endpoint_overrides_reach_spark_and_pyiceberg():
    from cdclake.lakehouse.catalog import glue_properties

    moto = "http://127.0.0.1:5000"
    glue = CatalogSettings("lake", "glue", "s3://bucket/iceberg", region="us-east-1", glue_endpoint=moto,
                           s3_endpoint=moto, s3_path_style_access=True)
    conf = as_spark_conf(LakehousePlan(catalog=glue, namespace="cdc_db", tables=(), bootstrap="b:9092",
                                       checkpoints="s3://bucket/cp", spark_master="glue"))
    assert {k: conf[f"spark.sql.catalog.lake.{k}"] for k in ("glue.endpoint", "s3.endpoint", "s3.path-style-access",
                                                             "client.region")} == {
        "glue.endpoint": moto, "s3.endpoint": moto, "s3.path-style-access": "true", "client.region": "us-east-1"}
    assert glue_properties(glue) == {"warehouse": "s3://bucket/iceberg", "glue.region": "us-east-1",
                                     "s3.region": "us-east-1", "glue.endpoint": moto, "s3.endpoint": moto}
    plain = CatalogSettings("lake", "glue", "s3://bucket/iceberg")  # on AWS: the region's endpoints
    assert not [k for k in as_spark_conf(LakehousePlan(catalog=plain, namespace="n", tables=(), bootstrap="b",
                                                       checkpoints="c", spark_master="glue"))
                if k.endswith(("endpoint", "path-style-access"))]
    assert glue_properties(plain) == {"warehouse": "s3://bucket/iceberg"}


def test_glue_style_job_arguments():
    argv = ["job.py", "--JOB_NAME", "x", "--config", "p.yaml", "--layer=silver", "--job-bookmark-option", "off"]
    got = resolved_options(argv, ["config", "layer", "mode"], {"layer": "all", "mode": "available-now"})
    assert got == {"config": "p.yaml", "layer": "silver", "mode": "available-now"}
    with pytest.raises(SystemExit, match="--config"):
        resolved_options(["job.py"], ["config"])


# --- types from the PostgreSQL catalog -------------------------------------------------

@pytest.mark.parametrize("pg_type,typmod,expected", [
    ("numeric", numeric(12, 2), "decimal(12,2)"), ("numeric", -1, "string"), ("numeric", numeric(60, 4), "string"),
    ("int4", -1, "int"), ("int8", -1, "bigint"), ("timestamptz", -1, "timestamp"),
    ("timestamp", -1, "timestamp_ntz"), ("jsonb", -1, "string"), ("bytea", -1, "binary"),
    ("my_enum", -1, "string"),
])
def test_spark_types(pg_type, typmod, expected):
    assert spark_scalar_type(pg_type, typmod) == expected


def test_conversions_follow_debezium_encodings():
    assert "ELSE CAST(r AS TIMESTAMP)" in convert("r", col("a", "timestamptz"))
    assert "timestamp_micros" in convert("r", col("a", "timestamp"))
    assert "CAST(r AS BIGINT) * 1000)" in convert("r", col("a", "timestamp", typmod=3))  # milliseconds
    assert "ELSE date_add(DATE'1970-01-01', CAST(r AS INT))" in convert("r", col("a", "date"))
    assert "ELSE CAST(r AS decimal(12,2))" in convert("r", col("a", "numeric", numeric(12, 2)))
    assert convert("r", col("a", "bytea")) == "unbase64(r)"
    assert convert("r", col("t", "text", is_array=True)) == "transform(from_json(r, 'array<string>'), x -> x)"
    assert col("t", "text", is_array=True).may_be_placeholder and not col("n", "int4").may_be_placeholder


def test_schema_changes_add_and_widen():
    schema = TableSchema("public.t", (col("id", "int4", key_pos=1), col("n", "int8"), col("new", "text"),
                                      col("amount", "numeric", numeric(14, 2))))
    added, widened = schema_changes("public.t", schema, {"id": "int", "n": "int", "amount": "decimal(12,2)",
                                                         "_cdc_lsn": "bigint"})
    assert [c.name for c in added] == ["new"] and [c.name for c in widened] == ["n", "amount"]


@pytest.mark.parametrize("have,pg_type,typmod", [("string", "int4", -1), ("decimal(12,2)", "numeric", numeric(12, 3))])
def test_incompatible_change_names_the_column_and_the_fix(have, pg_type, typmod):
    schema = TableSchema("public.t", (col("id", "int4", key_pos=1), col("c", pg_type, typmod)))
    with pytest.raises(SchemaChangeError, match=r"public.t.c .*cdclake rebuild silver public.t") as info:
        schema_changes("public.t", schema, {"id": "int", "c": have})
    assert info.value.column == "c" and info.value.table == "public.t"


def test_dropped_column_is_reported():
    schema = TableSchema("public.t", (col("id", "int4", key_pos=1),))
    with pytest.raises(SchemaChangeError, match="dropped"):
        schema_changes("public.t", schema, {"id": "int", "gone": "string", "_cdc_ts": "timestamp"})


# --- bronze and silver plans ------------------------------------------------------------

def test_bronze_resumes_after_its_own_offsets():
    assert bronze.starting_offsets("cdc.t", [0, 1, 2], {}) == "earliest"
    got = json.loads(bronze.starting_offsets("cdc.t", [0, 1, 2], {0: 9, 2: 4}))
    assert got == {"cdc.t": {"0": 10, "1": -2, "2": 5}}
    assert bronze._not_committed({1: 5}) == "NOT ((kafka_partition = 1 AND kafka_offset <= 5))"


def test_merge_never_lets_an_older_change_win_nor_reinserts_a_delete():
    schema = TableSchema("public.t", (col("id", "int4", key_pos=1), col("bio", "text"), col("n", "int4")))
    ref = TableRef("public.t", "cdc.t", "lake", "ns")
    statement = silver.merge_sql(ref, schema, "v")
    assert "WHEN MATCHED AND s.__op = 'd' AND s._cdc_lsn >= t._cdc_lsn THEN DELETE" in statement
    assert "WHEN NOT MATCHED AND s.__op <> 'd' THEN INSERT" in statement
    assert "t.`bio` = CASE WHEN s.__keep_1 THEN t.`bio` ELSE s.`bio` END" in statement  # TOAST keeps
    assert "t.`n` = s.`n`" in statement and "t.`id` =" not in statement.split("UPDATE SET")[1]


class Rows:
    """A DataFrame stand-in: ``selectExpr(...).collect()`` gives these rows."""

    def __init__(self, rows):
        self.rows = rows

    def selectExpr(self, *names):
        return self

    def collect(self):
        return self.rows


def test_the_key_filter_quotes_each_key_exactly_and_stays_off_where_literals_are_inexact():
    text = TableSchema("public.t", (col("k", "text", key_pos=1), col("v", "int4")))
    big = 10**9
    assert silver.target_key_filter(Rows([("it's",), ("a\\b",)]), text, 2, big) == "t.`k` IN ('it\\'s', 'a\\\\b')"
    pair = TableSchema("public.t", (col("a", "int8", key_pos=1), col("b", "varchar", key_pos=2)))
    assert silver.target_key_filter(Rows([(1, "x"), (2, None)]), pair, 2, big) == "(t.`a`, t.`b`) IN ((1, 'x'))"
    assert silver.target_key_filter(Rows([(1, "x")]), pair, silver.KEY_FILTER_LIMIT + 1, big) is None
    # A silver table too small for the filter to pay reads all of it.
    assert silver.target_key_filter(Rows([(1, "x")]), pair, 1, silver.KEY_FILTER_MIN_ROWS_PER_KEY - 1) is None
    stamped = TableSchema("public.t", (col("at", "timestamptz", key_pos=1),))
    assert silver.target_key_filter(Rows([]), stamped, 1, big) is None
    statement = silver.merge_sql(TableRef("public.t", "cdc.t", "lake", "ns"), text, "v", None, "t.`k` IN ('a')")
    assert " ON t.`k` = s.`k` AND t.`k` IN ('a') WHEN MATCHED" in statement


# --- gold models --------------------------------------------------------------------------

def test_gold_models_render_for_spark_and_postgres(tmp_path: Path):
    (tmp_path / "gold").mkdir()
    (tmp_path / "gold" / "user_stats.sql").write_text(
        "-- {{ ignored }} in a comment\nSELECT count(*) FROM {{ users }} u JOIN {{orders}} o ON o.id = u.id;\n")
    p = plan(models_dir=tmp_path)
    (model,) = gold.load_models(p)
    assert model.name == "gold_user_stats" and model.inputs == ["orders", "users"]
    assert gold.render_postgres(model, p).strip() == 'SELECT count(*) FROM public.users u JOIN sales.orders o ON o.id = u.id'
    spark_sql = gold.render_spark(model, p, {"lake.cdc_db.silver_users": 7, "lake.cdc_db.silver_sales__orders": None})
    assert "lake.cdc_db.silver_users VERSION AS OF 7 u" in spark_sql and "silver_sales__orders o" in spark_sql


def test_bundled_models_exist():
    names = {m.name for m in gold.load_models(plan().__class__(**{**plan().__dict__, "tables": (
        TableRef("public.users", "cdc.users", "lake", "cdc_db"), TableRef("public.orders", "cdc.orders", "lake", "cdc_db"),
        TableRef("public.products", "cdc.products", "lake", "cdc_db"))}))}
    assert names == {"gold_user_stats", "gold_revenue_by_product_day", "gold_segment_summary"}


# --- query and verify helpers -----------------------------------------------------------

def test_table_references_with_time_travel():
    pattern = table_pattern(plan())
    found = [m.groups() for m in pattern.finditer(
        "SELECT * FROM cdc_db.silver_users VERSION AS OF 12 a JOIN lake.cdc_db.gold_x b "
        "JOIN cdc_db.silver_users TIMESTAMP AS OF '2026-01-01 00:00:00' c JOIN other.cdc_db.t")]
    assert found == [("silver_users", "12", None), ("gold_x", None, None),
                     ("silver_users", None, "2026-01-01 00:00:00")]


def test_outputs():
    result = QueryResult(["id", "amount", "at"], [(1, Decimal("1.50"), date(2024, 1, 2)), (2, None, None)])
    assert json.loads(as_json(result)) == [{"id": 1, "amount": "1.50", "at": "2024-01-02"},
                                           {"id": 2, "amount": None, "at": None}]
    assert as_csv(result).splitlines() == ["id,amount,at", "1,1.50,2024-01-02", "2,,"]
    assert as_table(result).splitlines()[-1] == "(2 rows)"


def test_canonical_values_match_across_engines():
    berlin = timezone(timedelta(hours=2))
    assert canonical(datetime(2024, 5, 1, 12, tzinfo=berlin)) == canonical(datetime(2024, 5, 1, 10, tzinfo=timezone.utc))
    assert canonical(Decimal("1.50")) == canonical(Decimal("1.5")) and canonical(Decimal("0.00")) == "0"
    assert canonical(1.100000023841858, float32=True) == canonical(1.1, float32=True)
    assert canonical(["a", None]) == ("a", None) and canonical(memoryview(b"x")) == b"x"


def test_plan_from_pipeline_resolves_names_topics_and_paths(tmp_path: Path):
    from cdclake.config import Pipeline
    from cdclake.lakehouse.configuration import plan_from_pipeline

    pipeline = Pipeline.model_validate({"source": {"tables": ["users", "sales.orders"]},
                                        "lakehouse": {"namespace": "shop"}})
    pipeline._path = tmp_path / "pipeline.yaml"
    resolved = plan_from_pipeline(pipeline)
    assert [r.topic for r in resolved.tables] == ["cdc.users", "cdc.sales__orders"]
    assert resolved.tables[1].silver == "lake.shop.silver_sales__orders"
    assert resolved.checkpoints == (tmp_path / ".cdclake" / "checkpoints").as_uri()
    assert resolved.catalog.jdbc_url.endswith("/cdclake_catalog")
    # Behind the stream processor, bronze reads what it writes for the tables it reads, and the
    # CDC topic of the others; a table it filters is marked, so verify reports it as such.
    stream = {"enabled": True, "inputs": [{"topic": "cdc.users", "steps": [
        {"filter": {"op": ["c"]}}, {"route": [{"to": "audit.admins", "when": [{"column": "role", "eq": "a"}]},
                                              {"to": "bronze.users"}]}]}]}
    streamed = Pipeline.model_validate({"source": {"tables": ["users", "sales.orders"]}, "stream": stream})
    users, orders = plan_from_pipeline(streamed).tables
    assert (users.topic, users.transformed, orders.topic, orders.transformed) == \
        ("bronze.users", True, "cdc.sales__orders", False)
    stream["inputs"][0]["steps"] = [{"route": [{"to": "x.users"}]}]
    renamed = plan_from_pipeline(Pipeline.model_validate({"source": {"tables": ["users"]}, "stream": stream}))
    assert (renamed.tables[0].topic, renamed.tables[0].transformed) == ("x.users", False)
    stream["inputs"][0]["steps"] = [{"route": [{"to": "x.users", "when": [{"column": "a", "eq": 1}]},
                                               {"to": "y.users"}]}]
    with pytest.raises(LakehouseError, match="bronze reads one topic per table"):
        plan_from_pipeline(Pipeline.model_validate({"source": {"tables": ["users"]}, "stream": stream}))


def test_only_the_pinned_spark_iceberg_pair_runs_the_jobs():
    from cdclake.lakehouse.exceptions import LakehouseError
    from cdclake.lakehouse.spark import check_versions

    check_versions("3.5.7", "1.10.0")
    check_versions("3.5.6", "1.10.0")  # AWS Glue 5.1
    with pytest.raises(LakehouseError, match="this session runs Spark 3.4.1 with Iceberg 1.10.0; use the pinned"):
        check_versions("3.4.1", "1.10.0")
    with pytest.raises(LakehouseError, match="Iceberg 1.9.2"):
        check_versions("3.5.7", "1.9.2")
    with pytest.raises(LakehouseError, match="not on the Spark classpath"):
        check_versions("3.5.7", None)
