"""How far Debezium's snapshots have got, read from the connector's committed offsets.

During an incremental snapshot (a table added to capture, `connector apply`) Debezium keeps
its position in the source offset: the tables still to read, in order
(``incremental_snapshot_collections``), the key of the last chunk read and the table's
largest key when the snapshot of that table began (``incremental_snapshot_primary_key``,
``incremental_snapshot_maximum_key``: Java-serialized ``Object[]`` as hex). Connect commits
offsets every ``offset.flush.interval.ms`` (5 s on the local stack), so this lags by that much.
For a single numeric key the done share is (key - min) / (max - min), ``min`` read from
PostgreSQL through the primary key's index.
"""

from __future__ import annotations

import json
import struct
from decimal import Decimal
from typing import Any

from cdclake.config.tables import TableId

# Java object serialization (java.io.ObjectStreamConstants): the subset Debezium's keys use.
TC_NULL, TC_REFERENCE, TC_CLASSDESC, TC_OBJECT, TC_STRING, TC_ARRAY, TC_ENDBLOCKDATA = (
    0x70, 0x71, 0x72, 0x73, 0x74, 0x75, 0x78)
TC_BLOCKDATA, TC_LONGSTRING = 0x77, 0x7C
SC_WRITE_METHOD = 0x01
PRIMITIVES = {"B": ">b", "C": ">H", "D": ">d", "F": ">f", "I": ">i", "J": ">q", "S": ">h", "Z": ">?"}
BASE_HANDLE = 0x7E0000


class Unreadable(ValueError):
    """A serialized key outside the subset this reader knows."""


class _Reader:
    """Reads one serialized object graph into Python values (boxed numbers, strings,
    BigInteger/BigDecimal, arrays); any other class becomes ``{"class": name, **fields}``."""

    def __init__(self, data: bytes):
        self.data, self.pos, self.handles = data, 0, []

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise Unreadable("truncated")
        chunk, self.pos = self.data[self.pos:self.pos + n], self.pos + n
        return chunk

    def unpack(self, fmt: str) -> Any:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def utf(self, wide: bool = False) -> str:
        return self.take(self.unpack(">q" if wide else ">H")).decode("utf-8", "replace")

    def handle(self, value: Any) -> int:
        self.handles.append(value)
        return len(self.handles) - 1

    def content(self) -> Any:
        tag = self.unpack(">B")
        if tag == TC_NULL:
            return None
        if tag == TC_REFERENCE:
            return self.handles[self.unpack(">i") - BASE_HANDLE]
        if tag in (TC_STRING, TC_LONGSTRING):
            text = self.utf(wide=tag == TC_LONGSTRING)
            self.handle(text)
            return text
        if tag == TC_CLASSDESC:
            return self.class_desc_body()
        if tag == TC_ARRAY:
            return self.array()
        if tag == TC_OBJECT:
            return self.object()
        raise Unreadable(f"tag 0x{tag:02x}")

    def class_desc_body(self) -> dict:
        desc: dict[str, Any] = {"name": self.utf()}
        self.take(8)  # serialVersionUID
        self.handle(desc)
        desc["flags"] = self.unpack(">B")
        desc["fields"] = []
        for _ in range(self.unpack(">H")):
            code, name = chr(self.unpack(">B")), self.utf()
            if code in "[L":
                self.content()  # the field's class name
            desc["fields"].append((code, name))
        self.skip_annotation()
        desc["super"] = self.content()
        return desc

    def skip_annotation(self) -> None:
        while True:
            tag = self.data[self.pos] if self.pos < len(self.data) else None
            if tag == TC_ENDBLOCKDATA:
                self.pos += 1
                return
            if tag == TC_BLOCKDATA:
                self.pos += 1
                self.take(self.unpack(">B"))
                continue
            self.content()

    def array(self) -> list:
        desc = self.content()
        values: list = []
        self.handle(values)
        element = desc["name"][1:]
        for _ in range(self.unpack(">i")):
            values.append(self.unpack(PRIMITIVES[element]) if element in PRIMITIVES else self.content())
        return values

    def object(self) -> Any:
        desc = self.content()
        index = self.handle(None)
        chain = []
        while desc is not None:
            chain.insert(0, desc)
            desc = desc["super"]
        fields: dict[str, Any] = {}
        for cls in chain:
            for code, name in cls["fields"]:
                fields[name] = self.unpack(PRIMITIVES[code]) if code in PRIMITIVES else self.content()
            if cls["flags"] & SC_WRITE_METHOD:
                self.skip_annotation()
        value = _java_value(chain[-1]["name"], fields)
        self.handles[index] = value
        return value


def _java_value(cls: str, fields: dict[str, Any]) -> Any:
    if cls in ("java.lang.Integer", "java.lang.Long", "java.lang.Short", "java.lang.Byte",
               "java.lang.Double", "java.lang.Float", "java.lang.Boolean"):
        return fields["value"]
    if cls == "java.math.BigInteger":
        magnitude = bytes(b & 0xFF for b in fields["magnitude"])
        return fields["signum"] * int.from_bytes(magnitude, "big")
    if cls == "java.math.BigDecimal":
        return Decimal(fields["intVal"]).scaleb(-fields["scale"])
    return {"class": cls, **fields}


def decode_key(hex_text: str | None) -> list | None:
    """A chunk key from Debezium's offset (hex of a serialized ``Object[]``); None if absent."""
    if not hex_text:
        return None
    data = bytes.fromhex(hex_text)
    if data[:4] != b"\xac\xed\x00\x05":
        raise Unreadable("not a Java serialization stream")
    value = _Reader(data[4:]).content()
    if not isinstance(value, list):
        raise Unreadable("not an array")
    return value


def snapshot_state(offsets: list[dict]) -> dict[str, Any] | None:
    """What the connector's offset says about a running snapshot; None when none runs."""
    offset = next((o.get("offset") or {} for o in offsets), {})
    collections = offset.get("incremental_snapshot_collections")
    if collections:
        tables = [c["incremental_snapshot_collections_id"] for c in json.loads(collections)]
        state: dict[str, Any] = {"kind": "incremental", "table": tables[0], "queued": tables[1:]}
        try:
            state["at_key"] = _one(decode_key(offset.get("incremental_snapshot_primary_key")))
            state["max_key"] = _one(decode_key(offset.get("incremental_snapshot_maximum_key")))
        except (Unreadable, KeyError, IndexError, TypeError, struct.error) as exc:
            state["at_key"] = f"not readable ({exc})"
        return state
    if offset.get("snapshot") and offset.get("snapshot_completed") is False:
        return {"kind": "initial"}
    return None


def _one(key: list | None) -> Any:
    """A one-column key as its value, a composite one as its list."""
    if key is None:
        return None
    return key[0] if len(key) == 1 else key


def done_share(at_key: Any, max_key: Any, min_key: Any) -> float | None:
    """Share of a one-column numeric key range already read, or None when it cannot be said."""
    numbers = (int, float, Decimal)
    if not all(isinstance(k, numbers) and not isinstance(k, bool) for k in (at_key, max_key, min_key)):
        return None
    if max_key <= min_key:
        return 1.0
    return max(0.0, min(1.0, float((at_key - min_key) / (max_key - min_key))))


def min_key(conn, table: TableId, key_columns: list[str] | None) -> Any:
    """The smallest key of a table with a one-column key (None otherwise): an index lookup."""
    from psycopg import sql

    from cdclake.lakehouse.pgschema import read_schema

    keys = read_schema(conn, table, tuple(key_columns or ())).keys
    if len(keys) != 1:
        return None
    query = sql.SQL("SELECT min({}) FROM {}").format(sql.Identifier(keys[0].name), sql.Identifier(table.schema, table.name))
    return conn.execute(query).fetchone()[0]
