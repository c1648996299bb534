"""Shared fixtures. The integration stack starts once per test session on its own ports,
so it never collides with a developer's demo stack; every test names its own topics,
tables and slots."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest
import yaml
from psycopg import sql

from cdclake.config import Pipeline, load
from cdclake.config.tables import TableId
from cdclake.stack import stack as local_stack

# Ports of the session's test stack (the demo uses 54329 / 19092 / 8083). Two test runs on
# one machine set CDCLAKE_TEST_PORT_OFFSET to keep apart. Test ports stay below Linux's
# ephemeral range (32768-60999), where any client socket may already hold them.
PORT_OFFSET = int(os.environ.get("CDCLAKE_TEST_PORT_OFFSET", "0"))
TEST_PG_PORT, TEST_KAFKA_PORT, TEST_CONNECT_PORT = 27432 + PORT_OFFSET, 29092 + PORT_OFFSET, 28083 + PORT_OFFSET
TEST_JMX_PORT = 29404 + PORT_OFFSET  # Prometheus JMX exporter: broker i at +i-1, Connect at +10


def write_config(directory: Path, doc: dict) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "pipeline.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def base_config(**sections) -> dict:
    doc = {
        "source": {"managed": "local", "port": TEST_PG_PORT, "database": "cdc_test", "tables": []},
        "kafka": {"managed": "local", "port": TEST_KAFKA_PORT, "partitions": 3},
        "connect": {"managed": "local", "port": TEST_CONNECT_PORT},
        "spark": {"master": "local[2]", "driver_memory": "2g"},
    }
    for name, values in sections.items():
        doc.setdefault(name, {}).update(values)
    return doc


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def searchable_dir(prefix: str) -> Path:
    """A fresh directory the unprivileged PostgreSQL user can enter (pytest's tmp is 0700)."""
    path = Path(tempfile.mkdtemp(prefix=f"cdclake-{prefix}-"))
    path.chmod(0o755)
    return path


@contextlib.contextmanager
def running_postgres(directory: Path, port: int, extra_conf: str):
    """A fresh local PostgreSQL cluster with ``extra_conf`` appended to its config, started and ready."""
    from cdclake.stack import process
    from cdclake.stack.postgres import LocalPostgres

    pg = LocalPostgres(directory / ".cdclake", port)
    pg.init_cluster()
    with open(pg.data_dir / "postgresql.auto.conf", "a") as conf:
        conf.write(extra_conf)
    daemon = pg.daemon()
    pid = process.start(daemon)
    try:
        process.wait_ready(daemon, pid, pg.probe, 60, "SELECT 1")
        yield pg
    finally:
        process.stop(daemon)


@pytest.fixture
def stack_dir():
    path = searchable_dir("t")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def stack() -> Pipeline:
    """The real local stack (PostgreSQL, Kafka, Connect + Debezium), up for the session."""
    directory = searchable_dir("stack")
    # Only the session's stack runs the JMX agents: a second stack on the same agent ports would not start.
    doc = base_config(monitoring={"jmx_exporter": True, "jmx_port": TEST_JMX_PORT})
    pipeline = load(write_config(directory, doc), environ={})
    local_stack.up(pipeline, progress=lambda m: print(f"[stack] {m}"))
    yield pipeline
    local_stack.down(pipeline, purge=True, progress=lambda m: None)
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def clean_env(monkeypatch):
    for name in list(os.environ):
        if name.startswith("CDCLAKE__"):
            monkeypatch.delenv(name)
    return monkeypatch


def capture_pipeline(stack: Pipeline, schema: str, tables: list[str], **connect) -> Pipeline:
    """The session stack's pipeline with this test's own tables, slot, publication, role,
    topics and connector, so tests never share capture state."""
    tag = schema
    source = stack.source.model_copy(update={
        "tables": [TableId.parse(f"{schema}.{t}") for t in tables], "publication": f"pub_{tag}", "slot": f"slot_{tag}",
        "capture_user": f"dbz_{tag}", "cdc_schema": f"cdc_{tag}"})
    connect_cfg = stack.connect.model_copy(update={"connector_name": f"conn_{tag}", "heartbeat_interval_ms": 1000,
                                                   **connect})
    kafka = stack.kafka.model_copy(update={"topic_prefix": f"cdc_{tag}"})
    return stack.model_copy(update={"source": source, "connect": connect_cfg, "kafka": kafka})


def drop_capture(pipeline: Pipeline) -> None:
    """Delete the test's connector, slot, publication and schemas (best effort, bounded)."""
    from cdclake.capture import recover
    from cdclake.capture.exceptions import CaptureError
    from cdclake.capture.service import client
    from cdclake.source import connection as _connection

    client(pipeline).delete(pipeline.connect.connector_name)
    src = pipeline.source
    try:
        recover.drop_slot(pipeline, progress=lambda m: None)
    except CaptureError:
        pass  # best effort: a slot still held after 30 s is left to the stack's purge
    with _connection.connect(pipeline, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(src.publication)))
        # The test's own schemas; never public, which a test may share with others (it drops its tables there).
        for schema in ({TableId.parse(t).schema for t in src.tables} | {src.cdc_schema}) - {"public"}:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def read_topics(bootstrap: str, topics: list[str], done, timeout: float = 60) -> list[dict]:
    """Consume ``topics`` from the start until ``done(records)`` is true or ``timeout``.

    Returns records as dicts: topic, partition, offset, key (parsed), value (parsed or None),
    headers (a list of (name, bytes)).
    """
    import json as _json
    import time as _time

    from cdclake.broker import clients as _clients

    consumer = _clients.consumer(bootstrap, unique("reader"))
    consumer.subscribe(topics)
    records: list[dict] = []
    deadline = _time.monotonic() + timeout
    try:
        while _time.monotonic() < deadline and not done(records):
            for msg in consumer.consume(1000, 0.5):
                if msg.error():
                    continue
                records.append({"topic": msg.topic(), "partition": msg.partition(), "offset": msg.offset(),
                                "key": _json.loads(msg.key()) if msg.key() else None,
                                "value": _json.loads(msg.value()) if msg.value() else None,
                                "headers": msg.headers() or []})
    finally:
        consumer.close()
    return records
