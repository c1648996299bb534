"""One canonical form per value, so a row read from PostgreSQL (psycopg) and the same row
read from Iceberg (DuckDB over pyiceberg) compare equal exactly when they are equal."""

from __future__ import annotations

import hashlib
import re
import struct
import uuid
from datetime import datetime, time, timezone
from decimal import Decimal
from typing import Any

from cdclake.lakehouse.pgschema import GEOMETRIC, TIMESTAMP_INFINITY, TIMESTAMP_MINUS_INFINITY, Column

NUMBER = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def canonical(value: Any, float32: bool = False) -> Any:
    """A hashable, engine-independent form of ``value``."""
    if value is None:
        return None
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, Decimal):
        return str(value.normalize()) if value else "0"
    if isinstance(value, float):
        return repr(struct.unpack("f", struct.pack("f", value))[0]) if float32 else repr(value)
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat() if value.tzinfo else value.isoformat()
    if isinstance(value, memoryview | bytearray):
        return bytes(value)
    if isinstance(value, list | tuple):
        return tuple(canonical(v, float32) for v in value)
    if isinstance(value, uuid.UUID | time):
        return str(value)
    return value if isinstance(value, bytes) else repr(value)


def source_expression(column: Column) -> str:
    """The PostgreSQL select expression giving a column in silver's representation."""
    name = '"' + column.name.replace('"', '""') + '"'
    if column.is_array:
        return f"{name}::text[]" if column.element_type == "string" else name
    if column.pg_type == "bpchar":
        return name  # char(n) keeps its padding, as Debezium sends it; ::text would strip it
    if column.pg_type == "money":
        return f"{name}::numeric"
    if column.pg_type == "bit" and column.element_type == "boolean":
        return f"({name} = B'1')"
    if column.pg_type == "interval":
        fields = ", ".join(f"extract({f} FROM {name})" for f in ("year", "month", "day", "hour", "minute"))
        return (f"CASE WHEN {name} IS NOT NULL THEN format('P%sY%sM%sDT%sH%sM%sS', {fields}, "
                f"trim_scale(extract(second FROM {name}))) END")
    if column.pg_type in ("timestamp", "timestamptz"):
        return (f"CASE {name} WHEN 'infinity' THEN {TIMESTAMP_INFINITY} WHEN '-infinity' THEN "
                f"{TIMESTAMP_MINUS_INFINITY} ELSE (extract(epoch FROM {name}) * 1000000)::bigint END")
    if column.pg_type == "inet":
        return f"CASE WHEN {name} IS NOT NULL THEN format('%s', {name}) END"  # output form; ::text adds /32
    if column.element_type == "string":
        return f"{name}::text"
    if column.pg_type == "time":
        return f"(extract(epoch FROM {name}) * 1000000)::bigint"
    return name


def silver_expression(column: Column) -> str:
    """The DuckDB select expression giving a silver column in the form of :func:`source_expression`."""
    name = '"' + column.name.replace('"', '""') + '"'
    if column.pg_type in ("timestamp", "timestamptz") and not column.is_array:
        return f"epoch_us({name})"  # infinities are far outside Python's datetime
    return name


def normaliser(column: Column):
    """The per-column step before :func:`canonical`: geometric values compare by their numbers
    (PostgreSQL writes ``(1,2)``, pgjdbc ``(1.0,2.0)``; both are the same doubles)."""
    if column.pg_type in GEOMETRIC and not column.is_array:
        return lambda value: value if value is None else NUMBER.sub(lambda m: repr(float(m.group())), value)
    return lambda value: value


def row_hash(values: tuple) -> bytes:
    return hashlib.blake2b(repr(values).encode(), digest_size=16).digest()


def key_order(value: Any) -> Any:
    """Python order equal to ORDER BY in PostgreSQL (COLLATE "C") and DuckDB."""
    return str(value) if isinstance(value, uuid.UUID) else value
