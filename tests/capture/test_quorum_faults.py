"""Two of three brokers down under Debezium: the reference's 3-node KRaft quorum with its own
Connect worker (PostgreSQL and the Iceberg catalog are the session's). With
``min.insync.replicas=2`` nothing is acknowledged; Debezium retries without confirming
anything to the slot it has not delivered; once the brokers are back everything arrives,
and silver equals PostgreSQL."""

from __future__ import annotations

import shutil

import pytest

from cdclake.capture import service
from cdclake.capture.recover import lsn_int
from cdclake.config import load
from cdclake.source.workload import Workload
from cdclake.stack import process
from cdclake.stack import stack as local_stack
from tests.capture.faults import QUIET, assert_silver_exact, confirmed_lsn, demo_lake
from tests.conftest import PORT_OFFSET, TEST_PG_PORT, base_config, searchable_dir, write_config
from tests.lakehouse.conftest import cleanup, spark  # noqa: F401 - the lakehouse fixtures, used here too
from tests.lakehouse.conftest import start_capture, wait_confirmed
from tests.stack.brokers import assert_unacknowledged, topic_config, wait_full_isr

pytestmark = pytest.mark.integration


def quorum_config(stack, kafka_port: int, connect_port: int) -> dict:
    """pipeline.yaml of a 3-node quorum and a Connect worker of its own, on the session's
    PostgreSQL and lakehouse (bench/chaos builds the same stack)."""
    return base_config(
        source={"managed": None, "dsn": f"postgresql://cdclake@127.0.0.1:{TEST_PG_PORT}/cdc_test",
                "password_file": str(stack.state_dir / "secrets" / "postgres_password")},
        kafka={"nodes": 3, "port": kafka_port, "heap": "512m"},
        connect={"port": connect_port, "heap": "768m"},
        lakehouse={"warehouse": stack.warehouse})


@pytest.fixture(scope="module")
def quorum(stack):
    # Ports below Linux's ephemeral range (32768-60999), where a client socket may hold one.
    directory = searchable_dir("quorum")
    pipeline = load(write_config(directory, quorum_config(stack, 26092 + PORT_OFFSET, 26083 + PORT_OFFSET)),
                    environ={})
    assert local_stack.up(pipeline, progress=print).started == ["kafka-1", "kafka-2", "kafka-3", "connect"]
    yield pipeline
    local_stack.down(pipeline, purge=True, progress=QUIET)
    shutil.rmtree(directory, ignore_errors=True)


def test_two_of_three_brokers_down_nothing_acknowledged_then_everything_arrives(quorum, spark, cleanup):
    pipeline, plan, schema = demo_lake(quorum, cleanup, "quorum")
    bootstrap, topic = pipeline.kafka.bootstrap, plan.table("orders").topic
    start_capture(pipeline)
    workload = Workload(pipeline, seed=31, schema=schema)
    workload.run(rate=300, ops=300, progress=QUIET)
    wait_confirmed(pipeline)
    assert topic_config(bootstrap, topic)["min.insync.replicas"] == "2"

    daemons = local_stack.LocalStack.of(quorum).kafka.daemons()
    try:
        for daemon in daemons[1:]:
            process.kill(daemon)
        during = workload.run(rate=300, ops=600, progress=QUIET).ops  # PostgreSQL commits; Kafka cannot take it
        written = service.current_lsn(pipeline)
        assert_unacknowledged(bootstrap, topic)
        held = confirmed_lsn(pipeline)
        assert held < lsn_int(written), "Debezium confirmed changes Kafka never acknowledged"
    finally:
        again = local_stack.up(quorum, progress=QUIET)
    assert again.started == ["kafka-2", "kafka-3"]
    wait_full_isr(bootstrap, topic, timeout=120)
    service.wait_running(pipeline, timeout=180)
    after = workload.run(rate=300, ops=200, progress=QUIET).ops
    wait_confirmed(pipeline, timeout=300)
    counts = assert_silver_exact(spark, plan, pipeline)
    print(f"2 of 3 brokers down: {during} changes written meanwhile, slot held at {held} < {lsn_int(written)}; "
          f"{after} after; silver == source: {counts}")
