"""Reading a Kafka quorum's state in tests: a topic's effective config, whether acks=all
writes are acknowledged, full ISRs."""

from __future__ import annotations

import time

from cdclake.broker import clients


def topic_config(bootstrap: str, topic: str) -> dict[str, str]:
    """The topic's effective config, read back from the brokers."""
    from confluent_kafka.admin import ConfigResource

    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    admin = clients.admin(bootstrap)  # held until the answer: a collected client cancels its futures
    entries = admin.describe_configs([resource])[resource].result(timeout=30)
    return {name: entry.value for name, entry in entries.items()}


def assert_unacknowledged(bootstrap: str, topic: str, count: int = 20) -> None:
    """Every ``acks=all`` write to ``topic`` fails (no broker acknowledges it within 10 s)."""
    producer = clients.producer(bootstrap, acks="all", **{"enable.idempotence": False, "message.timeout.ms": 10000,
                                                          "request.timeout.ms": 5000})
    outcomes = []
    for i in range(count):
        producer.produce(topic, f"v{i}".encode(), f"k{i}".encode(), on_delivery=lambda err, msg: outcomes.append(err))
    producer.flush(60)
    assert len(outcomes) == count and all(err is not None for err in outcomes), outcomes
    print(f"acks=all with 2 of 3 brokers down: {sorted({err.name() for err in outcomes})}")


def wait_full_isr(bootstrap: str, topic: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        meta = clients.admin(bootstrap).list_topics(topic, timeout=5).topics[topic]
        if all(sorted(p.isrs) == [1, 2, 3] for p in meta.partitions.values()):
            return
        assert time.monotonic() < deadline, {p.id: p.isrs for p in meta.partitions.values()}
        time.sleep(1)
