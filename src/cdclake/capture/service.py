"""Operations on the capture path: apply the connector, report on it, re-snapshot a table."""

from __future__ import annotations

import time
from typing import Any

import psycopg

from cdclake.broker.topics import end_offsets, ensure_topics
from cdclake.capture.connect_client import ConnectClient
from cdclake.capture.connector import POSTGRES_CONNECTOR, connector_config, table_topics
from cdclake.capture.exceptions import RECOVER_HINT, CaptureError, ConnectError, ConnectorInvalidError, slot_lost_hint
from cdclake.capture.resnapshot import load_keyless, mark_resnapshot, previously_captured, signal_snapshot
from cdclake.capture.snapshot_progress import done_share, min_key, snapshot_state
from cdclake.config import Pipeline
from cdclake.errors import CdclakeError
from cdclake.source import connection
from cdclake.source.prepare import keyless_tables

RUNNING_TIMEOUT = 90.0


def client(pipeline: Pipeline) -> ConnectClient:
    return ConnectClient(pipeline.connect.endpoint)


def apply(pipeline: Pipeline, progress=print, wait: bool = True) -> dict[str, Any]:
    """Create the table topics, validate the connector config, PUT it, wait until RUNNING.

    Idempotent: an unchanged config is not re-sent.
    """
    name = pipeline.connect.connector_name
    keyless = keyless_tables(pipeline)
    created = ensure_table_topics(pipeline, progress, keyless)
    config = connector_config(pipeline)
    connect = client(pipeline)
    errors = connect.validate(POSTGRES_CONNECTOR, config)
    if errors:
        raise ConnectorInvalidError("the connector config was rejected by Kafka Connect:\n  "
                                    + "\n  ".join(errors), errors=errors)
    current = connect.config(name)
    changed = current is None or {k: v for k, v in current.items() if k != "name"} != config
    # A new connector snapshots every table itself; an updated one only streams the tables it
    # gains, so those get a snapshot of their existing rows: incremental by key, blocking without.
    added = [t for t in pipeline.source.tables if t not in previously_captured(current)] if current else []
    parallel = pipeline.connect.initial_load == "parallel"
    # A parallel load reads its snapshot after the connector streams the tables; else Debezium reads them.
    to_load = (added if current else list(pipeline.source.tables)) if parallel else []
    by_debezium = [] if parallel else added
    keyed, unkeyed = [t for t in by_debezium if t not in keyless], [t for t in by_debezium if t in keyless]
    # Marked before the connector streams them: every change it then streams is past the mark.
    marked = mark_resnapshot(pipeline, keyed) if keyed else None
    if changed:
        connect.put_config(name, config)
        progress(f"{'created' if current is None else 'updated'} connector {name}")
    else:
        progress(f"connector {name} unchanged")
    if wait or added:  # a snapshot signal must reach the tasks that capture the new tables
        wait_reconfigured(pipeline, config["table.include.list"])
        state = wait_running(pipeline)
    else:
        state = connect.status(name)
    snapshots = load_keyless(pipeline, unkeyed, progress) if unkeyed else {}
    snapshots.update(snapshot_added(pipeline, keyed, marked, progress))
    snapshots.update(load_in_parallel(pipeline, to_load, keyless, progress) if to_load else {})
    return {"connector": name, "changed": changed, "topics_created": created, "status": state,
            "snapshots": snapshots}


def ensure_table_topics(pipeline: Pipeline, progress=print, keyless: list[str] | None = None) -> list[str]:
    """Create the missing table topics with ``kafka.partitions`` each, but one for a keyless
    table (``keyless``, read from the source when None): its one partition is its change
    order, which silver needs (lakehouse/multiset.py)."""
    kafka = pipeline.kafka
    keyless = set(keyless_tables(pipeline) if keyless is None else keyless)
    topics = table_topics(pipeline)
    created = []
    for partitions, keyless_only in ((kafka.partitions, False), (1, True)):
        names = [topic for table, topic in topics.items() if (table in keyless) == keyless_only]
        for topic in ensure_topics(kafka.bootstrap, names, partitions, kafka.replication_factor) if names else []:
            progress(f"created topic {topic} ({partitions} partition(s), RF {kafka.replication_factor})")
            created.append(topic)
    return created


def snapshot_added(pipeline: Pipeline, tables: list[str], lsn: int | None, progress=print) -> dict[str, str]:
    """Incremental snapshots of newly captured tables, after their re-snapshot marker at ``lsn``
    (resnapshot.py)."""
    if not tables:
        return {}
    signals = {table: signal_snapshot(pipeline, [table], "incremental") for table in tables}
    progress(f"snapshotting the existing rows of {', '.join(tables)} (incremental, from LSN {lsn}; "
             "streaming goes on)")
    return signals


def load_in_parallel(pipeline: Pipeline, tables: list[str], keyless: list[str], progress=print) -> dict[str, str]:
    """The tables' existing rows, loaded in parallel straight into bronze (lakehouse/initial_load.py)
    once the connector streams them; a table it cannot load gets Debezium's snapshot instead."""
    from cdclake.lakehouse import initial_load

    loaded, refused = initial_load.load_tables(pipeline, [t for t in tables if t not in keyless], progress)
    for table, reason in refused.items():
        progress(f"{table}: no parallel load, {reason}; Debezium's incremental snapshot reads it")
    fallback = [t for t in tables if str(t) in refused]
    result = {table: f"parallel load: {rows} rows" for table, rows in loaded.items()}
    unkeyed = [t for t in tables if t in keyless]
    result.update(load_keyless(pipeline, unkeyed, progress) if unkeyed else {})
    result.update(snapshot_added(pipeline, fallback, mark_resnapshot(pipeline, fallback), progress) if fallback else {})
    return result


def wait_reconfigured(pipeline: Pipeline, include_list: str, timeout: float = RUNNING_TIMEOUT) -> None:
    """Wait until every task runs with ``include_list``: only then does a removed table stop
    streaming and an added one start."""
    connect, name = client(pipeline), pipeline.connect.connector_name
    deadline = time.monotonic() + timeout
    while True:
        try:
            tasks = connect.task_configs(name)
        except ConnectError:  # 500 "a rebalance is expected" while the worker reassigns: ask again
            tasks = []
        if tasks and all(t.get("table.include.list") == include_list for t in tasks):
            return
        if time.monotonic() > deadline:
            raise CaptureError(f"the tasks of connector {name} still run the previous table list after "
                               f"{timeout:.0f}s; see the Connect log (.cdclake/logs/connect.log)")
        time.sleep(0.5)


def wait_running(pipeline: Pipeline, timeout: float = RUNNING_TIMEOUT) -> dict:
    """Wait until the connector and all its tasks are RUNNING; raise with the trace on FAILED."""
    name = pipeline.connect.connector_name
    connect = client(pipeline)
    deadline = time.monotonic() + timeout
    while True:
        status = connect.status(name) or {}
        states = [status.get("connector", {}).get("state")] + [t.get("state") for t in status.get("tasks", [])]
        failed = [t for t in status.get("tasks", []) if t.get("state") == "FAILED"]
        if status.get("connector", {}).get("state") == "FAILED":
            failed.append(status["connector"])
        if failed:
            trace = failed[0].get("trace", "")
            fix = slot_lost_hint(trace) or "fix the cause, then `cdclake connector restart`"
            raise CaptureError(f"connector {name} failed: {_trace_summary(trace)}; {fix}")
        if status.get("tasks") and all(s == "RUNNING" for s in states):
            return status
        if time.monotonic() > deadline:
            raise CaptureError(f"connector {name} not RUNNING after {timeout:.0f}s (states: {states}); "
                               + (RECOVER_HINT if slot_status(pipeline).get("wal_status") == "lost"
                                  else "see the Connect log (.cdclake/logs/connect.log)"))
        time.sleep(0.5)


def current_lsn(pipeline: Pipeline) -> str:
    with connection.connect(pipeline) as conn:
        return conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0]


def wait_caught_up(pipeline: Pipeline, lsn: str, timeout: float = 120) -> float:
    """Wait until Debezium has confirmed every change up to ``lsn`` (so it is in Kafka)."""
    start = time.monotonic()
    with connection.connect(pipeline, autocommit=True) as conn:
        while True:
            behind = conn.execute("SELECT pg_wal_lsn_diff(%s::pg_lsn, confirmed_flush_lsn) FROM pg_replication_slots "
                                  "WHERE slot_name = %s", (lsn, pipeline.source.slot)).fetchone()
            if behind and behind[0] is not None and behind[0] <= 0:
                return time.monotonic() - start
            if time.monotonic() - start > timeout:
                raise CaptureError(f"Debezium has not confirmed LSN {lsn} after {timeout:.0f}s "
                                   f"(slot {pipeline.source.slot}); see `cdclake connector status`")
            time.sleep(0.5)


def connector_status(pipeline: Pipeline) -> dict[str, Any]:
    """Connector and task states (with a failed task's trace), the slot, topic end offsets."""
    name = pipeline.connect.connector_name
    out: dict[str, Any] = {"name": name}
    try:
        status = client(pipeline).status(name)
    except CaptureError as exc:
        status, out["error"] = None, str(exc)
    if status:
        out["state"] = status["connector"]["state"]
        out["tasks"] = [{"id": t["id"], "state": t["state"], **({"trace": t["trace"]} if t.get("trace") else {})}
                        for t in status.get("tasks", [])]
    elif "error" not in out:
        out["state"] = "absent"
    if status:
        out["snapshot"] = snapshot_status(pipeline)
    out["slot"] = slot_status(pipeline)
    try:
        out["end_offsets"] = {t: sum(p.values()) for t, p in
                              end_offsets(pipeline.kafka.bootstrap, list(table_topics(pipeline).values())).items()}
    except Exception as exc:  # noqa: BLE001 - status must report, not fail
        out["end_offsets"] = {"error": str(exc)}
    return out


def snapshot_status(pipeline: Pipeline) -> dict[str, Any] | str:
    """The running snapshot (capture/snapshot_progress.py): table, key position, done share,
    tables queued; ``"none"`` when none runs."""
    try:
        state = snapshot_state(client(pipeline).offsets(pipeline.connect.connector_name))
    except CaptureError as exc:
        return {"error": str(exc)}
    if state is None:
        return "none"
    if state["kind"] == "incremental":
        tables = {f"{t.schema}.{t.name}": t for t in pipeline.source.tables}
        table = tables.get(state["table"])
        state["table"] = str(table or state["table"])
        state["queued"] = [str(tables.get(t, t)) for t in state["queued"]]
        done = _done(pipeline, table, state) if table is not None and state.get("max_key") is not None else None
        if done:
            state["done"] = done
    return state


def _done(pipeline: Pipeline, table, state: dict[str, Any]) -> str | None:
    try:
        with connection.connect(pipeline) as conn:
            low = min_key(conn, table, pipeline.source.key_columns.get(table))
    except (psycopg.Error, CdclakeError):
        return None
    at_key = state.get("at_key")
    share = done_share(low if at_key is None else at_key, state["max_key"], low)
    return None if share is None else f"{share:.0%}"


SLOT_QUERY = """
SELECT active, wal_status, confirmed_flush_lsn::text,
       pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint AS lag_bytes,
       pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint AS retained_wal_bytes,
       safe_wal_size
FROM pg_replication_slots WHERE slot_name = %s
"""


def slot_status(pipeline: Pipeline, slot: str | None = None) -> dict[str, Any]:
    """The replication slot: active, confirmed-position lag and retained WAL in bytes, wal_status."""
    slot = slot or pipeline.source.slot
    try:
        with connection.connect(pipeline) as conn:
            row = conn.execute(SLOT_QUERY, (slot,)).fetchone()
    except psycopg.Error as exc:
        return {"name": slot, "error": str(exc).strip().splitlines()[0]}
    if row is None:
        return {"name": slot, "exists": False}
    keys = ("active", "wal_status", "confirmed_flush_lsn", "lag_bytes", "retained_wal_bytes", "safe_wal_size")
    return {"name": slot, "exists": True, **dict(zip(keys, row))}


def snapshot_table(pipeline: Pipeline, table: str, progress=print, parallel: bool = False) -> str:
    """Re-snapshot one table; returns the signal's id (or what the parallel load did).

    A keyed table gets an incremental snapshot (streaming goes on; its rows arrive as op
    ``r`` and overwrite silver's), or with ``parallel`` a parallel load straight into bronze
    (lakehouse/initial_load.py). A keyless one is marked and loaded again whole
    (resnapshot.load_keyless), since silver has no key to overwrite by.
    """
    qualified = pipeline.source.resolve_table(table)
    if parallel:
        from cdclake.lakehouse import initial_load

        loaded, refused = initial_load.load_tables(pipeline, [qualified], progress)
        if refused:
            raise CaptureError(f"cannot load {qualified} in parallel: {refused[str(qualified)]}; "
                               f"`cdclake connector snapshot {qualified}` reads it through Debezium")
        return f"parallel load: {loaded[str(qualified)]} rows"
    if qualified in keyless_tables(pipeline):
        return load_keyless(pipeline, [qualified], progress).get(qualified, "none: the table is empty")
    return signal_snapshot(pipeline, [qualified], "incremental")


def _trace_summary(trace: str) -> str:
    lines = [line.strip() for line in trace.splitlines() if line.strip()]
    causes = [line for line in lines if line.startswith("Caused by:")]
    return (causes[-1] if causes else lines[0] if lines else "no trace")[:400]
