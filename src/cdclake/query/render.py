"""``--output text|json|csv`` for query results (text is an aligned table)."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from cdclake.query.engines import QueryResult


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes | bytearray):
        return value.hex()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def as_json(result: QueryResult) -> str:
    """One JSON array of row objects (decimals as exact strings)."""
    return json.dumps([{k: _plain(v) for k, v in row.items()} for row in result.records()],
                      ensure_ascii=False, default=str)


def as_csv(result: QueryResult) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(result.columns)
    writer.writerows([_plain(v) for v in row] for row in result.rows)
    return out.getvalue().rstrip("\n")


def as_table(result: QueryResult, max_width: int = 40) -> str:
    def cell(value: Any) -> str:
        text = "NULL" if value is None else str(_plain(value))
        return text if len(text) <= max_width else text[: max_width - 1] + "…"

    cells = [[cell(v) for v in row] for row in result.rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(result.columns)]
    line = lambda values: " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True))  # noqa: E731
    rule = "-+-".join("-" * w for w in widths)
    footer = f"({len(result.rows)} row{'s' if len(result.rows) != 1 else ''})"
    return "\n".join([line(result.columns), rule, *map(line, cells), footer])


RENDERERS = {"text": as_table, "json": as_json, "csv": as_csv}
