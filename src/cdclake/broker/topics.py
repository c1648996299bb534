"""Idempotent topic administration."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import NewTopic

from cdclake.broker import clients
from cdclake.broker.exceptions import BrokerError


def ensure_topics(bootstrap: str, names: list[str], partitions: int, replication_factor: int,
                  config: dict[str, str] | None = None, timeout: float = 30) -> list[str]:
    """Create the topics that do not exist yet; returns the names created.

    An existing topic is left as it is (its partition count is never lowered).
    """
    admin = clients.admin(bootstrap)
    try:
        existing = set(admin.list_topics(timeout=timeout).topics)
    except KafkaException as exc:
        raise BrokerError(f"cannot reach Kafka at {bootstrap} ({exc.args[0].str()}); "
                          "is it running? (`cdclake status`)", bootstrap=bootstrap) from exc
    wanted = [NewTopic(name, partitions, replication_factor, config=config or {})
              for name in names if name not in existing]
    if not wanted:
        return []
    created = []
    for name, future in admin.create_topics(wanted, request_timeout=timeout).items():
        try:
            future.result(timeout)
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise BrokerError(f"cannot create topic {name}: {exc.args[0].str()}",
                                  bootstrap=bootstrap, topic=name) from exc
    return created


def end_offsets(bootstrap: str, topics: list[str], timeout: float = 10) -> dict[str, dict[int, int]]:
    """High watermark per partition of each topic (missing topics are left out)."""
    from confluent_kafka import TopicPartition

    consumer = clients.consumer(bootstrap, "cdclake-offsets-probe")
    try:
        meta = consumer.list_topics(timeout=timeout)
        out = {}
        for topic in topics:
            if topic not in meta.topics:
                continue
            out[topic] = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)[1]
                          for p in sorted(meta.topics[topic].partitions)}
        return out
    finally:
        consumer.close()


def topic_partitions(bootstrap: str, topics: list[str]) -> dict[str, list[int]]:
    """Partition ids of each topic that exists (missing topics are left out)."""
    meta = clients.admin(bootstrap).list_topics(timeout=10)
    return {t: sorted(meta.topics[t].partitions) for t in topics if t in meta.topics}
