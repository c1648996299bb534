"""What ``cdclake status`` exits with, so a cron job or a CI step can rely on it.

One code per finding, the worst wins (docs/operations.md lists them):
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from cdclake.errors import ExitCode


class StatusExit(IntEnum):
    """The area codes of cdclake's one exit-code table (errors.ExitCode), one per finding."""

    OK = ExitCode.OK  # every component up, every layer within its objective (warnings included)
    FRESHNESS_ERROR = ExitCode.HEALTH  # a layer of a table is past monitoring's error_after_seconds
    FAILED = ExitCode.CAPTURE  # the connector or one of its tasks is not RUNNING, or the slot is lost/inactive
    DOWN = ExitCode.STACK  # PostgreSQL, Kafka, Connect, the catalog or an enabled stream processor is down


# Worst first: a component down explains a failed connector, which explains stale layers.
SEVERITY = (StatusExit.DOWN, StatusExit.FAILED, StatusExit.FRESHNESS_ERROR)


def problems(status: dict[str, Any]) -> list[tuple[StatusExit, str]]:
    """Every finding in a ``cdclake status`` document, with the exit code it maps to."""
    found = [(StatusExit.DOWN, f"{name} is down: {part.get('error', 'no answer')}")
             for name, part in status.items() if isinstance(part, dict) and part.get("state") == "down"]
    connector = status.get("connector", {})
    states = [connector.get("state")] + [t["state"] for t in connector.get("tasks", [])]
    if connector.get("state") and any(s != "RUNNING" for s in states):
        found.append((StatusExit.FAILED, f"connector {connector['name']} not RUNNING: {', '.join(map(str, states))}"))
    slot = connector.get("slot", {})
    if slot.get("exists") and (slot.get("wal_status") == "lost" or not slot.get("active")):
        found.append((StatusExit.FAILED, f"slot {slot['name']} is {'lost' if slot.get('wal_status') == 'lost' else 'inactive'}"))
    found += [(StatusExit.FRESHNESS_ERROR, f"{table} {layer} freshness {state['freshness_seconds']:.0f}s past objective")
              for table, layer, state in _layer_states(status.get("layers", {})) if state["objective"] == "error"]
    return found


def _layer_states(layers: dict[str, Any]):
    for table, entry in layers.get("tables", {}).items():
        for layer in ("bronze", "silver"):
            yield table, layer, entry[layer]
    for model, state in layers.get("gold", {}).items():
        yield model, "gold", state


def exit_code(status: dict[str, Any]) -> StatusExit:
    """The worst finding's code, or OK."""
    found = {code for code, _ in problems(status)}
    return next((code for code in SEVERITY if code in found), StatusExit.OK)
