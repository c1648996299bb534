"""Pipeline-level health checks: pass quietly with a summary, or raise a clear error.

The Airflow DAG runs these before the lakehouse jobs (``check_kafka_health``,
``check_debezium``, ``check_replication_slot``), in-process: no shell scripts, no
``curl | grep``. Each returns a JSON-ready summary for the task log, or raises a
:class:`HealthCheckError` whose message names what is wrong and the fix.

Example:
    >>> from cdclake.config import load
    >>> pipeline = load("pipeline.yaml")
    >>> check_replication_slot(pipeline, max_lag_bytes=1 << 30)  # doctest: +SKIP
    {'slot': 'debezium_slot', 'active': True, 'wal_status': 'reserved', 'lag_bytes': 5240, ...}
"""

from __future__ import annotations

from typing import Any

from cdclake.capture.exceptions import slot_lost_hint
from cdclake.config import Pipeline
from cdclake.errors import CdclakeError, ExitCode

METADATA_TIMEOUT = 10.0


class HealthCheckError(CdclakeError):
    """A component of the pipeline is not healthy enough for the jobs to run.

    Attributes:
        component: ``kafka``, ``connector`` or ``slot``.
    """

    exit_code = ExitCode.HEALTH

    def __init__(self, message: str, component: str, **details: Any) -> None:
        super().__init__(message)
        self.component = component
        self.details = details


class KafkaUnhealthyError(HealthCheckError):
    """The brokers cannot be reached, or partitions are under-replicated."""


class ConnectorNotRunningError(HealthCheckError):
    """The Debezium connector is absent, or it or one of its tasks is not RUNNING."""


class ReplicationSlotError(HealthCheckError):
    """The replication slot is missing, inactive, lost, or lags over the threshold.

    Attributes:
        slot: the slot's name.
        lag_bytes: the slot's lag behind the current WAL position (None if unknown).
    """

    def __init__(self, message: str, slot: str, lag_bytes: int | None = None) -> None:
        super().__init__(message, "slot", slot=slot, lag_bytes=lag_bytes)
        self.slot = slot
        self.lag_bytes = lag_bytes


def check_kafka(pipeline: Pipeline, timeout: float = METADATA_TIMEOUT) -> dict[str, Any]:
    """The brokers answer a metadata request and no partition is under-replicated.

    Raises:
        KafkaUnhealthyError: no metadata within ``timeout``, or under-replicated partitions.
    """
    from confluent_kafka import KafkaException

    from cdclake.broker.clients import admin

    bootstrap = pipeline.kafka.bootstrap
    try:
        metadata = admin(bootstrap).list_topics(timeout=timeout)
    except KafkaException as exc:
        raise KafkaUnhealthyError(
            f"Kafka at {bootstrap} gave no metadata within {timeout:.0f}s ({_first_line(exc)}); "
            "start it (`cdclake up`) or fix kafka.bootstrap_servers", "kafka", bootstrap=bootstrap) from exc
    under = sorted(f"{t.topic}[{p.id}]" for t in metadata.topics.values() for p in t.partitions.values()
                   if len(p.isrs) < len(p.replicas))
    if under:
        raise KafkaUnhealthyError(
            f"{len(under)} under-replicated partition(s) on Kafka at {bootstrap}: {', '.join(under[:10])}; "
            "a broker is down or lagging: restart it and wait for its replicas to catch up",
            "kafka", under_replicated=under)
    return {"bootstrap_servers": bootstrap, "cluster_id": metadata.cluster_id,
            "brokers": len(metadata.brokers), "topics": len(metadata.topics), "under_replicated_partitions": 0}


def check_connector(pipeline: Pipeline) -> dict[str, Any]:
    """The Debezium connector and every one of its tasks are RUNNING.

    Raises:
        ConnectorNotRunningError: Connect unreachable, connector absent, or a state not RUNNING.
    """
    from cdclake.capture.exceptions import CaptureError
    from cdclake.capture.service import client

    name, url = pipeline.connect.connector_name, pipeline.connect.endpoint
    try:
        status = client(pipeline).status(name)
    except CaptureError as exc:
        raise ConnectorNotRunningError(str(exc), "connector", connector=name) from exc
    if status is None:
        raise ConnectorNotRunningError(
            f"connector {name} does not exist on Kafka Connect at {url}; create it with `cdclake connector apply`",
            "connector", connector=name)
    states = {"connector": status["connector"]["state"],
              **{f"task {t['id']}": t["state"] for t in status.get("tasks", [])}}
    bad = {part: state for part, state in states.items() if state != "RUNNING"}
    if bad or len(states) == 1:
        raise ConnectorNotRunningError(
            f"connector {name} is not fully RUNNING ({_states(states, len(states) == 1)}); "
            f"{_connector_fix(bad, status)}", "connector", connector=name, states=states)
    return {"connector": name, "url": url, "states": states}


def _states(states: dict[str, str], no_tasks: bool) -> str:
    text = ", ".join(f"{part} {state}" for part, state in states.items())
    return text + (", no tasks" if no_tasks else "")


def _connector_fix(bad: dict[str, str], status: dict) -> str:
    if "PAUSED" in bad.values() or "STOPPED" in bad.values():
        return "resume it with `cdclake connector resume`"
    traces = [t.get("trace", "") for t in [status["connector"], *status.get("tasks", [])] if t.get("trace")]
    if traces:
        causes = [line.strip() for line in traces[0].splitlines() if line.strip().startswith("Caused by:")]
        cause = (causes[-1] if causes else traces[0].strip().splitlines()[0])[:300]
        return f"cause: {cause}; " + (slot_lost_hint(traces[0]) or "fix it, then `cdclake connector restart`")
    return "wait for the rebalance to settle, or see `cdclake connector status` and the Connect log"


def check_replication_slot(pipeline: Pipeline, max_lag_bytes: int) -> dict[str, Any]:
    """The slot exists, is active, its WAL is not lost, and its lag is at most ``max_lag_bytes``.

    Lag is ``pg_current_wal_lsn() - confirmed_flush_lsn``: WAL the connector has not yet
    confirmed, which PostgreSQL must keep.

    Raises:
        ReplicationSlotError: naming the slot and, for a lag over the threshold, the lag.
    """
    from cdclake.capture.service import slot_status

    status = slot_status(pipeline)
    slot = pipeline.source.slot
    if "error" in status:
        raise ReplicationSlotError(f"cannot read replication slot {slot} ({status['error']}); "
                                   "check that the source PostgreSQL is up (`cdclake status`)", slot)
    if not status["exists"]:
        raise ReplicationSlotError(f"replication slot {slot} does not exist; the connector creates it: "
                                   "`cdclake connector apply`, or `cdclake recover` if it streamed before", slot)
    lag = status["lag_bytes"]
    if status["wal_status"] == "lost":
        raise ReplicationSlotError(
            f"replication slot {slot} has lost WAL it still needed (wal_status lost, lag {human_bytes(lag)}); "
            "changes are missing: run `cdclake recover`", slot, lag)
    if not status["active"]:
        raise ReplicationSlotError(
            f"replication slot {slot} is not active (no connector is streaming from it; lag {human_bytes(lag)}); "
            "check the connector's tasks (`cdclake connector status`) and restart it", slot, lag)
    if lag is not None and lag > max_lag_bytes:
        raise ReplicationSlotError(
            f"replication slot {slot} lags {human_bytes(lag)} ({lag} bytes) behind the current WAL position, "
            f"over the threshold of {human_bytes(max_lag_bytes)} (airflow.max_slot_lag_bytes); "
            "the connector is falling behind: check its tasks and Kafka, or raise the threshold", slot, lag)
    return {"slot": slot, "active": True, "wal_status": status["wal_status"], "lag_bytes": lag,
            "retained_wal_bytes": status["retained_wal_bytes"], "max_lag_bytes": max_lag_bytes}


def human_bytes(count: int | None) -> str:
    """``1.5 MiB`` for 1572864; ``unknown`` for None."""
    if count is None:
        return "unknown"
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
