"""One canonical form per value, so a row read from PostgreSQL (psycopg) and the same row
read from Iceberg (DuckDB over pyiceberg) compare equal exactly when they are equal."""

from __future__ import annotations

import hashlib
import struct
import uuid
from datetime import datetime, time, timezone
from decimal import Decimal
from typing import Any

from cdclake.lakehouse.pgschema import Column


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
        return name
    if column.pg_type == "bpchar":
        return name  # char(n) keeps its padding, as Debezium sends it; ::text would strip it
    if column.pg_type in ("json", "jsonb", "xml", "timetz") or column.element_type == "string":
        return f"{name}::text"
    if column.pg_type in ("time", "interval"):
        return f"(extract(epoch FROM {name}) * 1000000)::bigint"
    return name


def row_hash(values: tuple) -> bytes:
    return hashlib.blake2b(repr(values).encode(), digest_size=16).digest()


def key_order(value: Any) -> Any:
    """Python order equal to ORDER BY in PostgreSQL (COLLATE "C") and DuckDB."""
    return str(value) if isinstance(value, uuid.UUID) else value
