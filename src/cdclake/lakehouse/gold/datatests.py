"""dbt's four generic data tests as Spark SQL: each selects its failing rows, which must be none."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cdclake.lakehouse.gold.project import ColumnTest, Reference

EXAMPLES = 3


def quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def failing_rows(test: ColumnTest, relation: str, lookup: Callable[[Reference], str]) -> str:
    """A SELECT of the values of ``relation`` that break ``test`` (no rows: it passes)."""
    column = quote(test.column)
    if test.test == "not_null":
        return f"SELECT {column} FROM {relation} WHERE {column} IS NULL"
    if test.test == "unique":
        return (f"SELECT {column}, count(*) AS n FROM {relation} WHERE {column} IS NOT NULL "
                f"GROUP BY {column} HAVING count(*) > 1")
    if test.test == "accepted_values":
        values = ", ".join(literal(v) for v in test.values)
        return f"SELECT DISTINCT {column} FROM {relation} WHERE {column} NOT IN ({values})"
    # relationships: every non-null value has a parent row (dbt's left-join form).
    parent, field = lookup(test.to), quote(test.field)
    return (f"SELECT DISTINCT c.{column} FROM {relation} c LEFT JOIN (SELECT {field} AS __parent FROM {parent}) p "
            f"ON c.{column} = p.__parent WHERE c.{column} IS NOT NULL AND p.__parent IS NULL")


def outcome(spark, test: ColumnTest, relation: str, lookup: Callable[[Reference], str]) -> str | None:
    """None when ``test`` passes, else what failed: how many rows, and a few of them."""
    statement = failing_rows(test, relation, lookup)
    count = spark.sql(f"SELECT count(*) FROM ({statement})").collect()[0][0]
    if not count:
        return None
    examples = [tuple(row) if len(row) > 1 else row[0] for row in spark.sql(statement).limit(EXAMPLES).collect()]
    return f"{test.label} failed on {count} row(s), e.g. {examples}"
