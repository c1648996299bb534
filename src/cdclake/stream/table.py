"""Tables with KTable semantics, the right side of enrich joins.

A table is materialized from a CDC topic (``cdc.departments``): the latest row per
primary key; a delete (``__deleted == "true"``, ``__op == "d"`` or a tombstone) removes
it. The group member that owns a source partition writes each change to a compacted
changelog topic (inside the Kafka transaction under exactly-once). Every process keeps
the whole table (GlobalKTable style, since a foreign-key join is not co-partitioned):
it restores the table from the changelog at start, then tails the changelog to pick up
changes applied by the other processes.

Each row remembers the source (partition, offset) it came from, so a changelog echo of
an older version never overwrites a newer row applied locally.

A TRUNCATE (``__op == "t"``, a null key, on any partition; docs/events.md) empties the
table of every row older than its ``__lsn`` and refuses older changes from then on, the
rule silver follows. The changelog gets a tombstone per removed key and a marker record
under :data:`TRUNCATE_KEY`, so a restore (or another process) applies the same cut.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message

from cdclake.stream.exceptions import StreamError

LOG = logging.getLogger("cdclake.stream")

HEADER_PARTITION = "cdclake.source.partition"
HEADER_OFFSET = "cdclake.source.offset"
TRUNCATE_KEY = b'{"__cdclake_truncate": true}'  # the changelog's marker of the latest TRUNCATE

ChangelogRecord = tuple[bytes, bytes | None, list[tuple[str, bytes]]]  # key, value (None: tombstone), headers


def parse_key(raw: bytes | None) -> tuple:
    """A Debezium key ``{"id": 3}`` as the tuple ``(3,)`` (the key columns in order).

    Raises:
        ValueError: the key is missing or not JSON.
    """
    if raw is None:
        raise ValueError("message has no key; a table needs the primary key as the message key")
    key = json.loads(raw)
    if isinstance(key, dict):
        return tuple(key.values())
    return (key,)


def truncate_lsn(raw: bytes | None) -> int | None:
    """The ``__lsn`` of a TRUNCATE event, or None for any other value (cheap: no full parse
    unless the bytes say ``"__op": "t"``)."""
    if raw is None or b'"t"' not in raw:
        return None
    row = json.loads(raw)
    if not isinstance(row, dict) or row.get("__op") != "t":
        return None
    if not isinstance(row.get("__lsn"), int):
        raise ValueError("a TRUNCATE event without __lsn cannot be placed in the change order")
    return row["__lsn"]


def parse_row(raw: bytes | None) -> dict[str, Any] | None:
    """The row of a change, or None when the change deletes it.

    Raises:
        ValueError: the value is not a JSON object.
    """
    if raw is None:
        return None
    row = json.loads(raw)
    if not isinstance(row, dict):
        raise ValueError(f"value is a JSON {type(row).__name__}, not an object")
    if row.get("__deleted") in ("true", True) or row.get("__op") == "d":
        return None
    return row


class Table:
    """The latest row per primary key of one source table.

    Attributes:
        name: the table's name under ``stream.tables``.
        source_topic: the CDC topic it is materialized from.
        changelog_topic: the compacted topic its changes are logged to.
    """

    def __init__(self, name: str, source_topic: str, changelog_topic: str):
        self.name = name
        self.source_topic = source_topic
        self.changelog_topic = changelog_topic
        self.rows: dict[tuple, dict[str, Any]] = {}
        self._versions: dict[tuple, tuple[int, int]] = {}
        self._raw_keys: dict[tuple, bytes] = {}  # the message key as read, for a TRUNCATE's tombstones
        self.truncated_before: int | None = None
        self.updates = 0
        # The row for a key, or None: the dict's own method, no Python frame on the join path.
        self.get: Callable[[tuple], Mapping[str, Any] | None] = self.rows.get

    def __len__(self) -> int:
        return len(self.rows)

    def apply(self, key: tuple, row: dict[str, Any] | None, version: tuple[int, int],
              raw_key: bytes | None = None) -> bool:
        """Upsert (or delete, row None) unless a newer version of the key is already applied
        or the row is older than the last TRUNCATE."""
        current = self._versions.get(key)
        if current is not None and current[0] == version[0] and current[1] >= version[1]:
            return False
        if row is not None and self._before_truncate(row):
            return False
        self._versions[key] = version
        if row is None:
            self.rows.pop(key, None)
            self._raw_keys.pop(key, None)
        else:
            self.rows[key] = row
            if raw_key is not None:
                self._raw_keys[key] = raw_key
        self.updates += 1
        return True

    def truncate(self, lsn: int) -> list[bytes]:
        """Remove every row older than ``lsn``; returns the removed rows' message keys."""
        self.truncated_before = max(lsn, self.truncated_before or lsn)
        gone = [key for key, row in self.rows.items() if self._before_truncate(row)]
        for key in gone:
            del self.rows[key]
        self.updates += 1
        return [raw for raw in (self._raw_keys.pop(key, None) for key in gone) if raw is not None]

    def _before_truncate(self, row: dict[str, Any]) -> bool:
        # A row without __lsn (an event not from Debezium's stream) counts as older.
        lsn = row.get("__lsn")
        return self.truncated_before is not None and (not isinstance(lsn, int) or lsn < self.truncated_before)


class Tables:
    """Every table of the processor, restored from and kept in step with their changelogs.

    Args:
        tables: the tables by name.
        consumer_factory: makes the changelog consumer (assigned, never committing).
    """

    def __init__(self, tables: dict[str, Table], consumer_factory: Callable[[], Consumer]):
        self.by_name = tables
        self.by_source = {t.source_topic: t for t in tables.values()}
        self.by_changelog = {t.changelog_topic: t for t in tables.values()}
        self._consumer = consumer_factory() if tables else None

    def restore(self, timeout: float = 120) -> int:
        """Read every changelog partition to its end; returns the number of changes applied.

        Raises:
            StreamError: the changelogs could not be read to their end within ``timeout``.
        """
        if self._consumer is None:
            return 0
        from confluent_kafka import OFFSET_BEGINNING, TopicPartition

        meta = self._consumer.list_topics(timeout=30)
        partitions = [TopicPartition(topic, p, OFFSET_BEGINNING)
                      for topic in self.by_changelog if topic in meta.topics
                      for p in meta.topics[topic].partitions]
        self._consumer.assign(partitions)
        pending = {(tp.topic, tp.partition) for tp in partitions}
        applied, deadline = 0, time.monotonic() + timeout
        while pending:
            if time.monotonic() > deadline:
                raise StreamError(f"restoring tables: changelog partitions {sorted(pending)} not read to their "
                                  f"end within {timeout:.0f}s; check Kafka (`cdclake status`)")
            for msg in self._consumer.consume(1000, timeout=0.5):
                if _is_eof(msg):
                    pending.discard((msg.topic(), msg.partition()))
                else:
                    applied += self._apply_changelog(msg)
        LOG.info("restored %d table change(s): %s", applied,
                 ", ".join(f"{t.name}={len(t)} rows" for t in self.by_name.values()))
        return applied

    def poll(self) -> int:
        """Apply whatever the changelogs hold now, without waiting."""
        if self._consumer is None:
            return 0
        applied = 0
        while True:
            batch = self._consumer.consume(1000, timeout=0)
            if not batch:
                return applied
            for msg in batch:
                if not _is_eof(msg):
                    applied += self._apply_changelog(msg)

    def apply_source(self, msg: Message) -> tuple[str, list[ChangelogRecord]]:
        """Apply a change (or a TRUNCATE) read from a table's CDC topic.

        Returns:
            (changelog topic, the records to produce to it).

        Raises:
            ValueError: the key or value cannot be parsed (the message is poison).
        """
        table = self.by_source[msg.topic()]
        raw = msg.value()
        headers = [(HEADER_PARTITION, str(msg.partition()).encode()), (HEADER_OFFSET, str(msg.offset()).encode())]
        lsn = truncate_lsn(raw)
        if lsn is not None:
            return table.changelog_topic, [(key, None, headers) for key in table.truncate(lsn)] + [
                (TRUNCATE_KEY, raw, headers)]
        row = parse_row(raw)
        table.apply(parse_key(msg.key()), row, (msg.partition(), msg.offset()), msg.key())
        return table.changelog_topic, [(msg.key(), raw if row is not None else None, headers)]

    def _apply_changelog(self, msg: Message) -> int:
        if msg.error():
            raise StreamError(f"reading changelog {msg.topic()}: {msg.error().str()}", topic=msg.topic())
        table = self.by_changelog[msg.topic()]
        headers = dict(msg.headers() or [])
        try:
            if msg.key() == TRUNCATE_KEY:
                table.truncate(truncate_lsn(msg.value()))
                return 1
            version = (int(headers[HEADER_PARTITION]), int(headers[HEADER_OFFSET]))
            applied = table.apply(parse_key(msg.key()), parse_row(msg.value()), version, msg.key())
        except (KeyError, ValueError) as exc:
            LOG.warning("skipping changelog record %s[%d]@%d: %s", msg.topic(), msg.partition(), msg.offset(), exc)
            return 0
        return int(applied)

    def sizes(self) -> dict[str, int]:
        return {name: len(table) for name, table in self.by_name.items()}

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()


def _is_eof(msg: Message) -> bool:
    error = msg.error()
    return error is not None and error.code() == KafkaError._PARTITION_EOF
