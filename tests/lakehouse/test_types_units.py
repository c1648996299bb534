"""The type table (docs/events.md) as code: each PostgreSQL type's silver type, the columns
refused by name with their fix, and verify's per-type normalisation."""

from __future__ import annotations

import pytest

from cdclake.lakehouse.pgschema import Column, convert, missing_literal, refusal, refused, refused_value
from cdclake.verify.normalize import canonical, normaliser, silver_expression, source_expression


def col(pg_type: str, typmod: int = -1, is_array: bool = False, typtype: str = "b", **kw) -> Column:
    return Column("c", pg_type, is_array, typmod, kw.pop("declared", pg_type), typtype=typtype, **kw)


@pytest.mark.parametrize("column,spark_type", [
    (col("int2"), "int"), (col("float4"), "float"), (col("money"), "decimal(19,2)"),
    (col("numeric", ((5 << 16) | (-2 & 0xFFFF)) + 4), "string"), (col("interval"), "string"),
    (col("time"), "bigint"), (col("date"), "date"), (col("timestamp", 3), "timestamp_ntz"),
    (col("bit", 1), "boolean"), (col("bit", 10), "string"), (col("macaddr8"), "string"),
    (col("tsquery"), "string"), (col("circle"), "string"), (col("point"), "string"),
    (col("mood", typtype="e"), "string"), (col("int4range", typtype="r"), "string"),
    (col("int4multirange", typtype="m"), "string"), (col("pair", typtype="c"), "string"),
    (col("int4", is_array=True), "array<int>"), (col("jsonb", is_array=True), "array<string>"),
])
def test_every_type_family_has_its_silver_type(column, spark_type):
    assert column.spark_type == spark_type and refusal("s.t", column) is None


@pytest.mark.parametrize("column,fix", [
    (col("timetz"), "timestamptz"), (col("varbit"), "bit(n)"), (col("name"), "text"),
    (col("int4", is_array=True, ndims=2), "jsonb"), (col("numeric", is_array=True), "jsonb"),
    (col("date", is_array=True), "jsonb"), (col("int4", generated=True), "DROP EXPRESSION"),
    (col("hstore_like_unknown"), "TYPE text"),
])
def test_refused_columns_name_table_column_type_and_fix(column, fix):
    reason = refusal("s.t", column)
    assert reason.startswith(f"column s.t.c ({column.declared})") and fix in reason and "ALTER TABLE s.t" in reason


def test_values_debezium_mangles_stop_the_table_instead_of_landing_changed():
    assert "raise_error" in convert("r", col("date")) and "-719162" in convert("r", col("date"))
    assert "raise_error" in convert("r", col("numeric", (10 << 16 | 2) + 4))  # NaN into decimal(10,2)
    stamp = convert("r", col("timestamptz"))
    assert "WHEN 'infinity' THEN timestamp_micros(9223372036825200000)" in stamp and "raise_error" in stamp
    assert convert("r", col("tsquery")) == "CAST(unbase64(r) AS STRING)"
    # silver's keyed path converts leniently and refuses only a key's winning change
    lenient, refusal = convert("r", col("date"), refuse=False), refused("r", col("date"))
    assert "raise_error" not in lenient and refusal.startswith("CASE WHEN CAST(r AS INT) < -719162 THEN 'column c")
    assert "exists(from_json(r, 'array<string>'), x -> CAST(x AS INT) < -719162)" in refused("r", col("date", is_array=True))
    assert refused("r", col("int4")) is None and refused("r", col("numeric")) is None


def test_a_failed_job_carrying_a_refusal_reads_as_one_line_naming_the_table():
    sql = convert("r", col("numeric", (10 << 16 | 2) + 4))
    start = sql.index("raise_error('") + len("raise_error('")
    message = sql[start:sql.index("')", start)].replace("\\'", "'")  # as Spark's error prints it
    trace = f"py4j.Py4JJavaError: Job aborted\n  Caused by: [USER_RAISED_EXCEPTION] {message} SQLSTATE: P0001\n\tat x"
    reason = refused_value(RuntimeError(trace), "s.t")
    assert reason.startswith("column c (") and reason.endswith("`cdclake connector snapshot s.t`)")
    assert refused_value(RuntimeError("Job aborted: disk full"), "s.t") is None


def test_fast_defaults_become_silver_literals():
    assert missing_literal(col("text", missing="it's")) == "'it\\'s'"
    assert missing_literal(col("timestamptz", missing="2024-01-01T00:00:00+00:00")).startswith("CAST('2024")
    assert "CAST('7' AS int)" == missing_literal(col("int4", missing="7"))
    assert missing_literal(col("bytea", missing="\\\\x00")) is None and missing_literal(col("int4")) is None


def test_verify_reads_each_type_in_silvers_representation():
    assert source_expression(col("money")) == '"c"::numeric'
    assert source_expression(col("bit", 1)) == '("c" = B\'1\')'
    assert "format('P%sY%sM%sDT%sH%sM%sS'" in source_expression(col("interval"))
    assert "9223372036825200000" in source_expression(col("timestamp")) and silver_expression(col("timestamp")) == \
        'epoch_us("c")'
    assert source_expression(col("uuid", is_array=True)) == '"c"::text[]'
    geometric = normaliser(col("lseg"))
    assert canonical(geometric("[(0,0),(1,1e-07)]")) == canonical(geometric("[(0.0,0.0),(1.0,1.0E-7)]"))
    assert canonical(geometric("[(0,0),(1,1e-07)]")) != canonical(geometric("[(0.0,0.0),(1.0,1.1E-7)]"))
