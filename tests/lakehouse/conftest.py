"""Lakehouse fixtures: one Spark session for the whole test session, and per-test capture
pipelines (own schema, tables, topics, connector, Iceberg namespace, checkpoints)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from cdclake.broker.topics import end_offsets
from cdclake.config import Pipeline
from cdclake.lakehouse.configuration import LakehousePlan, plan_from_pipeline
from tests.conftest import capture_pipeline, drop_capture


@pytest.fixture(scope="session")
def spark(stack):
    """The session's SparkSession (starting one costs ~10 s; tests reuse it)."""
    from cdclake.lakehouse.spark import session

    spark = session(plan_from_pipeline(stack), "cdclake-tests")
    yield spark
    spark.stop()


def lake_pipeline(stack: Pipeline, schema: str, tables: list[str]) -> Pipeline:
    """The stack's pipeline with this test's capture and its own Iceberg namespace."""
    pipeline = capture_pipeline(stack, schema, tables)
    lakehouse = pipeline.lakehouse.model_copy(update={"namespace": f"ns_{schema}"})
    return pipeline.model_copy(update={"lakehouse": lakehouse})


def write_pipeline(pipeline: Pipeline, name: str) -> Path:
    """The pipeline as a YAML file beside the stack's (same state dir), for job subprocesses."""
    path = pipeline.state_dir.parent / f"{name}.yaml"
    path.write_text(yaml.safe_dump(pipeline.model_dump(mode="json", exclude_none=True), sort_keys=False))
    return path


def start_capture(pipeline: Pipeline) -> None:
    from cdclake.capture import service
    from cdclake.source.prepare import init_source

    init_source(pipeline, progress=lambda m: None)
    service.apply(pipeline, progress=lambda m: None)


def wait_confirmed(pipeline: Pipeline, timeout: float = 180) -> str:
    """Wait until Debezium has confirmed to the slot a position past every commit made so far;
    returns that position.

    Debezium confirms a position only after Connect flushed its offsets, i.e. after Kafka
    acknowledged every event before it, and only while streaming: past the initial snapshot
    too. (The heartbeat, every second in tests, gives it WAL to confirm when the tables idle.)
    """
    from cdclake.capture.service import wait_caught_up
    from cdclake.source import connection

    with connection.connect(pipeline) as conn:
        lsn = conn.execute("SELECT (pg_current_wal_lsn() + 1)::text").fetchone()[0]
    wait_caught_up(pipeline, lsn, timeout)
    return lsn


def wait_captured(pipeline: Pipeline, plan: LakehousePlan, timeout: float = 180) -> int:
    """Wait until the tables' topics hold every change committed so far; returns their record count."""
    wait_confirmed(pipeline, timeout)
    return sum(sum(p.values()) for p in end_offsets(pipeline.kafka.bootstrap, [r.topic for r in plan.tables]).values())


@pytest.fixture
def cleanup():
    pipelines: list[Pipeline] = []
    yield pipelines.append
    for pipeline in pipelines:
        drop_capture(pipeline)


def wait_records(pipeline: Pipeline, topics: list[str], at_least: int, timeout: float = 120) -> int:
    """Wait until ``topics`` hold at least ``at_least`` records in all; returns the count."""
    deadline, total = time.monotonic() + timeout, 0
    while time.monotonic() < deadline:
        total = sum(sum(p.values()) for p in end_offsets(pipeline.kafka.bootstrap, topics).values())
        if total >= at_least:
            return total
        time.sleep(0.5)
    raise TimeoutError(f"topics {topics} hold {total} records, expected at least {at_least} after {timeout}s")


def source_rows(pipeline: Pipeline, table: str, columns: str) -> list[tuple]:
    """``SELECT columns FROM table`` on the source, sorted (as Python sorts the tuples)."""
    from cdclake.source import connection

    with connection.connect(pipeline, autocommit=True) as conn:
        return sorted(conn.execute(f"SELECT {columns} FROM {table}").fetchall())


def silver_rows(spark, name: str, columns: str, version: int | None = None) -> list[tuple]:
    """``SELECT columns FROM name`` in Spark (optionally at a snapshot), sorted."""
    at = f" VERSION AS OF {version}" if version is not None else ""
    return sorted(tuple(r) for r in spark.sql(f"SELECT {columns} FROM {name}{at}").collect())
