"""The stream processor: consume ``cdc.*``, run each topic's chain, produce the results.

One loop, on confluent-kafka directly:

1. ``consume`` a batch from the input topics and the tables' source topics (one consumer
   group: processes split the partitions);
2. apply the batch's table changes first (local table + changelog record), then run each
   event through its chain and produce the result with the event's own key (so the
   output keeps per-key order), or the event and its error to the dead-letter topic;
3. every ``commit_interval_ms``: at-least-once flushes the producer, then commits the
   consumed offsets; exactly-once sends the offsets to the Kafka transaction and commits
   it (KIP-447 fencing by the consumer group's metadata).

A crash between produce and commit re-processes the batch: duplicates under
at-least-once; under exactly-once the open transaction is aborted, so readers with
``isolation.level=read_committed`` see each result once.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from cdclake.broker import clients
from cdclake.broker.topics import ensure_topics
from cdclake.stream import metrics
from cdclake.stream.configuration import StreamConfig
from cdclake.stream.exceptions import StepFailedError, StreamError
from cdclake.stream.steps import Chain
from cdclake.stream.table import Table, Tables

LOG = logging.getLogger("cdclake.stream")

COMPACTED = {"cleanup.policy": "compact"}
FLUSH_TIMEOUT = 60.0
CATCH_UP_TIMEOUT = 60.0
HEADER_ERROR, HEADER_STEP = "cdclake.error", "cdclake.error.step"
HEADER_TOPIC, HEADER_PARTITION, HEADER_OFFSET = "cdclake.source.topic", "cdclake.source.partition", "cdclake.source.offset"


class Processor:
    """One process of the stream layer.

    Args:
        config: the ``stream`` section.
        bootstrap: Kafka bootstrap servers.
        partitions: partition count of the topics the processor creates (outputs, DLQ, changelogs).
        replication_factor: their replication factor.
        metrics_dir: where to write this instance's metrics file (None: no file).
        instance_id: overrides ``config.instance_id``. A stable id gives static group
            membership and a stable ``transactional.id``: a restart takes over at once.

    Example:
        >>> processor = Processor(pipeline.stream, pipeline.kafka.bootstrap, partitions=6,
        ...                       replication_factor=1, metrics_dir=None)  # doctest: +SKIP
        >>> processor.run()  # until processor.stop() or SIGTERM  # doctest: +SKIP
    """

    def __init__(self, config: StreamConfig, bootstrap: str, *, partitions: int, replication_factor: int,
                 metrics_dir: Path | None, instance_id: str | None = None):
        self.config = config
        self.bootstrap = bootstrap
        self.partitions = partitions
        self.replication_factor = replication_factor
        stable = instance_id or config.instance_id
        self.instance = stable or f"{socket.gethostname()}-{os.getpid()}"
        self.static_membership = stable is not None
        self.exactly_once = config.processing_guarantee == "exactly-once"
        self.metrics_path = metrics_dir / f"{self.instance}.json" if metrics_dir else None
        self._stop = threading.Event()
        self._offsets: dict[tuple[str, int], int] = {}
        self._delivery_error: KafkaError | None = None
        self._failed = False
        self._table_counts: dict[str, list[int]] = {name: [0, 0] for name in config.tables}
        self._dead_letters = 0
        self._tombstones = 0
        self._catch_up: dict[tuple[str, int], int] = {}
        self._held: list[TopicPartition] = []
        self._catch_up_deadline = 0.0
        self.tables: Tables | None = None
        self.chains: dict[str, Chain] = {}
        self.consumer: Consumer | None = None
        self.producer: Producer | None = None

    # --- lifecycle -----------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to finish its batch, commit and return (safe from a signal handler)."""
        self._stop.set()

    def run(self) -> None:
        """Prepare topics, restore tables, then process until :meth:`stop`.

        Raises:
            StreamError: Kafka refused a request or a delivery failed; nothing after the
                last commit is committed, so a restart re-processes it.
        """
        self._prepare_topics()
        self.tables = self._restore_tables()
        self.chains = {item.topic: Chain(item, self.config.default_output(item.topic), self.tables.by_name)
                       for item in self.config.inputs}
        self.producer = self._make_producer()
        self.consumer = self._make_consumer()
        try:
            self._loop()
        except BaseException:
            self._failed = True
            raise
        finally:
            self._shutdown()

    def _prepare_topics(self) -> None:
        outputs = self.config.output_topics() + [self.config.dead_letter_topic]
        ensure_topics(self.bootstrap, outputs, self.partitions, self.replication_factor)
        changelogs = [self.config.changelog_topic(name) for name in self.config.tables]
        if changelogs:
            ensure_topics(self.bootstrap, changelogs, self.partitions, self.replication_factor, config=COMPACTED)

    def _restore_tables(self) -> Tables:
        tables = {name: Table(name, spec.topic, self.config.changelog_topic(name))
                  for name, spec in self.config.tables.items()}
        store = Tables(tables, lambda: clients.consumer(
            self.bootstrap, f"{self.config.group_id}-tables-{self.instance}",
            **{"isolation.level": "read_committed", "enable.partition.eof": True}))
        store.restore()
        return store

    def _make_producer(self) -> Producer:
        conf: dict[str, Any] = {"enable.idempotence": True, "acks": "all", "linger.ms": 5,
                                "partitioner": "murmur2_random",  # as Java clients: same key, same partition
                                "delivery.report.only.error": True, "on_delivery": self._on_delivery}
        if self.exactly_once:
            conf.update({"transactional.id": f"{self.config.group_id}-{self.instance}",
                         "transaction.timeout.ms": self.config.transaction_timeout_ms})
        producer = clients.producer(self.bootstrap, **conf)
        if self.exactly_once:
            try:
                producer.init_transactions(60)
                producer.begin_transaction()
            except KafkaException as exc:
                raise StreamError(f"cannot start Kafka transactions at {self.bootstrap}: {exc.args[0].str()}; "
                                  "the brokers need transactions enabled (transaction.state.log.*)") from exc
        return producer

    def _make_consumer(self) -> Consumer:
        conf: dict[str, Any] = {"isolation.level": "read_committed",
                                "session.timeout.ms": self.config.session_timeout_ms}
        if self.static_membership:
            conf["group.instance.id"] = self.instance
        consumer = clients.consumer(self.bootstrap, self.config.group_id, **conf)
        topics = list(dict.fromkeys([*self.chains, *self.tables.by_source]))
        consumer.subscribe(topics, on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost)
        LOG.info("instance %s of group %s (%s) consuming %s", self.instance, self.config.group_id,
                 self.config.processing_guarantee, ", ".join(topics))
        return consumer

    def _shutdown(self) -> None:
        try:
            if not self._failed:
                self._commit()
            if self.consumer is not None:
                self._write_metrics(state="stopping")  # the last lag figures, while the consumer is open
                self.consumer.close()
                self.consumer = None
            if self.producer is not None and not self._failed:
                self.producer.flush(FLUSH_TIMEOUT)
        finally:
            if self.tables is not None:
                self.tables.close()
            self._write_metrics(state="failed" if self._failed else "stopped")

    # --- the loop ------------------------------------------------------------------

    def _loop(self) -> None:
        commit_every = self.config.commit_interval_ms / 1000
        metrics_every = self.config.metrics_interval_ms / 1000
        next_commit = next_metrics = time.monotonic()
        consumer, producer, tables = self.consumer, self.producer, self.tables
        while not self._stop.is_set():
            batch = consumer.consume(self.config.batch_size, timeout=0.2)
            tables.poll()
            if self._held:
                self._check_caught_up(batch)
            if batch:
                self._process(batch)
            producer.poll(0)
            self._raise_delivery_error()
            now = time.monotonic()
            if now >= next_commit:
                self._commit()
                next_commit = now + commit_every
            if now >= next_metrics:
                self._write_metrics()
                next_metrics = now + metrics_every

    def _process(self, batch: list[Message]) -> None:
        sources = self.tables.by_source
        if sources:
            # Table changes first, so the batch's events join the freshest rows.
            for msg in batch:
                if msg.topic() in sources and msg.error() is None:
                    self._table_change(msg)
        # The hot path, kept flat: one event is a handful of C calls and its chain.
        chains, offsets, produce = self.chains, self._offsets, self.producer.produce
        for msg in batch:
            if msg.error() is not None:
                self._consumer_error(msg)
                continue
            topic = msg.topic()
            chain = chains.get(topic)
            if chain is not None:
                raw = msg.value()
                if raw is None:
                    self._tombstones += 1  # deletes arrive rewritten (__deleted); a tombstone has nothing to route
                else:
                    try:
                        result = chain.process(raw)
                    except StepFailedError as exc:
                        self._dead_letter(msg, exc)
                        result = None
                    if result is not None:
                        try:
                            produce(result[0], result[1], msg.key())
                        except BufferError:
                            self._produce(result[0], result[1], msg.key())
            offsets[(topic, msg.partition())] = msg.offset() + 1

    def _table_change(self, msg: Message) -> None:
        counts = self._table_counts[self.tables.by_source[msg.topic()].name]
        try:
            changelog, records = self.tables.apply_source(msg)
        except ValueError as exc:
            counts[1] += 1
            self._dead_letter(msg, StepFailedError(f"table:{self.tables.by_source[msg.topic()].name}", exc))
            return
        counts[0] += 1
        for key, value, headers in records:
            self._produce(changelog, value, key, headers)

    def _dead_letter(self, msg: Message, error: StepFailedError) -> None:
        self._dead_letters += 1
        LOG.warning("dead-lettered %s[%d]@%d: %s", msg.topic(), msg.partition(), msg.offset(), error)
        headers = list(msg.headers() or []) + [
            (HEADER_ERROR, str(error).encode()), (HEADER_STEP, error.step.encode()),
            (HEADER_TOPIC, msg.topic().encode()), (HEADER_PARTITION, str(msg.partition()).encode()),
            (HEADER_OFFSET, str(msg.offset()).encode())]
        self._produce(self.config.dead_letter_topic, msg.value(), msg.key(), headers)

    def _produce(self, topic: str, value: bytes | str | None, key: bytes | None,
                 headers: list[tuple[str, bytes]] | None = None) -> None:
        while True:
            try:
                if headers:
                    self.producer.produce(topic, value, key, headers=headers)
                else:
                    self.producer.produce(topic, value, key)
                return
            except BufferError:  # local queue full: let deliveries drain, then retry
                self.producer.poll(0.05)

    def _consumer_error(self, msg: Message) -> None:
        error = msg.error()
        if error.code() in (KafkaError._PARTITION_EOF, KafkaError.UNKNOWN_TOPIC_OR_PART):
            LOG.debug("consumer: %s", error.str())
            return
        if error.fatal():
            raise StreamError(f"Kafka consumer failed: {error.str()}", topic=msg.topic())
        LOG.warning("consumer: %s", error.str())

    def _on_delivery(self, error: KafkaError | None, msg: Message) -> None:
        if error is not None and self._delivery_error is None:
            self._delivery_error = error

    def _raise_delivery_error(self) -> None:
        if self._delivery_error is not None:
            error = self._delivery_error
            raise StreamError(f"a result could not be written to Kafka ({error.str()}); nothing after the last "
                              "commit was committed, restart `cdclake stream` to re-process it")

    # --- commits -------------------------------------------------------------------

    def _commit(self) -> None:
        if self._failed or not self._offsets:
            return
        offsets = [TopicPartition(topic, partition, offset) for (topic, partition), offset in self._offsets.items()]
        if self.exactly_once:
            self._commit_transaction(offsets)
        else:
            self._flush_and_commit(offsets)
        self._offsets.clear()

    def _flush_and_commit(self, offsets: list[TopicPartition]) -> None:
        if self.producer.flush(FLUSH_TIMEOUT):
            raise StreamError(f"results not delivered to Kafka within {FLUSH_TIMEOUT:.0f}s; is it running? "
                              "(`cdclake status`)")
        self._raise_delivery_error()
        try:
            self.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # A rebalance took the partitions away: the new owner re-processes them (at-least-once).
            LOG.warning("offset commit failed (%s); those events will be processed again", exc.args[0].str())

    def _commit_transaction(self, offsets: list[TopicPartition]) -> None:
        try:
            self.producer.send_offsets_to_transaction(offsets, self.consumer.consumer_group_metadata(), 60)
            self.producer.commit_transaction(60)
        except KafkaException as exc:
            self._failed = True
            raise StreamError(f"Kafka transaction failed ({exc.args[0].str()}); it is aborted and nothing of it "
                              "is visible; restart `cdclake stream` to re-process from the last commit") from exc
        self.producer.begin_transaction()

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Hold back the input partitions until the assigned table partitions are caught up.

        Without this, events of a fresh assignment could be joined before the table rows
        that were written before them (Kafka Streams bootstraps its tables the same way).
        """
        LOG.info("assigned %s", _describe(partitions))
        consumer.assign(partitions)
        sources = self.tables.by_source
        table_parts = [tp for tp in partitions if tp.topic in sources]
        held = [tp for tp in partitions if tp.topic not in sources]
        if not table_parts or not held:
            return
        try:
            committed = {(tp.topic, tp.partition): tp.offset for tp in consumer.committed(table_parts, timeout=30)}
            ends = {(tp.topic, tp.partition): consumer.get_watermark_offsets(tp, timeout=30)[1] for tp in table_parts}
        except KafkaException as exc:
            LOG.warning("cannot read the table partitions' offsets (%s); not waiting for them", exc.args[0].str())
            return
        self._catch_up = {key: end for key, end in ends.items() if end > max(committed[key], 0)}
        if self._catch_up:
            consumer.pause(held)
            self._held, self._catch_up_deadline = held, time.monotonic() + CATCH_UP_TIMEOUT
            LOG.info("catching up tables before events: %s", ", ".join(f"{t}[{p}] to {o}"
                                                                      for (t, p), o in self._catch_up.items()))

    def _check_caught_up(self, batch: list[Message]) -> None:
        for msg in batch:
            key = (msg.topic(), msg.partition())
            if msg.error() is None and key in self._catch_up and msg.offset() + 1 >= self._catch_up[key]:
                del self._catch_up[key]
        late = time.monotonic() > self._catch_up_deadline
        if not self._catch_up or late:
            if late:
                LOG.warning("tables not caught up within %.0fs (%s); processing events anyway",
                            CATCH_UP_TIMEOUT, ", ".join(f"{t}[{p}]" for t, p in self._catch_up))
            self.consumer.resume(self._held)
            self._catch_up, self._held = {}, []

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        LOG.info("revoked %s", _describe(partitions))
        self._commit()
        self._catch_up, self._held = {}, []

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        LOG.warning("lost %s; their uncommitted events will be processed again by their new owner",
                    _describe(partitions))
        lost = {(tp.topic, tp.partition) for tp in partitions}
        if self.exactly_once and self._offsets:
            self.producer.abort_transaction(60)
            self.producer.begin_transaction()
            self._offsets.clear()
        else:
            for key in lost:
                self._offsets.pop(key, None)

    # --- metrics -------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The metrics document: counters per input step and table, and the consumer lag."""
        return {
            "instance": self.instance, "pid": os.getpid(), "group_id": self.config.group_id,
            "guarantee": self.config.processing_guarantee, "updated_at": time.time(),
            "interval_s": self.config.metrics_interval_ms / 1000,
            "steps": {topic: chain.snapshot() for topic, chain in self.chains.items()},
            "tables": self.tables.sizes() if self.tables else {},
            "table_changes": {name: {"applied": c[0], "failed": c[1]} for name, c in self._table_counts.items()},
            "dead_letters": self._dead_letters, "tombstones": self._tombstones,
            **self._lag(),
        }

    def _lag(self) -> dict[str, Any]:
        if self.consumer is None:
            return {"assigned": [], "lag": {"total": 0}}
        try:
            assigned = self.consumer.position(self.consumer.assignment())
        except KafkaException:
            return {"assigned": [], "lag": {"total": 0}}
        lag: dict[str, int] = {}
        for tp in assigned:
            _, high = self.consumer.get_watermark_offsets(tp, cached=True)
            if tp.offset >= 0 and high >= 0:
                lag[f"{tp.topic}[{tp.partition}]"] = max(high - tp.offset, 0)
        return {"assigned": [f"{tp.topic}[{tp.partition}]" for tp in assigned],
                "lag": {"total": sum(lag.values()), **lag}}

    def _write_metrics(self, state: str = "running") -> None:
        if self.metrics_path is None:
            return
        try:
            metrics.write(self.metrics_path, {**self.snapshot(), "state": state})
        except OSError as exc:
            LOG.warning("cannot write metrics to %s: %s", self.metrics_path, exc)


def _describe(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions) or "nothing"
