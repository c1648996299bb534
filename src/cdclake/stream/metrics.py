"""Processor metrics: written by each running processor, read by ``cdclake status``.

Each process writes ``<state dir>/stream/<instance>.json`` every ``metrics_interval_ms``
(atomically): per input topic and step the counts in, out, filtered and failed, table
sizes and the consumer lag of its partitions. Reading them needs no Kafka round trip, so
``cdclake status`` stays fast and never fails because the processor is not running.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

STALE_AFTER_INTERVALS = 3


def metrics_dir(state_dir: Path) -> Path:
    return state_dir / "stream"


def write(path: Path, data: dict[str, Any]) -> None:
    """Replace the metrics file atomically (a reader never sees half a document)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)


def read_all(directory: Path) -> list[dict[str, Any]]:
    """Every instance's last metrics document (unreadable files are skipped)."""
    out = []
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        try:
            out.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return out


def is_live(doc: dict[str, Any], now: float | None = None) -> bool:
    """The instance's process exists and wrote its metrics recently."""
    now = time.time() if now is None else now
    fresh = now - doc.get("updated_at", 0) < STALE_AFTER_INTERVALS * doc.get("interval_s", 2) + 1
    return doc.get("state") == "running" and fresh and _pid_alive(doc.get("pid"))


def summarize(enabled: bool, docs: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``stream`` entry of ``cdclake status``.

    ``state`` is ``off`` (layer disabled, nothing running), ``down`` (enabled, no live
    process) or ``up``; ``steps`` sums the counters over the live processes.
    """
    live = [doc for doc in docs if is_live(doc)]
    out: dict[str, Any] = {"enabled": enabled}
    if not live:
        out["state"] = "down" if enabled else "off"
        if enabled:
            out["error"] = "no stream processor running; start one with `cdclake stream`"
        return out
    first = live[0]
    out.update(state="up", group_id=first.get("group_id"), guarantee=first.get("guarantee"),
               instances=sorted(f"{d['instance']} (pid {d['pid']}, {len(d.get('assigned', []))} partitions)"
                                for d in live),
               consumer_lag=sum(d.get("lag", {}).get("total", 0) for d in live),
               tables=_sum_tables(live), steps=_sum_steps(live))
    return out


def _sum_steps(docs: list[dict[str, Any]]) -> list[str]:
    totals: dict[tuple[str, str], dict[str, int]] = {}
    for doc in docs:
        for topic, rows in doc.get("steps", {}).items():
            for row in rows:
                slot = totals.setdefault((topic, row["step"]), {"in": 0, "out": 0, "filtered": 0, "failed": 0})
                for name in slot:
                    slot[name] += row.get(name, 0)
    return [f"{topic} {step}: in={c['in']} out={c['out']} filtered={c['filtered']} failed={c['failed']}"
            for (topic, step), c in totals.items()]


def _sum_tables(docs: list[dict[str, Any]]) -> list[str]:
    # Every process holds the whole table: report the largest view rather than a sum.
    sizes: dict[str, int] = {}
    for doc in docs:
        for name, rows in doc.get("tables", {}).items():
            sizes[name] = max(sizes.get(name, 0), rows)
    return [f"{name}: {rows} rows" for name, rows in sizes.items()]


def _pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stream_status(pipeline: Any) -> dict[str, Any]:
    """``cdclake status``'s view of the stream layer; fast, and never raises for a stopped processor.

    Args:
        pipeline: the loaded ``cdclake.config.Pipeline``.
    """
    try:
        docs = read_all(metrics_dir(pipeline.state_dir))
    except OSError as exc:
        return {"enabled": pipeline.stream.enabled, "state": "down", "error": str(exc)}
    return summarize(pipeline.stream.enabled, docs)
