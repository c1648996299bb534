"""``cdclake recover``: bring capture back after the replication slot was lost.

A slot is lost when PostgreSQL removed WAL it still needed (``wal_status = lost``, e.g.
``max_slot_wal_keep_size`` exceeded), when it was dropped while Kafka Connect still holds
the connector's offsets, or when those offsets point before the slot's confirmed
position. Debezium cannot resume then: the changes in between are gone.

Recovery, in an order that a crash at any step and a rerun keep correct:

1. stop the connector (or create it STOPPED when it was deleted);
2. write a truncate marker per captured table, at T = ``pg_current_wal_lsn()``
   (``resnapshot.mark_resnapshot``: the flat event ``TruncateAsChange`` makes of a real
   TRUNCATE, in every partition): silver then drops every row and change older than T,
   i.e. everything it held before the gap;
3. reset the connector's stored offsets (``DELETE /connectors/{name}/offsets``);
4. drop the lost slot;
5. resume: with no offsets Debezium creates a new slot and takes an initial snapshot,
   whose events all carry an LSN at or after T, then streams on.

Bronze then silver after it leave silver equal to the source: rows deleted in the gap are
older than T and go, updated rows take the snapshot's values, inserted rows appear.
A second run finds the slot healthy and does nothing.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg

from cdclake.broker import clients
from cdclake.capture import service
from cdclake.capture.connector import connector_config, table_topics
from cdclake.capture.exceptions import CaptureError
from cdclake.capture.resnapshot import mark_resnapshot
from cdclake.config import Pipeline
from cdclake.source import connection
from cdclake.stack.connect import OFFSET_TOPIC

STATE_TIMEOUT = 60.0
SNAPSHOT_TIMEOUT = 600.0
@dataclass
class Diagnosis:
    """What ``recover`` found: whether the slot is lost, and why."""

    slot: dict[str, Any]
    connector_state: str
    stored_lsn: int | None
    reasons: list[str] = field(default_factory=list)

    @property
    def lost(self) -> bool:
        return bool(self.reasons)


def diagnose(pipeline: Pipeline) -> Diagnosis:
    """Read the slot, the connector and its stored offsets; name every sign of a lost slot."""
    slot = service.slot_status(pipeline)
    if "error" in slot:
        raise CaptureError(f"cannot read replication slot {slot['name']} ({slot['error']}); "
                           "check that the source PostgreSQL is up (`cdclake status`)")
    status = service.client(pipeline).status(pipeline.connect.connector_name)
    state = status["connector"]["state"] if status else "absent"
    found = Diagnosis(slot, state, stored_lsn(pipeline))
    found.reasons = _reasons(found)
    return found


def _reasons(found: Diagnosis) -> list[str]:
    slot, name = found.slot, found.slot["name"]
    if not slot["exists"]:
        if found.stored_lsn is not None:
            return [f"slot {name} is missing while Connect holds offsets at LSN {lsn_text(found.stored_lsn)}"]
        return [f"slot {name} is missing and connector is {found.connector_state}"] \
            if found.connector_state != "absent" else []
    if slot["wal_status"] == "lost":
        return [f"slot {name} has wal_status lost (WAL it needed was removed)"]
    confirmed = lsn_int(slot["confirmed_flush_lsn"])
    if found.stored_lsn is not None and confirmed is not None and found.stored_lsn < confirmed:
        return [f"stored offsets at LSN {lsn_text(found.stored_lsn)} are older than slot {name}'s "
                f"confirmed position {slot['confirmed_flush_lsn']}"]
    return []


def stored_lsn(pipeline: Pipeline, timeout: float = 30) -> int | None:
    """The newest LSN in the connector's stored offsets (Connect's offsets topic), or None."""
    offset = _stored_offset(pipeline.kafka.bootstrap, pipeline.connect.connector_name, timeout)
    if not offset:
        return None
    positions = [offset[k] for k in ("lsn", "lsn_proc", "lsn_commit") if isinstance(offset.get(k), int)]
    return max(positions) if positions else None


def _stored_offset(bootstrap: str, connector: str, timeout: float) -> dict | None:
    """The latest value stored for ``connector`` in the offsets topic (None after a reset)."""
    from confluent_kafka import TopicPartition

    consumer = clients.consumer(bootstrap, f"cdclake-recover-{time.time_ns()}")
    try:
        meta = consumer.list_topics(OFFSET_TOPIC, timeout=timeout).topics.get(OFFSET_TOPIC)
        if meta is None or meta.error is not None:
            return None
        ends = {p: consumer.get_watermark_offsets(TopicPartition(OFFSET_TOPIC, p), timeout=timeout)
                for p in meta.partitions}
        wanted = [TopicPartition(OFFSET_TOPIC, p, low) for p, (low, high) in ends.items() if high > low]
        return _scan_offsets(consumer, wanted, ends, connector, time.monotonic() + timeout)
    finally:
        consumer.close()


def _scan_offsets(consumer, wanted, ends: dict, connector: str, deadline: float) -> dict | None:
    latest, pending = None, {tp.partition for tp in wanted}
    if wanted:
        consumer.assign(wanted)
    while pending and time.monotonic() < deadline:
        for msg in consumer.consume(500, 0.5):
            if msg.error():
                continue
            key = json.loads(msg.key()) if msg.key() else None
            if isinstance(key, list) and key and key[0] == connector:
                latest = json.loads(msg.value()) if msg.value() else None
            if msg.offset() >= ends[msg.partition()][1] - 1:
                pending.discard(msg.partition())
    if pending:
        raise CaptureError(f"could not read Connect's offsets topic {OFFSET_TOPIC} to its end; "
                           "is Kafka up? (`cdclake status`)")
    return latest


def recover(pipeline: Pipeline, dry_run: bool = False, progress=print) -> dict[str, Any]:
    """Diagnose the slot; when it is lost, reset offsets, write truncates, re-snapshot.

    Returns:
        ``{"lost": bool, "reasons": [...], "truncate_lsn": ..., "tables": [...], "recovered": bool}``.
    Raises:
        CaptureError: when Connect, Kafka or PostgreSQL refuse a step (the message names it).
    """
    found = diagnose(pipeline)
    result = {"connector": pipeline.connect.connector_name, "slot": found.slot["name"], "lost": found.lost,
              "reasons": found.reasons, "tables": list(pipeline.source.tables), "recovered": False}
    for reason in found.reasons:
        progress(f"lost: {reason}")
    if not found.lost or dry_run:
        return result
    stop_connector(pipeline, found.connector_state, progress)
    result["truncate_lsn"] = write_truncates(pipeline, progress)
    reset_offsets(pipeline, progress)
    drop_slot(pipeline, progress)
    result["snapshot_lsn"] = resnapshot(pipeline, progress)
    result["recovered"] = True
    return result


def stop_connector(pipeline: Pipeline, state: str, progress=print) -> None:
    """Stop the connector, or create it STOPPED (same config) when it was deleted."""
    connect, name = service.client(pipeline), pipeline.connect.connector_name
    if state == "absent":
        connect.request("POST", "/connectors", {"name": name, "config": connector_config(pipeline),
                                                "initial_state": "STOPPED"})
        progress(f"created connector {name} STOPPED (its stored offsets were still there)")
    else:
        connect.request("PUT", f"/connectors/{name}/stop")
        progress(f"stopping connector {name}")
    _wait_state(pipeline, "STOPPED")


def _wait_state(pipeline: Pipeline, wanted: str, timeout: float = STATE_TIMEOUT) -> None:
    connect, name = service.client(pipeline), pipeline.connect.connector_name
    deadline, state = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        status = connect.status(name) or {}
        state = status.get("connector", {}).get("state")
        if state == wanted and not status.get("tasks"):
            return
        time.sleep(0.5)
    raise CaptureError(f"connector {name} not {wanted} after {timeout:.0f}s (state {state}); "
                       "see the Connect log (.cdclake/logs/connect.log), then rerun `cdclake recover`")


def write_truncates(pipeline: Pipeline, progress=print) -> int:
    """A truncate marker per captured table at the current WAL position (resnapshot.py); returns it."""
    topics = table_topics(pipeline)
    service.ensure_table_topics(pipeline, progress)
    lsn = mark_resnapshot(pipeline, list(topics))
    progress(f"wrote TRUNCATE markers at LSN {lsn_text(lsn)} to {', '.join(topics.values())}")
    return lsn


def reset_offsets(pipeline: Pipeline, progress=print) -> None:
    name = pipeline.connect.connector_name
    service.client(pipeline).request("DELETE", f"/connectors/{name}/offsets")
    progress(f"reset the stored offsets of connector {name}")


def drop_slot(pipeline: Pipeline, progress=print, timeout: float = 30) -> None:
    """Drop the slot if it exists, ending the backend that still holds it."""
    slot = pipeline.source.slot
    with connection.connect(pipeline, autocommit=True) as conn:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            row = conn.execute("SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s", (slot,)).fetchone()
            if row is None:
                return
            if row[0] is None:
                _drop(conn, slot)
                progress(f"dropped replication slot {slot}")
                return
            conn.execute("SELECT pg_terminate_backend(%s)", (row[0],))
            time.sleep(0.5)
    raise CaptureError(f"replication slot {slot} stays active after {timeout:.0f}s; "
                       "stop whatever streams from it, then rerun `cdclake recover`")


def _drop(conn: psycopg.Connection, slot: str) -> None:
    try:
        conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
    except psycopg.errors.UndefinedObject:
        pass


def resnapshot(pipeline: Pipeline, progress=print, timeout: float = SNAPSHOT_TIMEOUT) -> str:
    """Resume the reset connector (new slot, initial snapshot); wait until it streams past now."""
    name = pipeline.connect.connector_name
    service.client(pipeline).resume(name)
    progress(f"resumed connector {name}: new slot {pipeline.source.slot}, initial snapshot")
    service.wait_running(pipeline)
    _wait_slot(pipeline, timeout)
    lsn = service.current_lsn(pipeline)
    service.wait_caught_up(pipeline, lsn, timeout)
    progress(f"snapshot done; streaming past LSN {lsn}: run bronze then silver")
    return lsn


def _wait_slot(pipeline: Pipeline, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not service.slot_status(pipeline).get("exists"):
        if time.monotonic() > deadline:
            raise CaptureError(f"the connector did not create slot {pipeline.source.slot} in {timeout:.0f}s; "
                               "see `cdclake connector status`")
        time.sleep(0.5)


def lsn_int(text: str | None) -> int | None:
    """``0/16B3748`` -> 23803720 (Debezium's ``__lsn``)."""
    if not text:
        return None
    high, low = text.split("/")
    return (int(high, 16) << 32) + int(low, 16)


def lsn_text(value: int) -> str:
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"
