"""JSON in and out of the hot path.

msgspec (C, about 4x faster than the standard library here) is used when installed
(``pip install msgspec``); the standard library otherwise, with the same results. A
column decoder reads only the named top-level columns into a dict (the rest of the
document is checked for syntax and skipped), which is what lets a chain of filters and
enrichments forward the input bytes untouched and append the joined columns.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Iterable
from typing import Any

try:
    import msgspec
except ImportError:  # optional: the standard library gives the same results, slower
    msgspec = None

Decoder = Callable[[bytes], dict[str, Any]]
Getter = Callable[[Any], Any]


def object_decoder() -> Decoder:
    """Decode a whole JSON object.

    Raises (from the returned function):
        ValueError: not JSON, or not an object.
    """
    if msgspec is not None:
        return msgspec.json.Decoder(dict[str, Any]).decode
    return _check_object(json.loads)


def columns_decoder(columns: Iterable[str]) -> tuple[Callable[[bytes], Any], Callable[[str], Getter]]:
    """Decode only ``columns`` of a JSON object (missing ones read as None).

    Returns:
        ``(decode, getter)``: ``decode(raw)`` gives a record, ``getter(column)`` a fast
        function reading that column from such a record.

    Raises (from ``decode``):
        ValueError: not JSON, or not an object.
    """
    names = tuple(columns)
    if msgspec is None:
        loads = _check_object(json.loads)
        return loads, dict_getter
    attrs = {name: f"c{i}" for i, name in enumerate(names)}
    struct = msgspec.defstruct("Columns", [(attr, Any, None) for attr in attrs.values()],
                               rename={attr: name for name, attr in attrs.items()})
    return msgspec.json.Decoder(struct).decode, lambda column: operator.attrgetter(attrs[column])


def dict_getter(column: str) -> Getter:
    """Read a column of a dict record (None when missing)."""
    return operator.methodcaller("get", column)


def encoder() -> Callable[[Any], bytes]:
    """Compact JSON bytes."""
    if msgspec is not None:
        return msgspec.json.Encoder().encode
    dumps = json.JSONEncoder(separators=(",", ":")).encode
    return lambda value: dumps(value).encode()


def _check_object(loads: Callable[[bytes], Any]) -> Decoder:
    def decode(raw: bytes) -> dict[str, Any]:
        value = loads(raw)
        if not isinstance(value, dict):
            raise ValueError(f"value is a JSON {type(value).__name__}, not an object")
        return value

    return decode
