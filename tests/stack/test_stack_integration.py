"""The real local stack: PostgreSQL, Kafka (KRaft) and Connect + Debezium as processes."""

from __future__ import annotations

import time
import uuid

import pytest

from cdclake.broker import clients
from cdclake.broker.topics import ensure_topics
from cdclake.config import load
from cdclake.health.checks import stack_status
from cdclake.source import connection
from cdclake.stack import process
from cdclake.stack import stack as local_stack
from cdclake.stack.connect import DEBEZIUM_POSTGRES, plugin_classes
from tests.conftest import PORT_OFFSET, TEST_CONNECT_PORT, TEST_PG_PORT, base_config, unique, write_config
from tests.stack.brokers import assert_unacknowledged, topic_config, wait_full_isr

pytestmark = pytest.mark.integration


def test_postgres_has_logical_replication(stack):
    with connection.connect(stack) as conn:
        settings = dict(conn.execute(
            "SELECT name, setting FROM pg_settings WHERE name IN ('wal_level', 'max_replication_slots', "
            "'max_wal_senders', 'wal_keep_size', 'max_slot_wal_keep_size')").fetchall())
        assert conn.execute("SHOW wal_level").fetchone() == ("logical",)
        assert conn.execute("SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user"
                            ).fetchone() == ("cdclake", True)
    assert settings == {"wal_level": "logical", "max_replication_slots": "10", "max_wal_senders": "10",
                        "wal_keep_size": "1024", "max_slot_wal_keep_size": "10240"}


def _round_trip(bootstrap: str, topic: str, count: int = 50, acks: str = "all") -> list[tuple[bytes, bytes]]:
    producer = clients.producer(bootstrap, acks=acks, **{"enable.idempotence": True})
    sent = [(f"k{i}".encode(), f"v{i}-{uuid.uuid4().hex}".encode()) for i in range(count)]
    errors = []
    for key, value in sent:
        producer.produce(topic, value, key, on_delivery=lambda err, msg: err and errors.append(err))
    assert producer.flush(30) == 0 and not errors, errors
    consumer = clients.consumer(bootstrap, unique("g"))
    consumer.subscribe([topic])
    # Only this call's records count: an earlier write that was never acknowledged may still
    # become visible once the quorum is back (the leader had appended it), as Kafka allows.
    mine = set(sent)
    got, deadline = [], time.monotonic() + 30
    try:
        while len(got) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error() and (msg.key(), msg.value()) in mine:
                got.append((msg.key(), msg.value()))
    finally:
        consumer.close()
    assert sorted(got) == sorted(sent)
    return got


def _create_topic(bootstrap: str, topic: str, partitions: int, rf: int) -> None:
    assert ensure_topics(bootstrap, [topic], partitions, rf) == [topic]
    assert ensure_topics(bootstrap, [topic], partitions, rf) == []  # idempotent


def test_kafka_produce_consume_round_trip(stack):
    topic = unique("roundtrip")
    _create_topic(stack.kafka.bootstrap, topic, 3, 1)
    _round_trip(stack.kafka.bootstrap, topic)


def test_connect_lists_debezium_postgres(stack):
    assert DEBEZIUM_POSTGRES in plugin_classes(stack.connect.endpoint)


def test_status_reports_every_component(stack):
    status = stack_status(stack)
    assert status["postgres"]["state"] == "up" and status["postgres"]["version"].startswith("15")
    assert "***" in status["postgres"]["dsn"] or ":" not in status["postgres"]["dsn"].split("@")[0][13:]
    assert status["kafka"]["state"] == "up" and status["kafka"]["bootstrap_servers"] == stack.kafka.bootstrap
    assert status["kafka"]["brokers"] == [f"1@{stack.kafka.bootstrap}"]
    assert status["kafka"]["active_controller"] == 1
    assert status["kafka"]["under_replicated_partitions"] == []
    assert status["connect"]["state"] == "up" and DEBEZIUM_POSTGRES in status["connect"]["plugins"]
    password = connection.admin_password(stack).get_secret_value()
    assert password not in repr(status)


def test_three_node_quorum_takes_writes_with_one_broker_down_and_none_with_two(stack, stack_dir):
    """The reference's 3-node KRaft quorum; PostgreSQL and Connect are the session's (external)."""
    doc = base_config(kafka={"nodes": 3, "port": 25092 + PORT_OFFSET, "heap": "512m"},
                      source={"managed": None, "dsn": f"postgresql://cdclake@127.0.0.1:{TEST_PG_PORT}/cdc_test"},
                      connect={"managed": None, "url": f"http://127.0.0.1:{TEST_CONNECT_PORT}"})
    pipeline = load(write_config(stack_dir, doc), environ={})
    report = local_stack.up(pipeline, progress=print)
    try:
        assert report.started == ["kafka-1", "kafka-2", "kafka-3"]
        assert report.external == ["postgres", "connect"]
        bootstrap = pipeline.kafka.bootstrap
        topic = unique("quorum")
        _create_topic(bootstrap, topic, 3, 3)
        assert topic_config(bootstrap, topic)["min.insync.replicas"] == "2"  # as the brokers apply it
        daemons = local_stack.LocalStack.of(pipeline).kafka.daemons()
        process.kill(daemons[1])
        _round_trip(bootstrap, topic, acks="all")  # 2 replicas of 3 in sync: min.insync.replicas=2 met
        process.kill(daemons[2])
        assert_unacknowledged(bootstrap, topic)  # 1 of 3: an acks=all write is never acknowledged
        again = local_stack.up(pipeline, progress=print)
        assert again.started == ["kafka-2", "kafka-3"] and again.already_running == ["kafka-1"]
        wait_full_isr(bootstrap, topic)
        _round_trip(bootstrap, topic, acks="all")
    finally:
        local_stack.down(pipeline, progress=print)


def test_up_twice_then_down_leaves_nothing(stack_dir):
    ports = {"source": {"port": 24432 + PORT_OFFSET}, "kafka": {"port": 24092 + PORT_OFFSET}, "connect": {"port": 24083 + PORT_OFFSET}}
    pipeline = load(write_config(stack_dir, base_config(**ports)), environ={})
    first = local_stack.up(pipeline, progress=print)
    try:
        assert first.started == ["postgres", "kafka-1", "connect"]
        pids = [process.running_pid(d.pidfile) for d in local_stack.LocalStack.of(pipeline).daemons()]
        assert all(pids)
        second = local_stack.up(pipeline, progress=print)
        assert second.started == [] and second.already_running == ["postgres", "kafka-1", "connect"]
    finally:
        stopped = local_stack.down(pipeline, purge=True, progress=print)
    assert stopped.stopped == ["connect", "kafka-1", "postgres"]
    assert not any(process.alive(pid) for pid in pids)
    assert all(process.port_free(p + PORT_OFFSET) for p in (24432, 24092, 24093, 24083))
    assert not (stack_dir / ".cdclake").exists()


def test_port_in_use_fails_up_and_stops_what_it_started(stack_dir):
    import socket

    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 23092 + PORT_OFFSET))
        blocker.listen()
        ports = {"source": {"port": 23432 + PORT_OFFSET}, "kafka": {"port": 23092 + PORT_OFFSET}, "connect": {"port": 23083 + PORT_OFFSET}}
        pipeline = load(write_config(stack_dir, base_config(**ports)), environ={})
        with pytest.raises(process.PortInUseError, match=f"port {23092 + PORT_OFFSET} needed by kafka-1 is in use by pid"):
            local_stack.up(pipeline, progress=print)
    assert process.port_free(23432 + PORT_OFFSET)  # PostgreSQL, started first, was stopped again
    assert not list((stack_dir / ".cdclake" / "run").glob("*.pid"))


def test_cli_status_json_contract(stack):
    """`cdclake status --output json` is one JSON object with each component's state and address."""
    import json
    import subprocess
    import sys

    from cdclake.health.verdict import StatusExit

    out = subprocess.run([sys.executable, "-m", "cdclake", "-c", str(stack.path), "--output", "json", "status"],
                         capture_output=True, text=True, timeout=120)
    status = json.loads(out.stdout)
    # The session stack runs no connector of its own: status says so in its exit code.
    assert status["connector"]["state"] == "absent" and out.returncode == StatusExit.FAILED, out.stderr
    assert status["postgres"]["state"] == "up" and status["postgres"]["dsn"].endswith(f":{TEST_PG_PORT}/cdc_test")
    assert status["kafka"]["state"] == "up" and status["kafka"]["bootstrap_servers"] == stack.kafka.bootstrap
    assert status["connect"]["state"] == "up" and status["connect"]["url"] == stack.connect.endpoint
    assert connection.admin_password(stack).get_secret_value() not in out.stdout + out.stderr
