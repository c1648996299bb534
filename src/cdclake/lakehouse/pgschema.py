"""Silver's typed columns, from PostgreSQL's catalog, and how each JSON encoding
(docs/events.md) becomes that type in Spark SQL.

A column's Debezium value is first read as its raw JSON text (Spark's ``from_json`` keeps
arrays and numbers as text for a string field), then converted by :func:`convert`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import psycopg

from cdclake.config.tables import TableId
from cdclake.lakehouse.exceptions import SchemaChangeError, SourceTableError
from cdclake.source.prepare import keyless_identity_problem

TOAST_PLACEHOLDER = "__debezium_unavailable_value"
TOAST_ARRAY_PLACEHOLDER = f'["{TOAST_PLACEHOLDER}"]'

# PostgreSQL type name -> Spark SQL type for scalar types. numeric/time/timestamp handled apart.
SCALAR_TYPES = {
    "int2": "int", "int4": "int", "int8": "bigint", "oid": "bigint",
    "float4": "float", "float8": "double", "bool": "boolean",
    "text": "string", "varchar": "string", "bpchar": "string", "name": "string", "uuid": "string",
    "json": "string", "jsonb": "string", "xml": "string", "citext": "string", "inet": "string",
    "cidr": "string", "macaddr": "string", "timetz": "string", "bit": "string", "varbit": "string",
    "bytea": "binary", "date": "date", "interval": "bigint", "money": "decimal(19,2)",
    "timestamptz": "timestamp", "timestamp": "timestamp_ntz", "time": "bigint",
}
# Widenings Iceberg (and so silver) can follow without a rewrite.
WIDENINGS = {("int", "bigint"), ("float", "double")}
# numeric without a precision, or wider than Iceberg's decimal(38), keeps its exact decimal
# text (Debezium's decimal.handling.mode=string, plain notation; NaN and ±Infinity spelled
# as PostgreSQL spells them): a decimal(38,s) would round it silently.
NUMERIC_TEXT = "string"
DEBEZIUM_SPECIAL_NUMERICS = {"NAN": "NaN", "POSITIVE_INFINITY": "Infinity", "NEGATIVE_INFINITY": "-Infinity"}

COLUMNS_SQL = """
SELECT a.attname, t.typname, t.typcategory, et.typname AS elem, a.atttypmod,
       format_type(a.atttypid, a.atttypmod) AS declared,
       coalesce(array_position(i.indkey::int2[], a.attnum) - array_lower(i.indkey::int2[], 1) + 1, 0) AS key_pos
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_type et ON et.oid = t.typelem AND t.typcategory = 'A'
LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary
WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""


@dataclass(frozen=True)
class Column:
    """One source column and its silver type."""

    name: str
    pg_type: str          # typname; for arrays the element's typname
    is_array: bool
    typmod: int
    declared: str         # format_type(), e.g. numeric(12,2), text[]
    is_enum_or_domain: bool = False
    key_pos: int = 0      # 1-based position in the primary key, 0 if not a key column

    @property
    def is_key(self) -> bool:
        return self.key_pos > 0

    @property
    def element_type(self) -> str:
        return spark_scalar_type(self.pg_type, self.typmod if not self.is_array else -1,
                                 self.is_enum_or_domain)

    @property
    def spark_type(self) -> str:
        return f"array<{self.element_type}>" if self.is_array else self.element_type

    @property
    def may_be_placeholder(self) -> bool:
        """Whether Debezium may send the TOAST placeholder: any value encoded as text or array."""
        return self.is_array or self.element_type in ("string", "binary") or self.pg_type == "numeric"


@dataclass(frozen=True)
class TableSchema:
    source: str
    columns: tuple[Column, ...]

    @property
    def keys(self) -> list[Column]:
        return sorted((c for c in self.columns if c.is_key), key=lambda c: c.key_pos)

    @property
    def keyless(self) -> bool:
        """No primary key and no ``source.key_columns``: silver keeps the multiset of its rows."""
        return not self.keys

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)


def read_schema(conn: psycopg.Connection, table: TableId, key_columns: tuple[str, ...] = ()) -> TableSchema:
    """The table's columns and primary key from pg_catalog (or ``key_columns``, the unique
    column set ``source.key_columns`` names for a table without one).

    A table with neither is keyless (:attr:`TableSchema.keyless`): it must have REPLICA
    IDENTITY FULL, so that deletes and updates carry the whole old row.

    Raises:
        SourceTableError: the table does not exist, or is keyless without REPLICA IDENTITY FULL.
    """
    rows = conn.execute(COLUMNS_SQL, (table.schema, table.name)).fetchall()
    if not rows:
        raise SourceTableError(f"source table {table} not found; create it or remove it from source.tables",
                               table=table)
    columns = tuple(Column(name=r[0], pg_type=r[3] or r[1], is_array=r[2] == "A", typmod=r[4], declared=r[5],
                           is_enum_or_domain=r[2] in ("E",) or (r[1] not in SCALAR_TYPES and r[2] == "S"),
                           key_pos=r[6]) for r in rows)
    if key_columns and not any(c.is_key for c in columns):
        columns = _keyed_by(table, columns, key_columns)
    result = TableSchema(table, columns)
    if result.keyless:
        identity = conn.execute(REPLICA_IDENTITY_SQL, (table.schema, table.name)).fetchone()[0]
        if identity != "f":
            raise SourceTableError(keyless_identity_problem(table, identity), table=table)
    return result


REPLICA_IDENTITY_SQL = """SELECT c.relreplident FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relname = %s"""


def _keyed_by(table: str, columns: tuple[Column, ...], key_columns: tuple[str, ...]) -> tuple[Column, ...]:
    names = {c.name for c in columns}
    unknown = [k for k in key_columns if k not in names]
    if unknown:
        raise SourceTableError(f"source.key_columns for {table} names {', '.join(unknown)}, not a column of the "
                               f"table (columns: {', '.join(sorted(names))})", table=table)
    return tuple(replace(c, key_pos=key_columns.index(c.name) + 1) if c.name in key_columns else c
                 for c in columns)


def spark_scalar_type(pg_type: str, typmod: int, is_text_like: bool = False) -> str:
    """Spark SQL type of a PostgreSQL scalar type (numeric(p,s) -> decimal(p,s), ...)."""
    if pg_type == "numeric":
        if typmod < 4:
            return NUMERIC_TEXT
        precision, scale = ((typmod - 4) >> 16) & 0xFFFF, (typmod - 4) & 0xFFFF
        return f"decimal({precision},{scale})" if precision <= 38 and 0 <= scale <= precision else NUMERIC_TEXT
    if is_text_like or pg_type not in SCALAR_TYPES:
        return "string"  # enums, domains over text and unknown types arrive as their text
    return SCALAR_TYPES[pg_type]


def _millis_precision(column: Column) -> bool:
    """time/timestamp(p<=3) arrive in milliseconds under time.precision.mode=adaptive."""
    return 0 <= column.typmod <= 3 and not column.is_array


def convert(raw: str, column: Column, element: bool = False) -> str:
    """A Spark SQL expression turning the raw JSON text ``raw`` into the column's type."""
    if column.is_array and not element:
        inner = convert("x", column, element=True)
        return f"transform(from_json({raw}, 'array<string>'), x -> {inner})"
    kind, pg = column.element_type, column.pg_type
    if pg == "timestamp":
        unit = "timestamp_millis" if _millis_precision(column) else "timestamp_micros"
        return f"CAST({unit}(CAST({raw} AS BIGINT)) AS TIMESTAMP_NTZ)"
    if pg == "time":
        return f"CAST({raw} AS BIGINT) * 1000" if _millis_precision(column) else f"CAST({raw} AS BIGINT)"
    if pg == "date":
        return f"date_add(DATE'1970-01-01', CAST({raw} AS INT))"
    if pg == "timestamptz":
        return f"CAST({raw} AS TIMESTAMP)"
    if pg == "bytea":
        return f"unbase64({raw})"
    if pg == "numeric" and kind == NUMERIC_TEXT:
        specials = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in DEBEZIUM_SPECIAL_NUMERICS.items())
        return f"CASE {raw} {specials} ELSE {raw} END"
    if kind == "boolean":
        return f"CAST({raw} AS BOOLEAN)"
    if kind == "string":
        return raw
    return f"CAST({raw} AS {kind})"


def is_placeholder(raw: str) -> str:
    """A Spark SQL predicate: the raw value is Debezium's TOAST placeholder."""
    return f"coalesce({raw} IN ('{TOAST_PLACEHOLDER}', '{TOAST_ARRAY_PLACEHOLDER}'), false)"


def schema_changes(table: str, schema: TableSchema, current: dict[str, str]) -> tuple[list[Column], list[Column]]:
    """Compare the source's columns with silver's (name -> Spark type).

    Returns:
        (columns to add, columns to widen).

    Raises:
        SchemaChangeError: a change silver cannot follow, naming the column and the fix.
    """
    added, widened = [], []
    for column in schema.columns:
        have = current.get(column.name)
        want = column.spark_type
        if have is None:
            added.append(column)
        elif have != want:
            if _can_widen(have, want):
                widened.append(column)
            else:
                raise SchemaChangeError(
                    f"column {table}.{column.name} changed from {have} to {want} ({column.declared}), which "
                    f"Iceberg cannot widen; rebuild silver from bronze with `cdclake rebuild silver {table}` "
                    "or revert the column type", table=table, column=column.name)
    gone = [name for name in current if schema.column(name) is None and not name.startswith("_cdc_")]
    if gone:
        raise SchemaChangeError(
            f"column {table}.{gone[0]} was dropped or renamed in the source; silver keeps it: run "
            f"`cdclake rebuild silver {table}` to rebuild silver with the new columns", table=table, column=gone[0])
    return added, widened


def _can_widen(have: str, want: str) -> bool:
    if (have, want) in WIDENINGS:
        return True
    if have.startswith("decimal(") and want.startswith("decimal("):
        p1, s1 = map(int, have[8:-1].split(","))
        p2, s2 = map(int, want[8:-1].split(","))
        return s1 == s2 and p2 >= p1
    return False
