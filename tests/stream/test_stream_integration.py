"""The stream processor against real Kafka: exact outputs, table updates, crash and
restart under both guarantees, dead letters, two processes sharing a group.

Events are Debezium-shaped JSON (docs/events.md) produced straight into per-test topics;
Debezium itself is not needed here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, KafkaException, TopicPartition

from cdclake.broker import clients
from cdclake.broker.topics import ensure_topics
from cdclake.config import load
from cdclake.stream import metrics
from cdclake.stream.configuration import StreamConfig
from cdclake.stream.processor import Processor
from tests.conftest import base_config, unique, write_config

pytestmark = pytest.mark.integration

CDCLAKE = Path(sys.executable).parent / "cdclake"
PARTITIONS = 3


# --- helpers -------------------------------------------------------------------------

def user(i: int, op: str = "c", department_id: int | None = 1, **columns) -> dict:
    return {"id": i, "name": f"user {i}", "department_id": department_id, **columns, "__op": op,
            "__lsn": 1000 + i, "__txId": 500 + i, "__source_ts_ms": 1714557600000 + i, "__ts_ms": 1714557600100 + i,
            "__table": "users", "__schema": "public", "__deleted": "true" if op == "d" else "false"}


def department(i: int, name: str, op: str = "r") -> dict:
    return {"id": i, "name": name, "budget": "1000.00", "__op": op, "__lsn": 10 + i, "__table": "departments",
            "__schema": "public", "__deleted": "false"}


def produce(bootstrap: str, topic: str, records: list[tuple[dict, dict | bytes | None]]) -> None:
    producer = clients.producer(bootstrap, **{"partitioner": "murmur2_random", "linger.ms": 5})
    for key, value in records:
        payload = value if isinstance(value, bytes) or value is None else json.dumps(value)
        producer.produce(topic, payload, json.dumps(key))
    assert producer.flush(30) == 0


def read(bootstrap: str, topic: str, count: int, timeout: float = 60, settle: float = 1.0) -> list:
    """Every committed record of ``topic`` as (key, value, headers): at least ``count``,
    then whatever else arrives within ``settle`` seconds (so duplicates are seen too)."""
    consumer = clients.consumer(bootstrap, unique("reader"), **{"isolation.level": "read_committed"})
    wait_for(lambda: _count(bootstrap, topic) >= 0, 30, f"topic {topic}")
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    got, deadline, quiet_until = [], time.monotonic() + timeout, None
    try:
        while time.monotonic() < deadline and (quiet_until is None or time.monotonic() < quiet_until):
            for msg in consumer.consume(500, timeout=0.2):
                if msg.error() is None:
                    value = msg.value()
                    got.append((json.loads(msg.key()), _json_or_bytes(value), dict(msg.headers() or [])))
            if len(got) >= count and quiet_until is None:
                quiet_until = time.monotonic() + settle
    finally:
        consumer.close()
    return got


def _json_or_bytes(value: bytes | None):
    try:
        return None if value is None else json.loads(value)
    except ValueError:
        return value


def stream_section(ns: str, **overrides) -> dict:
    """The reference's example on this test's topics, routing admins elsewhere."""
    section = {
        "enabled": True, "group_id": f"{ns}-group", "output_prefix": f"{ns}-bronze",
        "dead_letter_topic": f"{ns}.dlq", "commit_interval_ms": 200, "metrics_interval_ms": 200,
        "tables": {"departments": {"topic": f"{ns}.departments"}},
        "inputs": [{"topic": f"{ns}.users", "steps": [
            {"filter": {"op": ["c"]}},
            {"enrich": {"table": "departments", "key": "department_id", "fields": ["name"],
                        "prefix": "department_"}},
            {"route": [{"to": f"{ns}.admins", "when": [{"column": "role", "eq": "admin"}]},
                       {"to": f"{ns}-bronze.users"}]},
        ]}],
    }
    section.update(overrides)
    return section


def create_topics(stack, ns: str) -> None:
    ensure_topics(stack.kafka.bootstrap, [f"{ns}.users", f"{ns}.departments"], PARTITIONS, 1)


@contextmanager
def running(stack, section: dict, instance: str | None = None):
    """A processor in a thread of this test process."""
    processor = Processor(StreamConfig.model_validate(section), stack.kafka.bootstrap, partitions=PARTITIONS,
                          replication_factor=1, metrics_dir=None, instance_id=instance)
    errors = []

    def target():
        try:
            processor.run()
        except Exception as exc:  # noqa: BLE001 - reported by the test below
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    try:
        yield processor
    finally:
        processor.stop()
        thread.join(60)
    assert not errors, errors


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def strip(records: list) -> list[tuple[int, dict]]:
    return sorted((key["id"], value) for key, value, _ in records)


# --- tests ---------------------------------------------------------------------------

def test_filter_enrich_route_exact_output_and_dead_letter(stack):
    ns = unique("st")
    create_topics(stack, ns)
    bootstrap = stack.kafka.bootstrap
    produce(bootstrap, f"{ns}.departments", [({"id": 1}, department(1, "sales")), ({"id": 2}, department(2, "ops"))])
    produce(bootstrap, f"{ns}.users", [
        ({"id": 1}, user(1, role="dev")),
        ({"id": 2}, user(2, op="u", role="dev")),             # not an insert: filtered
        ({"id": 3}, user(3, department_id=2, role="admin")),  # routed to admins
        ({"id": 4}, user(4, department_id=7, role="dev")),    # no such department: left join gives null
        ({"id": 5}, b"{not json"),                            # poison
        ({"id": 6}, user(6, op="d", role="dev")),             # delete: filtered
        ({"id": 7}, user(7, role="dev", department_name="stale")),  # already has the column: replaced
    ])
    with running(stack, stream_section(ns)) as processor:
        bronze = read(bootstrap, f"{ns}-bronze.users", 3)
        admins = read(bootstrap, f"{ns}.admins", 1)
        dead = read(bootstrap, f"{ns}.dlq", 1)
        wait_for(lambda: processor.snapshot()["steps"][f"{ns}.users"][0]["in"] == 7, 10, "all events counted")
        steps = processor.snapshot()["steps"][f"{ns}.users"]

    assert strip(bronze) == [
        (1, {**user(1, role="dev"), "department_name": "sales"}),
        (4, {**user(4, department_id=7, role="dev"), "department_name": None}),
        (7, {**user(7, role="dev"), "department_name": "sales"}),
    ]
    assert strip(admins) == [(3, {**user(3, department_id=2, role="admin"), "department_name": "ops"})]
    assert len(dead) == 1
    key, value, headers = dead[0]
    assert key == {"id": 5} and value == b"{not json"
    assert headers["cdclake.error.step"] == b"decode" and b"malformed" in headers["cdclake.error"].lower()
    assert headers["cdclake.source.topic"] == f"{ns}.users".encode()
    assert steps == [
        {"step": "1:filter", "in": 7, "out": 4, "filtered": 2, "failed": 1},
        {"step": "2:enrich", "in": 4, "out": 4, "filtered": 0, "failed": 0},
        {"step": "3:route", "in": 4, "out": 4, "filtered": 0, "failed": 0},
    ]


def test_department_update_reaches_later_events(stack):
    ns = unique("st")
    create_topics(stack, ns)
    bootstrap = stack.kafka.bootstrap
    produce(bootstrap, f"{ns}.departments", [({"id": 1}, department(1, "sales"))])
    with running(stack, stream_section(ns)):
        produce(bootstrap, f"{ns}.users", [({"id": i}, user(i)) for i in range(1, 4)])
        before = read(bootstrap, f"{ns}-bronze.users", 3)
        produce(bootstrap, f"{ns}.departments", [({"id": 1}, department(1, "revenue", op="u"))])
        produce(bootstrap, f"{ns}.users", [({"id": i}, user(i)) for i in range(4, 7)])
        after = read(bootstrap, f"{ns}-bronze.users", 6)
    assert {v["id"]: v["department_name"] for _, v, _ in before} == {1: "sales", 2: "sales", 3: "sales"}
    assert {v["id"]: v["department_name"] for _, v, _ in after if v["id"] > 3} == {4: "revenue", 5: "revenue",
                                                                                   6: "revenue"}


def test_truncate_of_a_join_table_empties_it_through_restore_and_refuses_older_replays(stack):
    """A TRUNCATE of departments (null key, __op t) empties the table for later joins; a
    new processor restored from the changelog agrees, and a replayed older change stays out."""
    ns = unique("st")
    create_topics(stack, ns)
    bootstrap = stack.kafka.bootstrap
    produce(bootstrap, f"{ns}.departments", [({"id": 1}, department(1, "sales")), ({"id": 2}, department(2, "ops"))])
    truncate = {"__op": "t", "__lsn": 50, "__txId": 9, "__table": "departments", "__schema": "public",
                "__deleted": "false"}
    section = stream_section(ns)
    with running(stack, section) as processor:
        produce(bootstrap, f"{ns}.users", [({"id": 1}, user(1, department_id=1))])
        read(bootstrap, f"{ns}-bronze.users", 1)
        producer = clients.producer(bootstrap)
        producer.produce(f"{ns}.departments", json.dumps(truncate), None, partition=2)
        assert producer.flush(30) == 0
        after_truncate = department(2, "ops again", op="c") | {"__lsn": 60}
        produce(bootstrap, f"{ns}.departments", [({"id": 2}, after_truncate)])
        wait_for(lambda: processor.tables.sizes() == {"departments": 1}, 60, "the TRUNCATE and the new row applied")
        produce(bootstrap, f"{ns}.users", [({"id": 2}, user(2, department_id=1)), ({"id": 3}, user(3, department_id=2))])
        live = read(bootstrap, f"{ns}-bronze.users", 3)
    with running(stack, section) as restored:  # a fresh process: the table comes from the changelog
        wait_for(lambda: restored.tables is not None, 60, "the restore")
        assert restored.tables.sizes() == {"departments": 1}
        produce(bootstrap, f"{ns}.departments", [({"id": 1}, department(1, "replayed"))])  # __lsn 11 < 50
        produce(bootstrap, f"{ns}.users", [({"id": 4}, user(4, department_id=1)), ({"id": 5}, user(5, department_id=2))])
        later = read(bootstrap, f"{ns}-bronze.users", 5)
    names = {v["id"]: v["department_name"] for _, v, _ in live + later}
    assert names == {1: "sales", 2: None, 3: "ops again", 4: None, 5: "ops again"}
    assert not read(bootstrap, f"{ns}.dlq", 0, timeout=3, settle=0.5)


@pytest.mark.parametrize("guarantee", ["at-least-once", "exactly-once"])
def test_kill9_and_restart_loses_nothing(stack, stack_dir, guarantee):
    """kill -9 mid-stream, restart: every input is in the output; duplicates only at-least-once.

    The restarted process never re-reads the departments topic (its offsets are committed),
    so enriched events after the restart prove the table was restored from the changelog.
    """
    ns = unique("st")
    create_topics(stack, ns)
    bootstrap = stack.kafka.bootstrap
    total = 4000
    section = stream_section(ns, processing_guarantee=guarantee, batch_size=100)
    config = write_config(stack_dir, base_config(kafka={"port": stack.kafka.port}, stream=section))
    produce(bootstrap, f"{ns}.departments", [({"id": d}, department(d, f"dept {d}")) for d in (1, 2, 3)])

    first = _start(config, "p1", stack_dir / "first.log")
    killed = threading.Event()
    feeder = threading.Thread(target=_feed, args=(bootstrap, f"{ns}.users", total, killed), daemon=True)
    feeder.start()
    wait_for(lambda: _count(bootstrap, f"{ns}-bronze.users") >= total // 4
             and _committed(bootstrap, section["group_id"], f"{ns}.users") > 0, 60, "output and a commit before the kill")
    first.send_signal(signal.SIGKILL)
    assert first.wait(10) == -signal.SIGKILL
    # The kill landed mid-stream: the first process had consumed some of the input, not all of it.
    consumed_at_kill = _committed(bootstrap, section["group_id"], f"{ns}.users")
    assert 0 < consumed_at_kill < total, consumed_at_kill
    killed.set()
    feeder.join(60)
    second = _start(config, "p1", stack_dir / "second.log")
    try:
        out = read(bootstrap, f"{ns}-bronze.users", total, timeout=90, settle=3)
        wait_for(lambda: _committed(bootstrap, section["group_id"], f"{ns}.users") == total, 60,
                 "the restarted process to commit every input offset")
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0, (stack_dir / "second.log").read_text()[-3000:]

    counts = Counter(value["id"] for _, value, _ in out)
    assert set(counts) == set(range(total)), f"missing: {sorted(set(range(total)) - set(counts))[:20]}"
    assert all(value["department_name"] == f"dept {value['department_id']}" for _, value, _ in out)
    duplicates = sum(n - 1 for n in counts.values())
    if guarantee == "exactly-once":
        assert duplicates == 0
    print(f"{guarantee}: {len(out)} records for {total} inputs, {duplicates} duplicates")


def test_two_processes_split_the_partitions_and_report_status(stack, stack_dir):
    ns = unique("st")
    create_topics(stack, ns)
    bootstrap = stack.kafka.bootstrap
    section = stream_section(ns)
    config = write_config(stack_dir, base_config(kafka={"port": stack.kafka.port}, stream=section))
    pipeline = load(config, environ={})
    produce(bootstrap, f"{ns}.departments", [({"id": 1}, department(1, "sales"))])
    procs = [_start(config, name, stack_dir / f"{name}.log") for name in ("a", "b")]
    try:
        def split() -> bool:
            status = metrics.stream_status(pipeline)
            docs = [d for d in metrics.read_all(metrics.metrics_dir(pipeline.state_dir)) if metrics.is_live(d)]
            assigned = [set(d["assigned"]) for d in docs]
            return (status["state"] == "up" and len(docs) == 2 and all(assigned)
                    and not assigned[0] & assigned[1] and len(assigned[0] | assigned[1]) == 2 * PARTITIONS)
        wait_for(split, 60, "both processes to hold disjoint partitions")
        produce(bootstrap, f"{ns}.users", [({"id": i}, user(i)) for i in range(300)])
        out = read(bootstrap, f"{ns}-bronze.users", 300)
        wait_for(lambda: "in=300" in " ".join(metrics.stream_status(pipeline)["steps"]), 60, "metrics of 300 events")
        status = metrics.stream_status(pipeline)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(30)
    assert sorted(v["id"] for _, v, _ in out) == list(range(300))
    assert status["state"] == "up" and len(status["instances"]) == 2
    assert f"{ns}.users 1:filter: in=300 out=300 filtered=0 failed=0" in status["steps"]
    assert status["tables"] == ["departments: 1 rows"]
    assert metrics.stream_status(pipeline)["state"] == "down"  # stopped: the status says so, and does not fail


def _start(config: Path, instance: str, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env = {k: v for k, v in env.items() if not k.startswith("CDCLAKE__")}
    with open(log, "ab") as out:
        return subprocess.Popen([str(CDCLAKE), "-c", str(config), "stream", "--instance-id", instance],
                                stdout=out, stderr=subprocess.STDOUT, env=env)


def _feed(bootstrap: str, topic: str, total: int, killed: threading.Event) -> None:
    """Produce the users in small slices; the second half only after the kill, so it lands mid-stream."""
    for start in range(0, total, 200):
        if start == total // 2:
            killed.wait(120)
        produce(bootstrap, topic, [({"id": i}, user(i, department_id=1 + i % 3)) for i in range(start, start + 200)])
        time.sleep(0.05)


def _committed(bootstrap: str, group: str, topic: str) -> int:
    """The input offsets ``group`` committed on ``topic``, summed over its partitions."""
    consumer = clients.consumer(bootstrap, group)
    try:
        parts = consumer.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=10)
        return sum(max(tp.offset, 0) for tp in parts)
    finally:
        consumer.close()


def _count(bootstrap: str, topic: str) -> int:
    """The sum of the topic's high watermarks; -1 while it does not exist."""
    consumer = clients.consumer(bootstrap, unique("count"))
    try:
        meta = consumer.list_topics(timeout=10)
        if topic not in meta.topics or not meta.topics[topic].partitions:
            return -1
        return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                   for p in meta.topics[topic].partitions)
    except KafkaException:  # just created: no leader yet
        return -1
    finally:
        consumer.close()
