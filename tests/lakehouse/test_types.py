"""Every built-in type family through every layer, and schema changes mid-stream: silver is
compared value for value with PostgreSQL (each column read by the test's own expression on
both sides), then ``verify`` must agree, and must see one changed value."""

from __future__ import annotations

import math
import re
from decimal import Decimal

import pytest

from cdclake.config.tables import TableId
from cdclake.lakehouse import runner
from cdclake.source import connection
from cdclake.source.exceptions import UnsupportedColumnError
from cdclake.source.prepare import check_columns
from cdclake.verify.verify import verify
from tests.lakehouse.conftest import silver_rows, source_rows, wait_records
from tests.lakehouse.test_silver_exact import QUIET, assert_verified, execute, new_capture, run_layers

pytestmark = pytest.mark.integration

INF, MINUS_INF = 9223372036825200000, -9223372036832400000
EPOCH_US = ("(CASE {c} WHEN 'infinity' THEN " f"{INF} WHEN '-infinity' THEN {MINUS_INF} "
            "ELSE (extract(epoch FROM {c}) * 1000000)::bigint END)")
INTERVAL = ("CASE WHEN {c} IS NOT NULL THEN format('P%sY%sM%sDT%sH%sM%sS', extract(year FROM {c}), extract(month FROM {c}), extract(day FROM {c}), "
            "extract(hour FROM {c}), extract(minute FROM {c}), trim_scale(extract(second FROM {c}))) END")
TEXT = ("{c}::text", "{c}")
# column: (declared type, PostgreSQL expression, Spark expression) giving silver's documented representation.
COLUMNS = {
    "i2": ("int2", "{c}", "{c}"), "i4": ("int4", "{c}", "{c}"), "i8": ("int8", "{c}", "{c}"),
    "f4": ("real", "{c}::float8", "CAST({c} AS DOUBLE)"), "f8": ("float8", "{c}", "{c}"),
    "n": ("numeric", *TEXT), "nb": ("numeric(10,2)", "{c}", "{c}"), "nneg": ("numeric(5,-2)", *TEXT),
    "nbig": ("numeric(60,8)", *TEXT), "m": ("money", "{c}::numeric", "{c}"), "bo": ("bool", "{c}", "{c}"),
    "iv": ("interval", INTERVAL, "{c}"), "d": ("date", "{c}", "{c}"),
    "t": ("time", "(extract(epoch FROM {c}) * 1000000)::bigint", "{c}"),
    "t3": ("time(3)", "(extract(epoch FROM {c}) * 1000000)::bigint", "{c}"),
    "ts": ("timestamp", EPOCH_US, "unix_micros(CAST({c} AS TIMESTAMP))"),
    "ts3": ("timestamp(3)", EPOCH_US, "unix_micros(CAST({c} AS TIMESTAMP))"),
    "tstz": ("timestamptz", EPOCH_US, "unix_micros({c})"),
    "ip": ("inet", "CASE WHEN {c} IS NOT NULL THEN format('%s', {c}) END", "{c}"), "cid": ("cidr", *TEXT), "mac": ("macaddr", *TEXT), "mac8": ("macaddr8", *TEXT),
    "u": ("uuid", *TEXT), "b1": ("bit(1)", "{c} = B'1'", "{c}"), "b10": ("bit(10)", *TEXT),
    "ba": ("bytea", "{c}", "{c}"), "c": ("char(3)", "{c}", "{c}"), "vc": ("varchar(10)", "{c}", "{c}"),
    "tx": ("text", "{c}", "{c}"), "j": ("json", *TEXT), "jb": ("jsonb", *TEXT), "x": ("xml", *TEXT),
    "tsv": ("tsvector", *TEXT), "tsq": ("tsquery", *TEXT), "pt": ("point", *TEXT), "ln": ("line", *TEXT),
    "ls": ("lseg", *TEXT), "bx": ("box", *TEXT), "pa": ("path", *TEXT), "pg": ("polygon", *TEXT),
    "ci": ("circle", *TEXT), "r4": ("int4range", *TEXT), "r8": ("int8range", *TEXT), "rn": ("numrange", *TEXT),
    "rts": ("tsrange", *TEXT), "rtz": ("tstzrange", *TEXT), "rd": ("daterange", *TEXT),
    "mr": ("int4multirange", *TEXT), "ai": ("int[]", "{c}", "{c}"), "ai8": ("int8[]", "{c}", "{c}"),
    "af": ("float8[]", "{c}", "{c}"), "ab": ("bool[]", "{c}", "{c}"), "at": ("text[]", "{c}", "{c}"),
    "au": ("uuid[]", "{c}::text[]", "{c}"), "ajb": ("jsonb[]", "{c}::text[]", "{c}"),
    "e": ("mood", *TEXT), "ea": ("mood[]", "{c}::text[]", "{c}"), "dm": ("posint", "{c}", "{c}"),
    "dn": ("money2", "{c}", "{c}"), "dt": ("shorttext", "{c}", "{c}"), "cp": ("pair", *TEXT),
    "oidc": ("oid", "{c}::bigint", "{c}"),
}
TYPES = """CREATE TYPE mood AS ENUM ('sad', 'happy'); CREATE DOMAIN posint AS int CHECK (VALUE > 0);
CREATE DOMAIN money2 AS numeric(8,2); CREATE DOMAIN shorttext AS varchar(5); CREATE TYPE pair AS (a int, b text);"""
EDGES_HIGH = r"""32767, 2147483647, 9223372036854775807, 'NaN', 'Infinity', 'NaN', 99999999.99, 9999900,
 '12345678901234567890123456789012345678901234567890.12345678', '92233720368547758.07', true,
 '1 year 2 mons -3 days 04:05:06.789012', '9999-12-31', '24:00:00', '23:59:59.999', 'infinity',
 '2000-01-01 00:00:00.123', 'infinity', '192.168.0.1/24', '10.0.0.0/8', '08:00:2b:01:02:03',
 '08:00:2b:01:02:03:04:05', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', B'1', B'1000000011', '\x00ff10', 'ab', 'x',
 E'tab\there \u00fc\u00df', '{"b": 1,  "a": [1, 2.50]}', '{"b": 1, "a": [1, 2.50]}', '<a>b</a>', 'a fat cat',
 'fat & !rat', '(1.5,2)', '{1,-1,0}', '[(0,0),(1,1e-07)]', '((1,1),(0,0))', '[(0,0),(1,1),(2,0)]',
 '((0,0),(1,1),(1,0))', '<(1,1),2>', '[1,10)', '(,5]', '[1.5,2.25]', '[2020-01-01 10:00,2020-01-02)',
 '[2020-01-01 10:00+02,infinity)', '[2020-01-01,2020-02-01)', '{[1,3),[5,7)}', '{1,NULL,3}',
 '{9223372036854775807}', '{1.5,NaN,Infinity,-Infinity}', '{true,NULL,false}', '{"a,b","",NULL,"q\"x"}',
 '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}', ARRAY['{"k": [1]}'::jsonb], 'happy', '{sad,happy}', 5, 123456.78,
 'abcde', ROW(1, 'x y'), 4000000000"""
EDGES_LOW = r"""-32768, -2147483648, -9223372036854775808, '-Infinity', '-Infinity', '-Infinity', -99999999.99,
 -9999900, '-0.00000001', '-92233720368547758.08', false, '-178000000 years', '0001-01-01', '00:00:00',
 '00:00:00.001', '-infinity', '0001-01-01 00:00:00', '-infinity', '::1', '::/0', 'ff:ff:ff:ff:ff:ff',
 'ff:ff:ff:ff:ff:ff:ff:ff', '00000000-0000-0000-0000-000000000000', B'0', B'0000000000', '\x', '', '', '',
 'null', '[]', '', '', '', '(0,0)', '{0,1,0}', '[(0,0),(0,0)]', '((0,0),(0,0))', '((0,0))', '((0,0))',
 '<(0,0),0>', 'empty', '[-9223372036854775808,9223372036854775807)', '(,)', '(,)', 'empty', '(,)', '{}', '{}',
 '{}', '{}', '{}', '{}', '{}', '{}', 'sad', '{}', 1, 0, '', ROW(NULL, NULL), 0"""
TYPICAL = r"""1, 2, 3, 1.1, 2.2, '1.000000000000000000000001', 12.34, 500, '1.5', '12.34', true, '0.5 seconds',
 '1000-03-01', '12:34:56.789012', '12:34:56.789', '1582-10-04 12:00:00.654321', '1969-12-31 23:59:59.999',
 '2024-05-01 10:00:00.123456+02', '10.1.2.3', '192.168.0.0/16', '01:02:03:04:05:06', '01:02:03:04:05:06:07:08',
 'b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12', B'0', B'0000000001', '\xdeadbeef', 'a', 'hello', 'world',
 '[1, "two", null]', '{"z": {"y": true}}', '<r><c>1</c></r>', 'the quick brown fox', 'quick <-> fox',
 '(-3.25,1e+20)', '{1.5,2,-3}', '[(1,2),(3,4)]', '((3,4),(1,2))', '((1,2),(3,4),(5,6))', '((1,2),(3,4),(5,7))',
 '<(1.5,-2),0.25>', '[3,4)', '[100,200)', '(0.1,0.2)', '[1999-12-31 23:59:59,2000-01-01)',
 '[1000-03-01 00:00+00,2024-01-01 00:00+05:30)', '[2024-01-01,2024-12-31]', '{[1,2),[10,20)}', '{7}', '{-1,0,1}',
 '{0.1,-0.0,1e300}', '{false}', '{"x"}', '{}', '{}', 'sad', '{happy,happy}', 42, -0.01, 'q', ROW(-7, ''), 1"""
CHANGED = {"n": "'-1.5e-30'", "iv": "'-1 mon +2 days -00:00:01.000001'", "tstz": "'1000-03-01 00:00+00'",
           "b10": "B'0110000000'", "pt": "'(0.1,-0.2)'", "e": "'happy'", "ai": "'{}'", "tx": "NULL"}


GEOMETRIC = {"pt", "ln", "ls", "bx", "pa", "pg", "ci"}
NUMBER = re.compile(r"-?\d+\.?\d*(?:[eE][-+]?\d+)?")


def _norm(value, geometric: bool = False):
    """Python equality for what both engines return: NaN equal to itself, bytes however
    wrapped, lists as tuples; geometric texts by their numbers (pgjdbc writes 1 as 1.0)."""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else value
    if isinstance(value, list | tuple):
        return tuple(_norm(v) for v in value)
    if isinstance(value, memoryview | bytearray):
        return bytes(value)
    if geometric and value is not None:
        return NUMBER.sub(lambda m: repr(float(m.group())), value)
    return value


def rows_of(fetch) -> list[tuple]:
    flags = [False] + [c in GEOMETRIC for c in COLUMNS]
    return sorted((tuple(_norm(v, g) for v, g in zip(row, flags, strict=True)) for row in fetch), key=lambda r: r[0])


def expected(pipeline, table: str) -> list[tuple]:
    exprs = ", ".join(pg.format(c=c) for c, (_, pg, _) in COLUMNS.items())
    with connection.connect(pipeline, autocommit=True) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        return rows_of(conn.execute(f"SELECT id, {exprs} FROM {table}").fetchall())


def actual(spark, silver: str) -> list[tuple]:
    exprs = ", ".join(sp.format(c=c) for c, (_, _, sp) in COLUMNS.items())
    return rows_of(tuple(r) for r in spark.sql(f"SELECT id, {exprs} FROM {silver}").collect())


def differences(got: list[tuple], want: list[tuple]) -> list[tuple]:
    """(id, column, silver, PostgreSQL) for every value that differs, rows matched by id."""
    names = ["id", *COLUMNS]
    silver = {row[0]: row for row in got}
    return [(row[0], name, silver.get(row[0], {}) and silver[row[0]][i], value)
            for row in want for i, (name, value) in enumerate(zip(names, row, strict=True))
            if row[0] not in silver or silver[row[0]][i] != value] + [(k, "missing in PostgreSQL", None, None)
                                                                      for k in silver.keys() - {r[0] for r in want}]


def insert(table: str, rows: dict[int, str]) -> str:
    names = ", ".join(COLUMNS)
    return "; ".join(f"INSERT INTO {table} (id, {names}) VALUES ({i}, {values})" for i, values in rows.items())


def test_every_type_round_trips(stack, spark, cleanup):
    ddl = "id int PRIMARY KEY, " + ", ".join(f"{c} {t}" for c, (t, _, _) in COLUMNS.items())
    snapshot = "(id) VALUES (3); " + insert("t", {1: EDGES_HIGH, 2: EDGES_LOW, 4: TYPICAL})
    pipeline, plan = new_capture(stack, cleanup, "alltypes", {"t": ddl}, {"t": snapshot}, types=TYPES)
    ref = plan.table("t")
    table = f"{ref.schema}.t"

    # Snapshot rows, then the same edge values streamed, updated, deleted; an enum value added mid-stream.
    execute(pipeline, insert(table, {11: EDGES_HIGH, 12: EDGES_LOW, 14: TYPICAL}) + f"; INSERT INTO {table} (id) VALUES (13)")
    execute(pipeline, f"UPDATE {table} SET " + ", ".join(f"{c} = {v}" for c, v in CHANGED.items()) + " WHERE id IN (4, 14)")
    execute(pipeline, f"DELETE FROM {table} WHERE id IN (2, 3)")
    execute(pipeline, "ALTER TYPE " + ref.schema + ".mood ADD VALUE 'meh'")
    execute(pipeline, f"UPDATE {table} SET e = 'meh', ea = '{{meh,sad}}' WHERE id = 1; "
                      f"INSERT INTO {table} (id, e, ea) VALUES (15, 'meh', '{{meh}}')")
    wait_records(pipeline, [ref.topic], 4 + 4 + 2 + 2 + 2)
    run_layers(spark, plan)

    types = {f.name: f.dataType.simpleString() for f in spark.table(ref.silver).schema.fields}
    assert (types["nb"], types["dm"], types["dn"], types["b1"], types["m"], types["iv"]) == (
        "decimal(10,2)", "int", "decimal(8,2)", "boolean", "decimal(19,2)", "string")
    want, got = expected(pipeline, table), actual(spark, ref.silver)
    assert differences(got, want) == [] and [row[0] for row in want] == [1, 4, 11, 12, 13, 14, 15]
    assert_verified(plan)

    # verify is exact the other way too: a changed interval and a changed geometric number are seen.
    spark.sql(f"UPDATE {ref.silver} SET iv = 'P1Y2M-3DT4H5M6.789013S', ls = '[(0.0,0.0),(1.0,1.1E-7)]' "
              "WHERE id IN (1, 11)")
    report = verify(plan, gold=False, progress=QUIET)
    assert not report.ok and report.tables[0].different == 2


REFUSED = {"tz": "timetz", "vb": "varbit", "nm": "name", "grid": "int[][]", "nums": "numeric[]", "days": "date[]",
           "gen": "int GENERATED ALWAYS AS (id * 2) STORED"}


def test_columns_silver_cannot_carry_are_refused_at_source_init_by_name(stack):
    with connection.connect(stack, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS public.refused_types")
        conn.execute("CREATE TABLE public.refused_types (id int PRIMARY KEY, ok text, "
                     + ", ".join(f"{c} {t}" for c, t in REFUSED.items()) + ")")
        try:
            with pytest.raises(UnsupportedColumnError) as caught:
                check_columns(conn, [TableId.parse("public.refused_types")])
        finally:
            conn.execute("DROP TABLE public.refused_types")
    message = str(caught.value)
    assert sorted(caught.value.columns) == sorted(f"public.refused_types.{c}" for c in REFUSED)
    assert "ok" not in caught.value.columns and message.count("ALTER TABLE public.refused_types") == len(REFUSED)


SCHEMA_DDL = {"s": "id int PRIMARY KEY, keep text, gone text, old_name text, n int, v varchar(10), amt numeric(10,2)",
              "other": "id int PRIMARY KEY, v text"}
SCHEMA_ROWS = {"s": "SELECT g, 'k' || g, 'g' || g, 'o' || g, g, 'v' || g, g + 0.25 FROM generate_series(1, 20) g",
               "other": "SELECT g, 'x' FROM generate_series(1, 5) g"}
AFTER = "id, keep, new_name, n, v, amt, flag, k, "
AFTER_PG, AFTER_SPARK = AFTER + "(extract(epoch FROM stamp) * 1000000)::bigint", AFTER + "unix_micros(stamp)"


def test_a_value_silver_cannot_hold_stops_only_its_table_until_a_newer_change_supersedes_it(
        stack, spark, cleanup):
    """NaN in numeric(10,2) (decimal has no NaN): that table fails in one line naming the column and
    the fix, merges nothing and loses nothing, the other table flows; once the row is changed at
    the source, the next run merges it all. A refused value superseded in its own batch never stops it."""
    pipeline, plan = new_capture(stack, cleanup, "refuse",
                                 {"m": "id int PRIMARY KEY, amt numeric(10,2)", "other": "id int PRIMARY KEY, v text"},
                                 {"m": "VALUES (1, 1.50), (2, 2.25)", "other": "VALUES (1, 'x')"})
    m, other = plan.table("m"), plan.table("other")
    table = f"{m.schema}.m"
    wait_records(pipeline, [m.topic, other.topic], 3)
    run_layers(spark, plan)
    execute(pipeline, f"UPDATE {table} SET amt = 'NaN' WHERE id = 2; INSERT INTO {table} VALUES (3, 3); "
                      f"INSERT INTO {other.schema}.other VALUES (2, 'y')")
    wait_records(pipeline, [m.topic, other.topic], 3 + 3)
    report = runner.run(spark, plan, ["bronze", "silver"], progress=QUIET)
    failure = report.failures[m.source]
    assert failure.startswith(f"{m.silver_short}: column amt (numeric(10,2)) holds NaN") and "\n" not in failure
    assert "change that row at the source" in failure and f"snapshot {m.source}`" in failure
    assert other.source not in report.failures
    assert silver_rows(spark, m.silver, "id, amt") == [(1, Decimal("1.50")), (2, Decimal("2.25"))]
    assert silver_rows(spark, other.silver, "id, v") == source_rows(pipeline, f"{other.schema}.other", "id, v")

    execute(pipeline, f"UPDATE {table} SET amt = 4.75 WHERE id = 2; INSERT INTO {table} VALUES (4, 'NaN'); "
                      f"UPDATE {table} SET amt = -1 WHERE id = 4")
    wait_records(pipeline, [m.topic], 2 + 2 + 3)
    run_layers(spark, plan)
    assert silver_rows(spark, m.silver, "id, amt") == source_rows(pipeline, table, "id, amt")
    assert len(source_rows(pipeline, table, "id")) == 4
    assert_verified(plan)


def test_schema_changes_mid_stream_follow_into_silver_and_an_unwidenable_one_stops_only_its_table(
        stack, spark, cleanup):
    pipeline, plan = new_capture(stack, cleanup, "ddl", SCHEMA_DDL, SCHEMA_ROWS)
    s, other = plan.table("s"), plan.table("other")
    table = f"{s.schema}.s"
    wait_records(pipeline, [s.topic, other.topic], 25)
    run_layers(spark, plan)
    before = spark.sql(f"SELECT snapshot_id FROM {s.silver}.snapshots ORDER BY committed_at DESC").first()[0]

    # A change before the DDL and changes after it, in one silver batch.
    execute(pipeline, f"UPDATE {table} SET old_name = 'renamed-before', gone = 'x' WHERE id = 1")
    execute(pipeline, f"ALTER TABLE {table} DROP COLUMN gone, ALTER COLUMN n TYPE bigint, "
                      f"ALTER COLUMN v TYPE varchar(40), ALTER COLUMN amt TYPE numeric(14,2)")
    execute(pipeline, f"ALTER TABLE {table} RENAME COLUMN old_name TO new_name")
    execute(pipeline, f"ALTER TABLE {table} ADD COLUMN flag text DEFAULT 'it''s old', ADD COLUMN k int DEFAULT 7, "
                      f"ADD COLUMN stamp timestamptz DEFAULT '2024-01-01 00:00+00'")
    execute(pipeline, f"UPDATE {table} SET new_name = 'after', n = 1099511627776, v = repeat('w', 40), "
                      f"amt = 123456789012.34, flag = NULL WHERE id = 2; "
                      f"INSERT INTO {table} (id, keep, new_name, n, v, amt) VALUES (100, 'new', 'nn', -5, 'short', 1)")
    wait_records(pipeline, [s.topic], 20 + 3)
    run_layers(spark, plan)
    assert silver_rows(spark, s.silver, AFTER_SPARK) == source_rows(pipeline, table, AFTER_PG)
    assert ("gone" not in spark.table(s.silver).columns
            and "gone" in spark.sql(f"SELECT * FROM {s.silver} VERSION AS OF {before}").columns)
    assert dict(silver_rows(spark, s.silver, "id, new_name"))[1] == "renamed-before"
    assert_verified(plan)

    # text -> integer cannot be widened: this table stops, naming the column and the fix; the other flows.
    execute(pipeline, f"ALTER TABLE {table} ALTER COLUMN keep TYPE integer USING length(keep)")
    execute(pipeline, f"UPDATE {table} SET keep = 9 WHERE id = 3; INSERT INTO {other.schema}.other VALUES (6, 'y')")
    wait_records(pipeline, [s.topic, other.topic], 20 + 3 + 1 + 5 + 1)
    report = runner.run(spark, plan, ["bronze", "silver"], progress=QUIET)
    failure = report.failures[s.source]
    assert "keep" in failure and f"cdclake rebuild silver {s.source}" in failure and other.source not in report.failures
    assert silver_rows(spark, other.silver, "id, v") == source_rows(pipeline, f"{other.schema}.other", "id, v")
