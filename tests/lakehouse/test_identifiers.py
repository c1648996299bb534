"""Any identifier PostgreSQL allows is carried end to end: quoted mixed-case schemas, tables
and columns with blanks, dots, quotes and reserved words, a non-ASCII name, and two tables
(``public.<x>_orders``, ``<x>.orders``) that once shared one silver table and checkpoint.
Silver is compared with PostgreSQL, ``cdclake sql`` reads it, then ``verify`` runs."""

from __future__ import annotations

import pytest
from psycopg import sql

from cdclake.config.tables import TableId, lake_name
from cdclake.lakehouse.configuration import plan_from_pipeline
from cdclake.query.engines import run_sql
from cdclake.source import connection
from tests.conftest import unique
from tests.lakehouse.conftest import lake_pipeline, silver_rows, source_rows, start_capture, wait_records
from tests.lakehouse.test_silver_exact import QUIET, assert_verified, execute, run_layers

pytestmark = pytest.mark.integration

LINES_COLUMNS = ['id', 'Unit Price', 'line.no', "it's", 'Qty']


def quoted(columns: list[str], quote: str) -> str:
    """The column list for PostgreSQL (``"``) or Spark (`````), every name quoted."""
    return ", ".join(quote + c.replace(quote, quote * 2) + quote for c in columns)


def tables_of(tag: str) -> dict[str, tuple[str, list[str]]]:
    """Each test table as source.tables writes it -> (its DDL columns, the columns compared)."""
    mixed = f'"{tag.upper()} Shop"'
    return {
        f'{tag}."Sales Lines"': ('id int PRIMARY KEY, "Unit Price" numeric(10,2), "line.no" int, "it\'s" text, '
                                 '"Qty" int', LINES_COLUMNS),
        f'{tag}."select"': ('"from" int PRIMARY KEY, "user" text, "order" int', ["from", "user", "order"]),
        f'{mixed}."Straße"': ('id int PRIMARY KEY, "Straßen-Name" text', ["id", "Straßen-Name"]),
        f"public.{tag}_orders": ("id int PRIMARY KEY, v text", ["id", "v"]),
        f"{tag}.orders": ("id int PRIMARY KEY, v text", ["id", "v"]),
    }


SEED = {
    '"Sales Lines"': ['(1, 9.99, 1, \'a\', 2)', '(2, 0.50, 2, \'b\', 1)', '(3, 100.00, 3, NULL, 7)',
                      '(4, 12.34, 4, \'d\', 3)', '(5, 1.00, 5, \'e\', 9)'],
    '"select"': ["(1, 'x', 10)", "(2, 'y', 20)", "(3, 'z', 30)"],
    '"Straße"': ["(1, 'Hauptstraße')", "(2, 'Gärtnerweg')", "(3, 'Öl')"],
    "_orders": ["(1, 'p1')", "(2, 'p2')", "(3, 'p3')", "(4, 'p4')"],
    ".orders": ["(1, 's1')", "(2, 's2')", "(3, 's3')", "(4, 's4')", "(5, 's5')", "(6, 's6')"],
}
CHANGES = {  # statements on each table, {t} its name; the count of change events they make
    '"Sales Lines"': ('UPDATE {t} SET "Unit Price" = "Unit Price" * 2, "it\'s" = \'it\'\'s\' WHERE id IN (1, 2); '
                      "DELETE FROM {t} WHERE id = 3; "
                      "INSERT INTO {t} VALUES (6, 6.66, 6, 'f', 1), (7, 7.77, 7, 'g', 2)", 5),
    '"select"': ('UPDATE {t} SET "user" = \'renamed\' WHERE "from" = 2; DELETE FROM {t} WHERE "from" = 3', 2),
    '"Straße"': ("INSERT INTO {t} VALUES (4, 'Fußweg'); UPDATE {t} SET \"Straßen-Name\" = 'Ölweg' WHERE id = 3", 2),
    "_orders": ("DELETE FROM {t} WHERE id <= 2", 2),
    ".orders": ("UPDATE {t} SET v = v || '!' WHERE id <= 3", 3),
}


def seed_key(table: str) -> str:
    return next(k for k in SEED if table.endswith(k))


def create(pipeline, tables: dict[str, tuple[str, list[str]]]) -> None:
    with connection.connect(pipeline, autocommit=True) as conn:
        for table, (columns, _) in tables.items():
            table_id = TableId.parse(table)
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(table_id.schema)))
            conn.execute(f"CREATE TABLE {table_id} ({columns})")
            conn.execute(f"INSERT INTO {table_id} VALUES {', '.join(SEED[seed_key(table)])}")


@pytest.fixture
def identifiers_capture(stack, cleanup):
    tag = unique("ident")
    tables = tables_of(tag)
    pipeline = lake_pipeline(stack, tag, [])
    source = pipeline.source.with_tables(tables)
    # A dotted topic prefix: every topic name is decided by config/tables.py topic_name.
    kafka = pipeline.kafka.model_copy(update={"topic_prefix": f"cdc.{tag}"})
    pipeline = pipeline.model_copy(update={"source": source, "kafka": kafka})
    cleanup(pipeline)
    create(pipeline, tables)
    yield pipeline, tables
    execute(pipeline, f"DROP TABLE IF EXISTS public.{tag}_orders")


@pytest.mark.timeout(2400)  # five tables through bronze and silver on a shared 2-core machine
def test_any_postgresql_identifier_reaches_silver_sql_and_verify(identifiers_capture, spark):
    pipeline, tables = identifiers_capture
    start_capture(pipeline)
    plan = plan_from_pipeline(pipeline)
    refs = {table: plan.table(table) for table in tables}
    # Unique, legal lake names and topics: the two "orders" tables no longer share one.
    assert len({r.silver for r in refs.values()}) == len({r.topic for r in refs.values()}) == len(tables)
    assert all(r.base == lake_name(r.source) and r.base.replace("_", "").isalnum() and r.base.isascii()
               for r in refs.values())
    assert all(r.topic == f"{pipeline.kafka.topic_prefix}.{r.base}" for r in refs.values())

    for table, ref in refs.items():
        wait_records(pipeline, [ref.topic], len(SEED[seed_key(table)]))
    for table, ref in refs.items():
        statements, _ = CHANGES[seed_key(table)]
        execute(pipeline, statements.format(t=ref.source))
    for table, ref in refs.items():
        wait_records(pipeline, [ref.topic], len(SEED[seed_key(table)]) + CHANGES[seed_key(table)][1])
    run_layers(spark, plan)

    for table, ref in refs.items():
        columns = tables[table][1]
        expected = source_rows(pipeline, ref.source, quoted(columns, '"'))
        assert silver_rows(spark, ref.silver, quoted(columns, "`")) == expected, table
    lines = refs[next(t for t in tables if "Sales Lines" in t)]
    assert dict(source_rows(pipeline, lines.source, 'id, "it\'s"'))[1] == "it's"

    # cdclake sql (DuckDB over pyiceberg) reads a quoted column of a hashed table name.
    result = run_sql(plan, f'SELECT sum("Unit Price") AS total FROM {plan.namespace}.silver_{lines.base}')
    assert result.rows[0][0] == sum(r[1] for r in source_rows(pipeline, lines.source, 'id, "Unit Price"'))

    assert_verified(plan)
    # `verify TABLE` and `-t` take the name as PostgreSQL writes it.
    one = next(t for t in tables if "Straße" in t)
    assert pipeline.source.resolve_table(one) == refs[one].source
    from cdclake.verify.verify import verify

    report = verify(plan, pipeline.source.resolve_table(one), gold=False, progress=QUIET)
    assert report.ok and [t.table for t in report.tables] == [refs[one].source]
