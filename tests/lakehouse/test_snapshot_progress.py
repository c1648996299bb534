"""`status` shows a running snapshot's progress: two tables added to a running connector are
snapshotted one after the other (10-row chunks, so it spans several of Connect's 5 s offset flushes), and status, polled
meanwhile, names the table being read, how far its key has got, and the table queued after it;
when the snapshot ends it says none runs and every row is in the topics."""

from __future__ import annotations

import time

import pytest

from cdclake.capture import service
from cdclake.commands.stack import render_status
from tests.lakehouse.conftest import wait_records
from tests.lakehouse.test_silver_exact import QUIET, new_capture, topic_records, with_tables

pytestmark = pytest.mark.integration
ROWS_B, ROWS_C = 60_000, 3_000


def test_status_reports_the_snapshot_of_added_tables_as_it_goes(stack, cleanup):
    pipeline, plan = new_capture(stack, cleanup, "progress", {
        "a": "id int PRIMARY KEY", "b": "id bigint PRIMARY KEY, v text", "c": "k text, n int, PRIMARY KEY (k, n)"},
        {"a": "SELECT 1", "b": f"SELECT g + 1000, 'b' FROM generate_series(1, {ROWS_B}) g",
         "c": f"SELECT 'k' || (g % 7), g FROM generate_series(1, {ROWS_C}) g"})
    schema = plan.tables[0].schema
    connect = pipeline.connect.model_copy(update={"overrides": {"incremental.snapshot.chunk.size": "10"}})
    pipeline = pipeline.model_copy(update={"connect": connect})
    service.apply(with_tables(pipeline, [f"{schema}.a"]), progress=QUIET)
    assert sorted(service.apply(pipeline, progress=QUIET)["snapshots"]) == [f"{schema}.b", f"{schema}.c"]

    seen = []
    for _ in range(600):
        state = service.connector_status(pipeline)["snapshot"]
        if state == "none" and seen:
            break
        if state != "none" and state not in seen:
            seen.append(state)
        time.sleep(0.5)
    reading_b = [s for s in seen if s.get("table") == f"{schema}.b" and s.get("done")]
    assert reading_b, seen
    keys = [s["at_key"] for s in reading_b if s["at_key"] is not None]
    assert keys == sorted(keys) and all(s["max_key"] == ROWS_B + 1000 for s in reading_b)
    assert any(0 < int(s["done"].rstrip("%")) < 100 for s in reading_b), seen
    assert reading_b[0]["queued"] == [f"{schema}.c"]
    line = render_status({"connector": {"state": "RUNNING", "snapshot": reading_b[0]}})
    assert f"table={schema}.b" in line and f"done={reading_b[0]['done']}" in line
    assert service.connector_status(pipeline)["snapshot"] == "none"
    for table, rows in (("b", ROWS_B), ("c", ROWS_C)):  # every row (at least once), each key among them
        topic = plan.table(table).topic
        count = wait_records(pipeline, [topic], rows)
        keys = {key for _, key, _ in topic_records(pipeline.kafka.bootstrap, topic, count) if key}
        assert len(keys) == rows
