"""Silver's typed columns, from PostgreSQL's catalog, and how each JSON encoding
(docs/events.md) becomes that type in Spark SQL.

A column's Debezium value is first read as its raw JSON text (Spark's ``from_json`` keeps
arrays and numbers as text for a string field), then converted by :func:`convert`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import psycopg

from cdclake.config.tables import TableId
from cdclake.lakehouse.exceptions import SchemaChangeError, SourceTableError

TOAST_PLACEHOLDER = "__debezium_unavailable_value"
TOAST_ARRAY_PLACEHOLDER = f'["{TOAST_PLACEHOLDER}"]'

# PostgreSQL type name -> Spark SQL type for scalar types (docs/events.md, "Column encodings").
SCALAR_TYPES = {
    "int2": "int", "int4": "int", "int8": "bigint", "oid": "bigint",
    "float4": "float", "float8": "double", "bool": "boolean",
    "text": "string", "varchar": "string", "bpchar": "string", "uuid": "string",
    "json": "string", "jsonb": "string", "xml": "string", "citext": "string", "inet": "string",
    "cidr": "string", "macaddr": "string", "macaddr8": "string", "tsvector": "string", "point": "string",
    "bit": "string", "bytea": "binary", "date": "date", "interval": "string", "money": "decimal(19,2)",
    "timestamptz": "timestamp", "timestamp": "timestamp_ntz", "time": "bigint",
}
# Types Debezium does not know: with include.unknown.datatypes it sends PostgreSQL's own
# text of the value, base64-encoded; silver decodes it back to that text.
TEXT_AS_BYTES = {"tsquery", "line", "lseg", "box", "path", "polygon", "circle"}
# Geometric values whose numbers pass through pgjdbc's doubles: exact numbers, Java's spelling.
GEOMETRIC = {"point", "line", "lseg", "box", "path", "polygon", "circle"}
ENUM, RANGE, MULTIRANGE, COMPOSITE = "e", "r", "m", "c"
# Array elements Debezium carries exactly (checked end to end by test_every_type_round_trips).
ARRAY_ELEMENTS = {"int2", "int4", "int8", "float4", "float8", "bool", "text", "varchar", "uuid", "json", "jsonb",
                  "inet", "cidr", "macaddr"}
# Types Debezium changes on the way, each with the fix to name when refusing a column of it.
REFUSED = {
    "timetz": "Debezium converts time with time zone to UTC and drops its offset: use timestamptz, or time",
    "varbit": "Debezium sends bit varying as bytes without its length (leading zeros are lost): use bit(n) or text",
    "name": "Debezium sends an empty name as NULL: use text",
}
# Widenings Iceberg (and so silver) can follow without a rewrite.
WIDENINGS = {("int", "bigint"), ("float", "double")}
# numeric without a precision, or wider than Iceberg's decimal(38), keeps its exact decimal
# text (Debezium's decimal.handling.mode=string, plain notation; NaN and ±Infinity spelled
# as PostgreSQL spells them): a decimal(38,s) would round it silently.
NUMERIC_TEXT = "string"
DEBEZIUM_SPECIAL_NUMERICS = {"NAN": "NaN", "POSITIVE_INFINITY": "Infinity", "NEGATIVE_INFINITY": "-Infinity"}
# Debezium's encodings of timestamp 'infinity' / '-infinity', in microseconds since the epoch.
TIMESTAMP_INFINITY, TIMESTAMP_MINUS_INFINITY = 9223372036825200000, -9223372036832400000
FIRST_AD_DAY, FIRST_AD_MICROS = -719162, -62135596800000000  # 0001-01-01, in days / microseconds

COLUMNS_SQL = """
SELECT a.attname, t.typname, t.typcategory, et.typname AS elem, base.typmod,
       format_type(a.atttypid, a.atttypmod) AS declared,
       coalesce(array_position(i.indkey::int2[], a.attnum) - array_lower(i.indkey::int2[], 1) + 1, 0) AS key_pos,
       coalesce(et.typtype, t.typtype) AS typtype, a.attnum, a.attgenerated <> '' AS generated, a.attndims,
       CASE WHEN a.atthasmissing THEN array_to_json(a.attmissingval)->>0 END AS missing
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN LATERAL (  -- a domain is carried as its base type (Debezium sends the base type's encoding)
    WITH RECURSIVE chain(oid, typmod, depth) AS (
        SELECT a.atttypid, a.atttypmod, 0
        UNION ALL
        SELECT d.typbasetype, d.typtypmod, chain.depth + 1 FROM chain JOIN pg_type d ON d.oid = chain.oid
        WHERE d.typtype = 'd')
    SELECT oid, typmod FROM chain ORDER BY depth DESC LIMIT 1) base ON true
JOIN pg_type t ON t.oid = base.oid
LEFT JOIN pg_type et ON et.oid = t.typelem AND t.typcategory = 'A'
LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary
WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""


@dataclass(frozen=True)
class Column:
    """One source column and its silver type."""

    name: str
    pg_type: str          # typname (of a domain's base type); for arrays the element's typname
    is_array: bool
    typmod: int
    declared: str         # format_type(), e.g. numeric(12,2), text[]
    typtype: str = "b"    # pg_type.typtype of the (element) type: b base, e enum, r range, m multirange, c composite
    key_pos: int = 0      # 1-based position in the primary key, 0 if not a key column
    attnum: int = 0       # pg_attribute.attnum: stays the same across a RENAME COLUMN
    generated: bool = False
    ndims: int = 0        # declared array dimensions (attndims)
    missing: str | None = None  # the fast default (ADD COLUMN ... DEFAULT) of rows older than the column

    @property
    def is_key(self) -> bool:
        return self.key_pos > 0

    @property
    def element_type(self) -> str:
        return spark_scalar_type(self.pg_type, self.typmod if not self.is_array else -1, self.typtype)

    @property
    def spark_type(self) -> str:
        return f"array<{self.element_type}>" if self.is_array else self.element_type

    @property
    def as_bytes_of_text(self) -> bool:
        """Whether Debezium sends the value as base64 of PostgreSQL's text (an unknown type)."""
        return self.pg_type in TEXT_AS_BYTES or self.typtype in (MULTIRANGE, COMPOSITE)

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


def read_columns(conn: psycopg.Connection, table: TableId) -> tuple[Column, ...]:
    """The table's columns from pg_catalog (empty when the table does not exist)."""
    return tuple(Column(name=r[0], pg_type=r[3] or r[1], is_array=r[2] == "A", typmod=r[4], declared=r[5],
                        typtype=r[7], key_pos=r[6], attnum=r[8], generated=r[9], ndims=r[10], missing=r[11])
                 for r in conn.execute(COLUMNS_SQL, (table.schema, table.name)).fetchall())


def read_schema(conn: psycopg.Connection, table: TableId, key_columns: tuple[str, ...] = ()) -> TableSchema:
    """The table's columns and primary key from pg_catalog (or ``key_columns``, the unique
    column set ``source.key_columns`` names for a table without one).

    A table with neither is keyless (:attr:`TableSchema.keyless`): it must have REPLICA
    IDENTITY FULL, so that deletes and updates carry the whole old row.

    Raises:
        SourceTableError: the table does not exist, or is keyless without REPLICA IDENTITY FULL.
    """
    columns = read_columns(conn, table)
    if not columns:
        raise SourceTableError(f"source table {table} not found; create it or remove it from source.tables",
                               table=table)
    if key_columns and not any(c.is_key for c in columns):
        columns = _keyed_by(table, columns, key_columns)
    result = TableSchema(table, columns)
    if result.keyless:
        identity = conn.execute(REPLICA_IDENTITY_SQL, (table.schema, table.name)).fetchone()[0]
        if identity != "f":
            from cdclake.source.prepare import keyless_identity_problem  # prepare imports this module

            raise SourceTableError(keyless_identity_problem(table, identity), table=table)
    return result


REPLICA_IDENTITY_SQL = """SELECT c.relreplident FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relname = %s"""


def refusal(table: str, column: Column) -> str | None:
    """Why silver could not carry this column exactly, with the fix; None when it can."""
    where = f"column {table}.{column.name} ({column.declared})"
    if column.generated:
        return (f"{where} is GENERATED: PostgreSQL's logical replication does not publish generated columns, so "
                f"silver would hold NULL; ALTER TABLE {table} ALTER COLUMN {column.name} DROP EXPRESSION (fill it "
                "with a trigger instead) or compute it in a gold model")
    if column.pg_type in REFUSED:
        return f"{where}: {REFUSED[column.pg_type]} (ALTER TABLE {table} ALTER COLUMN {column.name} TYPE ...)"
    if column.is_array and (column.ndims > 1 or not _array_element_ok(column)):
        return (f"{where}: Debezium carries only one-dimensional arrays of plain scalars exactly (it nulls nested "
                "arrays, NaN numerics and infinite dates inside arrays): store it as jsonb or text "
                f"(ALTER TABLE {table} ALTER COLUMN {column.name} TYPE jsonb USING to_jsonb({column.name}))")
    if not column.is_array and not _known(column):
        return (f"{where}: cdclake does not know how Debezium encodes type {column.pg_type}; cast it to text "
                f"(ALTER TABLE {table} ALTER COLUMN {column.name} TYPE text) or leave the table out of source.tables")
    return None


def _array_element_ok(column: Column) -> bool:
    return column.pg_type in ARRAY_ELEMENTS or column.typtype == ENUM


def _known(column: Column) -> bool:
    return (column.pg_type in SCALAR_TYPES or column.pg_type in TEXT_AS_BYTES or column.pg_type == "numeric"
            or column.typtype in (ENUM, RANGE, MULTIRANGE, COMPOSITE))


def _keyed_by(table: str, columns: tuple[Column, ...], key_columns: tuple[str, ...]) -> tuple[Column, ...]:
    names = {c.name for c in columns}
    unknown = [k for k in key_columns if k not in names]
    if unknown:
        raise SourceTableError(f"source.key_columns for {table} names {', '.join(unknown)}, not a column of the "
                               f"table (columns: {', '.join(sorted(names))})", table=table)
    return tuple(replace(c, key_pos=key_columns.index(c.name) + 1) if c.name in key_columns else c
                 for c in columns)


def spark_scalar_type(pg_type: str, typmod: int, typtype: str = "b") -> str:
    """Spark SQL type of a PostgreSQL scalar type (numeric(p,s) -> decimal(p,s), ...)."""
    if pg_type == "numeric":
        if typmod < 4:
            return NUMERIC_TEXT
        precision, scale = ((typmod - 4) >> 16) & 0xFFFF, (typmod - 4) & 0xFFFF
        return f"decimal({precision},{scale})" if precision <= 38 and 0 <= scale <= precision else NUMERIC_TEXT
    if pg_type == "bit" and typmod == 1:
        return "boolean"  # Debezium sends bit(1) as a boolean
    if typtype != "b" or pg_type not in SCALAR_TYPES:
        return "string"  # enums, ranges, multiranges, composites, text-like unknown types: their text
    return SCALAR_TYPES[pg_type]


def millis_precision(column: Column) -> bool:
    """time/timestamp(p<=3) arrive in milliseconds under time.precision.mode=adaptive."""
    return 0 <= column.typmod <= 3 and not column.is_array


# A refused value stops its table until a newer change of that key (or, for a table without a
# key, a re-snapshot, whose marker drops every older change) supersedes it.
REFUSED_FIX = ("; change that row at the source (silver merges each key's newest change; a table without a "
               "key: then `cdclake connector snapshot <table>`)")
REFUSED_VALUE = re.compile(r"(column .+? holds .+?" + re.escape(REFUSED_FIX) + ")")


def literal(text: str) -> str:
    """A Spark SQL string literal (a column name in a DDL string may hold quotes or backslashes)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def value_guard(raw: str, column: Column) -> tuple[str, str] | None:
    """(a Spark SQL predicate: the raw JSON text is a value silver cannot hold exactly, what
    that value is), or None when every value of the (element) type is held."""
    pg, kind = column.pg_type, column.element_type
    if pg == "timestamp":
        micros = f"CAST({raw} AS BIGINT) * {1000 if millis_precision(column) else 1}"
        return (f"{micros} < {FIRST_AD_MICROS} AND {micros} <> {TIMESTAMP_MINUS_INFINITY}",
                "a BC timestamp, which Debezium does not carry exactly")
    if pg == "date":
        return f"CAST({raw} AS INT) < {FIRST_AD_DAY}", "a BC or infinite date, which Debezium does not carry exactly"
    if pg == "timestamptz":
        # Debezium writes a BC year with a sign ("-0043-03-15…"), which it gets wrong for date and timestamp.
        return (f"{raw} NOT IN ('infinity', '-infinity') AND substr({raw}, 1, 1) IN ('-', '+')",
                "a BC timestamp, which Debezium does not carry exactly")
    if pg == "numeric" and kind != NUMERIC_TEXT:
        return (f"{raw} IN ({', '.join(repr(k) for k in DEBEZIUM_SPECIAL_NUMERICS)})",
                f"NaN, which {kind} cannot hold (or declare the column numeric)")
    return None


def _refusal_text(column: Column, what: str) -> str:
    return literal(f"column {column.name} ({column.declared}) holds {what}{REFUSED_FIX}")


def refused(raw: str, column: Column) -> str | None:
    """A Spark SQL expression: the refusal of the raw value (NULL when silver holds it), or None
    when the column holds every value. For :func:`convert` with ``refuse=False``."""
    guard = value_guard("x" if column.is_array else raw, column)
    if guard is None:
        return None
    check = f"exists(from_json({raw}, 'array<string>'), x -> {guard[0]})" if column.is_array else guard[0]
    return f"CASE WHEN {check} THEN {_refusal_text(column, guard[1])} END"


def refused_value(exc: BaseException, table: str) -> str | None:
    """The refusal a failed Spark job carries (``raise_error`` of one), naming ``table``; else None."""
    found = REFUSED_VALUE.search(str(exc))
    return found.group(1).replace("<table>", table) if found else None


def convert(raw: str, column: Column, element: bool = False, refuse: bool = True) -> str:
    """A Spark SQL expression turning the raw JSON text ``raw`` into the column's type.

    A value silver cannot hold exactly fails the job (``refuse``), or converts to something
    undefined that the caller must refuse itself (:func:`refused`).
    """
    if column.is_array and not element:
        inner = convert("x", column, element=True, refuse=refuse)
        return f"transform(from_json({raw}, 'array<string>'), x -> {inner})"
    value, guard = _plain(raw, column), value_guard(raw, column) if refuse else None
    if guard is None:
        return value
    return f"CASE WHEN {guard[0]} THEN raise_error({_refusal_text(column, guard[1])}) ELSE {value} END"


def _plain(raw: str, column: Column) -> str:
    kind, pg = column.element_type, column.pg_type
    if pg == "timestamp":
        micros = f"CAST({raw} AS BIGINT) * {1000 if millis_precision(column) else 1}"
        return f"CAST(timestamp_micros({micros}) AS TIMESTAMP_NTZ)"
    if pg == "time":
        return f"CAST({raw} AS BIGINT) * 1000" if millis_precision(column) else f"CAST({raw} AS BIGINT)"
    if pg == "date":
        return f"date_add(DATE'1970-01-01', CAST({raw} AS INT))"
    if pg == "timestamptz":
        return (f"CASE {raw} WHEN 'infinity' THEN timestamp_micros({TIMESTAMP_INFINITY}) "
                f"WHEN '-infinity' THEN timestamp_micros({TIMESTAMP_MINUS_INFINITY}) ELSE CAST({raw} AS TIMESTAMP) END")
    if pg == "bytea":
        return f"unbase64({raw})"
    if column.as_bytes_of_text:
        return f"CAST(unbase64({raw}) AS STRING)"
    if pg == "point":
        return f"concat('(', get_json_object({raw}, '$.x'), ',', get_json_object({raw}, '$.y'), ')')"
    if pg == "bit" and kind == "string":
        return _bits(raw, column.typmod)
    if pg == "numeric" and kind == NUMERIC_TEXT:
        specials = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in DEBEZIUM_SPECIAL_NUMERICS.items())
        # A negative scale (numeric(5,-2)) holds integers, which Debezium writes with a run of ".000…".
        plain = f"regexp_replace({raw}, '[.]0+$', '')" if _negative_scale(column) else raw
        return f"CASE {raw} {specials} ELSE {plain} END"
    if kind == "boolean":
        return f"CAST({raw} AS BOOLEAN)"
    if kind == "string":
        return raw
    return f"CAST({raw} AS {kind})"


def _negative_scale(column: Column) -> bool:
    """PostgreSQL 15+ keeps numeric's scale in the typmod's low 11 bits, two's complement."""
    return column.typmod >= 4 and (column.typmod - 4) & 0x7FF >= 0x400


def _bits(raw: str, length: int) -> str:
    """bit(n): Debezium sends the bits as a little-endian integer, high zero bytes dropped;
    back to PostgreSQL's text, n characters of 0 and 1."""
    hexed = f"hex(unbase64({raw}))"
    bits = (f"array_join(reverse(transform(sequence(1, length({hexed}), 2), "
            f"i -> lpad(conv(substr({hexed}, i, 2), 16, 2), 8, '0'))), '')")
    return (f"CASE WHEN {raw} IS NULL THEN NULL WHEN {raw} = '' THEN repeat('0', {length}) "
            f"ELSE right(concat(repeat('0', {length}), {bits}), {length}) END")


def missing_literal(column: Column) -> str | None:
    """The Spark SQL value of the column's fast default (rows older than an ``ADD COLUMN ...
    DEFAULT``, which PostgreSQL fills without writing them), or None when it cannot be told."""
    text = column.missing
    if text is None:
        return None
    quoted = literal(text)
    native = {"date": "DATE", "timestamp": "TIMESTAMP_NTZ", "timestamptz": "TIMESTAMP"}
    if column.pg_type in native and not column.is_array:
        return f"CAST({quoted} AS {native[column.pg_type]})"
    # array_to_json spells these as Debezium does; the others (bytea, bit, interval, time, money,
    # geometric, unknown types) it spells differently.
    if column.is_array or column.pg_type in ("numeric", "int2", "int4", "int8", "float4", "float8", "bool", "oid") \
            or (column.element_type == "string" and column.pg_type not in ("interval", "bit", "point")
                and not column.as_bytes_of_text):
        return convert(quoted, column)
    return None


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
                    f"Iceberg cannot widen; PostgreSQL rewrote the rows without change events, so re-read them "
                    f"with `cdclake connector snapshot {table}`, then `cdclake rebuild silver {table}` "
                    "(or revert the column type)", table=table, column=column.name)
    # Only a silver table from before columns were tracked by attnum can still hold one.
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
