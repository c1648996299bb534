"""Shared fixtures. The integration stack starts once per test session on its own ports,
so it never collides with a developer's demo stack; every test names its own topics,
tables and slots."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest
import yaml

from cdclake.config import Pipeline, load
from cdclake.stack import stack as local_stack

# Ports of the session's test stack (the demo uses 54329 / 19092 / 8083). Two test runs on
# one machine set CDCLAKE_TEST_PORT_OFFSET to keep apart.
PORT_OFFSET = int(os.environ.get("CDCLAKE_TEST_PORT_OFFSET", "0"))
TEST_PG_PORT, TEST_KAFKA_PORT, TEST_CONNECT_PORT = 55432 + PORT_OFFSET, 29092 + PORT_OFFSET, 28083 + PORT_OFFSET


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


@pytest.fixture
def stack_dir():
    path = searchable_dir("t")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def stack() -> Pipeline:
    """The real local stack (PostgreSQL, Kafka, Connect + Debezium), up for the session."""
    directory = searchable_dir("stack")
    pipeline = load(write_config(directory, base_config()), environ={})
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
