"""The query engines behind ``cdclake sql``, chosen from a registry and imported lazily."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from cdclake.lakehouse.configuration import LakehousePlan
from cdclake.query.exceptions import QueryError


@dataclass
class QueryResult:
    columns: list[str]
    rows: list[tuple]

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


def table_pattern(plan: LakehousePlan) -> re.Pattern:
    """``[lake.]cdc_db.<table>`` with an optional ``VERSION AS OF n`` / ``TIMESTAMP AS OF 'ts'``."""
    catalog, namespace = re.escape(plan.catalog.name), re.escape(plan.namespace)
    return re.compile(
        rf"(?<![\w.])(?:{catalog}\.)?{namespace}\.([A-Za-z_][A-Za-z0-9_]*)"
        r"(?:\s+(?:FOR\s+SYSTEM_)?VERSION\s+AS\s+OF\s+(\d+)"
        r"|\s+(?:FOR\s+SYSTEM_)?TIMESTAMP\s+AS\s+OF\s+'([^']+)')?", re.IGNORECASE)


def run_duckdb(plan: LakehousePlan, statement: str) -> QueryResult:
    """Load each referenced table (at the asked snapshot) through pyiceberg, then run DuckDB."""
    import duckdb

    from cdclake.lakehouse.catalog import pyiceberg_catalog

    catalog = pyiceberg_catalog(plan)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    views: dict[tuple, str] = {}

    def substitute(match: re.Match) -> str:
        key = (match.group(1).lower(), match.group(2), match.group(3))
        if key not in views:
            views[key] = f"__cdclake_t{len(views)}"
            con.register(views[key], _scan(catalog, plan, *key))
        return views[key]

    sql = table_pattern(plan).sub(substitute, statement)
    try:
        cursor = con.execute(sql)
    except duckdb.Error as exc:
        raise QueryError(f"DuckDB: {str(exc).splitlines()[0]}") from exc
    columns = [d[0] for d in cursor.description] if cursor.description else []
    return QueryResult(columns, cursor.fetchall() if columns else [])


def _scan(catalog: Any, plan: LakehousePlan, table: str, snapshot: str | None, timestamp: str | None) -> Any:
    from pyiceberg.exceptions import NoSuchTableError

    try:
        iceberg = catalog.load_table(f"{plan.namespace}.{table}")
    except NoSuchTableError as exc:
        raise QueryError(f"no table {plan.namespace}.{table}; list them with "
                         f"`cdclake sql \"SHOW TABLES\" --engine spark` or run `cdclake run all`") from exc
    snapshot_id = int(snapshot) if snapshot else None
    if timestamp:
        moment = datetime.fromisoformat(timestamp)
        moment = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
        found = iceberg.snapshot_as_of_timestamp(int(moment.timestamp() * 1000))
        if found is None:
            raise QueryError(f"{plan.namespace}.{table} has no snapshot at or before {timestamp}")
        snapshot_id = found.snapshot_id
    if snapshot_id is not None and iceberg.snapshot_by_id(snapshot_id) is None:
        raise QueryError(f"{plan.namespace}.{table} has no snapshot {snapshot_id}; see "
                         f"`cdclake sql \"SELECT snapshot_id, committed_at FROM {plan.namespace}.{table}.snapshots\" "
                         "--engine spark`")
    return iceberg.scan(snapshot_id=snapshot_id).to_arrow()


def run_spark(plan: LakehousePlan, statement: str, spark: Any = None) -> QueryResult:
    """Spark SQL with the Iceberg catalog as the default catalog."""
    from pyspark.errors import PySparkException

    from cdclake.lakehouse.spark import session

    spark = spark or session(plan, "cdclake-sql")
    try:
        frame = spark.sql(statement)
        rows = [tuple(r) for r in frame.collect()]
    except PySparkException as exc:
        raise QueryError(f"Spark SQL: {str(exc).splitlines()[0]}") from exc
    return QueryResult(list(frame.columns), rows)


ENGINES = {"duckdb": run_duckdb, "spark": run_spark}


def run_sql(plan: LakehousePlan, statement: str, engine: str = "duckdb", **kwargs: Any) -> QueryResult:
    """Run ``statement`` on ``engine`` (``duckdb`` or ``spark``)."""
    if engine not in ENGINES:
        raise QueryError(f"unknown engine {engine!r}; use one of {', '.join(ENGINES)}")
    return ENGINES[engine](plan, statement, **kwargs)
