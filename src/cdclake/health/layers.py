"""Where each captured table stands in every layer: Kafka, bronze, silver, gold.

Read from the positions the layers commit with their data (DESIGN §4), through pyiceberg,
so it needs no JVM:

- bronze's Kafka offsets (snapshot summary ``cdclake.bronze.kafka-offsets``) against the
  topic's end offsets: the lag in events;
- silver's watermark (``cdclake.silver.bronze-snapshot-id``): the bronze snapshot it has
  merged; gold's input snapshots (``cdclake.gold.input-snapshots``);
- the newest source commit visible in a layer, from the ``source_ts`` upper bounds of
  bronze's data files (at the current snapshot for bronze, at silver's watermark for
  silver, through the silver inputs for gold): no table scan.

``age_seconds`` is ``now - newest source commit``: it grows on an idle database. The
objective is judged on ``freshness_seconds``, which is 0 when the layer holds everything
its upstream has (nothing pending) and the age otherwise: an idle pipeline stays
fresh, a stalled one does not, and the value never freezes at its last reading.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from cdclake.config import Pipeline
from cdclake.lakehouse.configuration import (BRONZE_OFFSETS_KEY, GOLD_INPUTS_KEY, SILVER_WATERMARK_KEY,
                                             LakehousePlan, TableRef, plan_from_pipeline)

LAYERS = ("bronze", "silver", "gold")


@dataclass
class LayerState:
    """One layer of one table. Times are epoch seconds; None where there is no data yet."""

    exists: bool = False
    snapshot_id: int | None = None
    last_commit: float | None = None
    newest_source_ts: float | None = None
    caught_up: bool = False
    age_seconds: float | None = None
    freshness_seconds: float | None = None
    objective: str = "unknown"
    extra: dict[str, Any] = field(default_factory=dict)


def committed_position(offsets: dict[int, int]) -> dict[int, int]:
    """Bronze stores the last offset it consumed per partition; the next one to read is +1."""
    return {p: o + 1 for p, o in offsets.items()}


def lag_events(end: dict[int, int], position: dict[int, int]) -> int:
    """Events in the topic that bronze has not committed (partitions it never read count whole)."""
    return sum(max(high - position.get(p, 0), 0) for p, high in end.items())


def freshness(newest: float | None, caught_up: bool, now: float) -> tuple[float | None, float | None]:
    """(age, freshness) in seconds: freshness is 0 when nothing is pending upstream."""
    if newest is None:
        return None, (0.0 if caught_up else None)
    age = max(now - newest, 0.0)
    return age, 0.0 if caught_up else age


def summary_value(table: Any, key: str) -> tuple[int | None, str | None]:
    """(snapshot id, value) of the newest snapshot whose summary has ``key`` (pyiceberg table)."""
    snapshot = table.current_snapshot()
    while snapshot is not None:
        value = (snapshot.summary.additional_properties if snapshot.summary else {}).get(key)
        if value is not None:
            return snapshot.snapshot_id, value
        snapshot = table.snapshot_by_id(snapshot.parent_snapshot_id) if snapshot.parent_snapshot_id else None
    return None, None


def newest_source_ts(bronze: Any, snapshot_id: int | None) -> float | None:
    """Upper bound of ``source_ts`` over bronze's data files at a snapshot, epoch seconds."""
    if snapshot_id is None:
        return None
    files = bronze.inspect.files(snapshot_id=snapshot_id)
    if files.num_rows == 0:
        return None
    bounds = [row["source_ts"]["upper_bound"] for row in files.column("readable_metrics").to_pylist()
              if row and row.get("source_ts") and row["source_ts"]["upper_bound"] is not None]
    return max(bounds).timestamp() if bounds else None


def _commit_time(table: Any) -> tuple[int | None, float | None]:
    snapshot = table.current_snapshot()
    return (snapshot.snapshot_id, snapshot.timestamp_ms / 1000) if snapshot else (None, None)


class LakeReader:
    """Loads each table once per report, through the pyiceberg catalog."""

    def __init__(self, plan: LakehousePlan) -> None:
        from cdclake.lakehouse.catalog import pyiceberg_catalog

        self.plan = plan
        self.catalog = pyiceberg_catalog(plan)
        self._tables: dict[str, Any] = {}

    def table(self, name: str) -> Any | None:
        """``lake.cdc_db.bronze_users`` loaded, or None when it does not exist yet."""
        from pyiceberg.exceptions import NoSuchTableError

        if name not in self._tables:
            try:
                self._tables[name] = self.catalog.load_table(name.split(".", 1)[1])
            except NoSuchTableError:
                self._tables[name] = None
        return self._tables[name]


def bronze_state(reader: LakeReader, ref: TableRef, end: dict[int, int], now: float) -> LayerState:
    table = reader.table(ref.bronze)
    if table is None:
        return LayerState(caught_up=not any(end.values()), extra={"lag_events": lag_events(end, {})})
    snapshot_id, last_commit = _commit_time(table)
    _, raw = summary_value(table, BRONZE_OFFSETS_KEY)
    position = committed_position({int(p): int(o) for p, o in json.loads(raw).items()} if raw else {})
    lag = lag_events(end, position)
    newest = newest_source_ts(table, snapshot_id)
    age, fresh = freshness(newest, lag == 0, now)
    return LayerState(True, snapshot_id, last_commit, newest, lag == 0, age, fresh,
                      extra={"position": sum(position.values()), "lag_events": lag})


def silver_state(reader: LakeReader, ref: TableRef, bronze: LayerState, now: float) -> LayerState:
    table = reader.table(ref.silver)
    if table is None:
        return LayerState(caught_up=bronze.snapshot_id is None)
    snapshot_id, last_commit = _commit_time(table)
    _, raw = summary_value(table, SILVER_WATERMARK_KEY)
    watermark = int(raw) if raw else None
    newest = newest_source_ts(reader.table(ref.bronze), watermark) if watermark else None
    caught_up = bronze.caught_up and watermark == bronze.snapshot_id
    age, fresh = freshness(newest, caught_up, now)
    return LayerState(True, snapshot_id, last_commit, newest, caught_up, age, fresh,
                      extra={"watermark": watermark})


def gold_states(reader: LakeReader, silver: dict[str, LayerState], now: float) -> dict[str, LayerState]:
    """Per gold model: fresh as its stalest input, at the silver snapshots it was built from."""
    from cdclake.lakehouse.gold import load_models

    out = {}
    for model in load_models(reader.plan):
        table = reader.table(model.table(reader.plan))
        if table is None:
            out[model.name] = LayerState()
            continue
        snapshot_id, last_commit = _commit_time(table)
        _, raw = summary_value(table, GOLD_INPUTS_KEY)
        inputs = json.loads(raw) if raw else {}
        newest = [_silver_source_ts(reader, name, sid) for name, sid in inputs.items()]
        caught_up = all(silver.get(n) and silver[n].caught_up and silver[n].snapshot_id == s
                        for n, s in inputs.items())
        oldest = min((t for t in newest if t is not None), default=None)
        age, fresh = freshness(oldest, caught_up, now)
        out[model.name] = LayerState(True, snapshot_id, last_commit, oldest, caught_up, age, fresh,
                                     extra={"inputs": inputs})
    return out


def _silver_source_ts(reader: LakeReader, silver_name: str, snapshot_id: int | None) -> float | None:
    """Newest source commit in silver at one of its snapshots: via that snapshot's watermark."""
    from cdclake.lakehouse.exceptions import LakehouseError

    table = reader.table(silver_name)
    if table is None or snapshot_id is None:
        return None
    try:
        bronze = reader.table(reader.plan.table(silver_name).bronze)
    except LakehouseError:  # an input that is no longer a configured table
        return None
    summary = table.snapshot_by_id(snapshot_id)
    watermark = (summary.summary.additional_properties.get(SILVER_WATERMARK_KEY)
                 if summary is not None and summary.summary else None)
    return newest_source_ts(bronze, int(watermark)) if watermark and bronze is not None else None


def layer_report(pipeline: Pipeline, now: float | None = None) -> dict[str, Any]:
    """Every table's layers, gold models, and the worst objective reached (``ok``/``warn``/``error``).

    Returns:
        ``{"tables": {source: {"topic", "end_offset", "bronze": {...}, "silver": {...}}},
        "gold": {model: {...}}, "objective": worst, "state": "up"|"down", "error"?}``.
    """
    from cdclake.broker.topics import end_offsets

    now = time.time() if now is None else now
    plan = plan_from_pipeline(pipeline)
    try:
        reader = LakeReader(plan)
        ends = end_offsets(plan.bootstrap, [ref.topic for ref in plan.tables])
    except Exception as exc:  # noqa: BLE001 - status reports a broken dependency, never crashes
        return {"state": "down", "error": str(exc).splitlines()[0], "tables": {}, "gold": {}, "objective": "error"}
    tables, silver = {}, {}
    for ref in plan.tables:
        end = ends.get(ref.topic, {})
        bronze = bronze_state(reader, ref, end, now)
        silver[ref.silver] = silver_state(reader, ref, bronze, now)
        objective = pipeline.monitoring.objective(ref.source)
        for state in (bronze, silver[ref.silver]):
            state.objective = objective.evaluate(state.freshness_seconds)
        tables[ref.source] = {"topic": ref.topic, "end_offset": sum(end.values()),
                              "bronze": _flat(bronze), "silver": _flat(silver[ref.silver])}
    gold = gold_states(reader, silver, now)
    for state in gold.values():
        state.objective = pipeline.monitoring.freshness.evaluate(state.freshness_seconds)
    report = {"state": "up", "tables": tables, "gold": {n: _flat(s) for n, s in gold.items()}}
    report["objective"] = worst_objective(report)
    return report


def _flat(state: LayerState) -> dict[str, Any]:
    data = asdict(state)
    return {**{k: v for k, v in data.items() if k != "extra"}, **data["extra"]}


def worst_objective(report: dict[str, Any]) -> str:
    """``error`` > ``warn`` > ``ok``; layers with no data yet (``unknown``) do not count."""
    seen = {layer["objective"] for entry in report["tables"].values() for layer in (entry["bronze"], entry["silver"])}
    seen |= {model["objective"] for model in report["gold"].values()}
    return next((level for level in ("error", "warn") if level in seen), "ok")


def full_status(pipeline: Pipeline, controller: bool = True) -> dict[str, Any]:
    """``cdclake status``: every component (:func:`stack_status`), every layer, running endpoints."""
    from cdclake.health.checks import stack_status
    from cdclake.monitoring import runs
    from cdclake.monitoring.endpoints import running_endpoints

    status = stack_status(pipeline, controller)
    status["layers"] = layer_report(pipeline)
    status["runs"] = runs.tally(pipeline.state_dir)
    status["endpoints"] = running_endpoints(pipeline.state_dir)
    return status


def render_layers(status: dict[str, Any]) -> str:
    """One line per table and layer: position, lag, last commit, freshness and objective."""
    layers = status["layers"]
    if layers["state"] == "down":
        return f"lakehouse  down  {layers['error']}"
    lines = [f"{'table':<28} {'layer':<7} {'lag':>8} {'last commit':>20} {'fresh(s)':>9} objective"]
    for table, entry in layers["tables"].items():
        lines.append(f"{table:<28} {'kafka':<7} {'':>8} {'end offset ' + str(entry['end_offset']):>20}")
        for layer in ("bronze", "silver"):
            lines.append(_layer_line(table, layer, entry[layer], entry[layer].get("lag_events", "")))
    for model, state in layers["gold"].items():
        lines.append(_layer_line(model, "gold", state, ""))
    lines += [_run_line(job, entry["last"]) for job, entry in status.get("runs", {}).items()]
    lines += [f"{name}: {url}" for name, url in status.get("endpoints", {}).items()]
    return "\n".join(lines)


def _run_line(job: str, last: dict[str, Any]) -> str:
    """``last silver run: FAILED at 10:02:03 UTC after 4.1s (public.orders: ...)``."""
    at = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(last["started"]))
    outcome = "ok" if last["outcome"] == "ok" else "FAILED"
    why = "; ".join(f"{table}: {reason}" for table, reason in last["failures"].items())
    return f"last {job} run: {outcome} at {at} UTC after {last['seconds']:.1f}s" + (f" ({why})" if why else "")


def _layer_line(name: str, layer: str, state: dict[str, Any], lag: Any) -> str:
    commit = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(state["last_commit"])) if state["last_commit"] else "-"
    fresh = f"{state['freshness_seconds']:.0f}" if state["freshness_seconds"] is not None else "-"
    return f"{name:<28} {layer:<7} {lag!s:>8} {commit:>20} {fresh:>9} {state['objective']}"
