"""Silver against the source: row counts, then a per-key row-hash comparison.

Both sides stream in key order (PostgreSQL through a server-side cursor, Iceberg through
DuckDB over pyiceberg's Arrow batches) and are merge-joined chunk by chunk, so no side is
ever held in memory whole. Reports missing, extra and different keys with examples.

A table without a key is compared as a multiset: every row's hash is counted up from the
source and down from silver; a hash left with a count is a row missing (positive) or extra
(negative) that many times. That holds one count per distinct row of the table in memory.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from psycopg import sql

from cdclake.lakehouse.configuration import LakehousePlan, TableRef
from cdclake.lakehouse.pgschema import TableSchema, read_schema
from cdclake.verify.normalize import canonical, key_order, normaliser, row_hash, silver_expression, source_expression

CHUNK = 5000
EXAMPLES = 5


@dataclass
class TableReport:
    table: str
    source_rows: int = 0
    silver_rows: int = 0
    missing: int = 0
    extra: int = 0
    different: int = 0
    examples: dict[str, list[Any]] = field(default_factory=lambda: {"missing": [], "extra": [], "different": []})
    error: str | None = None
    skipped: str | None = None  # why the table is not compared (the stream layer reshapes it)

    @property
    def ok(self) -> bool:
        if self.skipped:
            return self.error is None
        return self.error is None and not (self.missing or self.extra or self.different) \
            and self.source_rows == self.silver_rows

    def note(self, kind: str, example: Any) -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        if len(self.examples[kind]) < EXAMPLES:
            self.examples[kind].append(example)


def verify_table(plan: LakehousePlan, ref: TableRef, catalog: Any, chunk: int = CHUNK) -> TableReport:
    """Compare ``silver_<table>`` with the source table, row by row and value by value."""
    report = TableReport(ref.source)
    with plan.connect_source() as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        schema = read_schema(conn, ref.source, ref.key_columns)
        try:
            table = catalog.load_table(ref.silver_short)
        except Exception as exc:  # pyiceberg raises NoSuchTableError; keep the import lazy
            report.error = f"{ref.silver_short} cannot be read ({type(exc).__name__}); run `cdclake run silver`"
            return report
        source = _source_rows(conn, ref, schema, chunk)
        silver = _silver_rows(table, schema, chunk)
        (_compare_multisets if schema.keyless else _compare)(report, schema, source, silver)
    return report


def _source_rows(conn, ref: TableRef, schema: TableSchema, chunk: int) -> Iterator[tuple]:
    columns = sql.SQL(", ").join(sql.SQL(source_expression(c)) for c in schema.columns)
    order = sql.SQL(", ").join(_pg_order(c) for c in schema.keys)
    query = sql.SQL("SELECT {} FROM {}.{}" + (" ORDER BY {}" if schema.keys else "")).format(
        columns, sql.Identifier(ref.schema), sql.Identifier(ref.table), order)
    with conn.cursor(name=f"cdclake_verify_{uuid.uuid4().hex[:8]}") as cur:
        cur.itersize = chunk
        cur.execute(query)
        yield from cur


def _pg_order(column) -> sql.Composable:
    ident = sql.Identifier(column.name)
    if column.element_type == "string":
        return sql.SQL('{}::text COLLATE "C"').format(ident)
    return ident


def _silver_rows(table: Any, schema: TableSchema, chunk: int) -> Iterator[tuple]:
    import duckdb

    names = [c.name for c in schema.columns]
    reader = table.scan(selected_fields=tuple(names)).to_arrow_batch_reader()
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("silver", reader)
        order = ", ".join(_quote(c.name) for c in schema.keys)
        ordered = f" ORDER BY {order}" if order else ""
        columns = ", ".join(silver_expression(c) for c in schema.columns)
        cur = con.execute(f"SELECT {columns} FROM silver{ordered}")
        while rows := cur.fetchmany(chunk):
            yield from rows
    finally:
        con.close()


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _compare(report: TableReport, schema: TableSchema, source: Iterator[tuple], silver: Iterator[tuple]) -> None:
    key_idx = [schema.columns.index(c) for c in schema.keys]
    float32 = [c.pg_type == "float4" for c in schema.columns]
    steps = [normaliser(c) for c in schema.columns]

    def prepared(rows: Iterator[tuple]) -> Iterator[tuple[tuple, tuple]]:
        for row in rows:
            values = tuple(canonical(step(v), f) for v, f, step in zip(row, float32, steps, strict=True))
            yield tuple(key_order(values[i]) for i in key_idx), values

    src, dst = prepared(source), prepared(silver)
    a, b = next(src, None), next(dst, None)
    while a is not None or b is not None:
        if b is None or (a is not None and a[0] < b[0]):
            report.source_rows += 1
            report.note("missing", _key_dict(schema, a[0]))
            a = next(src, None)
        elif a is None or b[0] < a[0]:
            report.silver_rows += 1
            report.note("extra", _key_dict(schema, b[0]))
            b = next(dst, None)
        else:
            report.source_rows += 1
            report.silver_rows += 1
            if row_hash(a[1]) != row_hash(b[1]):
                report.note("different", _difference(schema, a, b))
            a, b = next(src, None), next(dst, None)


def _compare_multisets(report: TableReport, schema: TableSchema, source: Iterator[tuple],
                       silver: Iterator[tuple]) -> None:
    """Compare two multisets of rows: each distinct row must appear as often on both sides."""
    float32 = [c.pg_type == "float4" for c in schema.columns]
    counts: dict[bytes, list] = {}  # row hash -> [source copies - silver copies, the row]
    for side, rows in ((1, source), (-1, silver)):
        for row in rows:
            values = tuple(canonical(v, f) for v, f in zip(row, float32, strict=True))
            entry = counts.setdefault(row_hash(values), [0, values])
            entry[0] += side
            if side > 0:
                report.source_rows += 1
            else:
                report.silver_rows += 1
    for difference, values in counts.values():
        if difference:
            kind = "missing" if difference > 0 else "extra"
            report.note(kind, {"row": dict(zip((c.name for c in schema.columns), map(_short, values), strict=True)),
                               "copies": abs(difference)})
            setattr(report, kind, getattr(report, kind) + abs(difference) - 1)  # note() counted one copy


def _key_dict(schema: TableSchema, key: tuple) -> dict:
    return {c.name: v for c, v in zip(schema.keys, key, strict=True)}


def _difference(schema: TableSchema, a: tuple, b: tuple) -> dict:
    columns = {c.name: {"source": _short(x), "silver": _short(y)}
               for c, x, y in zip(schema.columns, a[1], b[1], strict=True) if x != y}
    return {"key": _key_dict(schema, a[0]), "columns": columns}


def _short(value: Any) -> Any:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
