"""Bronze: Kafka ``cdc.*`` topics -> ``<ns>.bronze_<table>``, raw change events, exactly once.

One Structured Streaming query per table, with its own checkpoint. Each micro-batch is
appended with the Kafka offsets it consumed in the snapshot summary; before writing,
the batch drops every record at or below the offsets already committed. So a crash
between the Iceberg commit and the checkpoint (the batch is replayed) writes nothing
twice, and a lost checkpoint restarts from the offsets in the table, not from scratch.

A payload that is not a Debezium change event still lands, with ``parse_error`` set (and
its bytes in ``raw_value`` if they are not UTF-8): bronze never drops an event.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING

from cdclake.lakehouse import faults
from cdclake.lakehouse.configuration import BRONZE_OFFSETS_KEY, TABLE_PROPERTIES, LakehousePlan, TableRef
from cdclake.lakehouse.spark import ensure_namespace, latest_summary_value

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

BRONZE_DDL = """
    event_key string, event_value string, op string, lsn bigint, tx_id bigint, source_ts timestamp,
    deleted boolean, parse_error string, raw_value binary, kafka_topic string, kafka_partition int,
    kafka_offset bigint, kafka_ts timestamp, ingest_ts timestamp
"""
ENVELOPE = "struct<__op:string,__lsn:bigint,__txId:bigint,__source_ts_ms:bigint,__deleted:string>"
PARSE_ERROR = """CASE
    WHEN value IS NULL THEN 'tombstone: null value'
    WHEN event_value IS NULL OR NOT is_utf8 THEN 'value is not UTF-8 text'
    WHEN env IS NULL OR env.__op IS NULL THEN 'not a Debezium change event (no __op): invalid JSON or unwrapped'
    WHEN env.__op NOT IN ('c', 'u', 'd', 'r', 't', 'm') THEN concat('unknown __op ', env.__op)
    WHEN env.__lsn IS NULL AND env.__op <> 'r' THEN 'no __lsn: a change must carry its LSN (docs/events.md)'
    END"""
OnCommit = Callable[[TableRef], None]


def ensure_table(spark: SparkSession, plan: LakehousePlan, ref: TableRef) -> None:
    """Create ``bronze_<table>`` if missing: format v2, partitioned by day of ingest."""
    ensure_namespace(spark, plan)
    props = ", ".join(f"'{k}'='{v}'" for k, v in TABLE_PROPERTIES.items())
    spark.sql(f"CREATE TABLE IF NOT EXISTS {ref.bronze} ({BRONZE_DDL}) USING iceberg "
              f"PARTITIONED BY (days(ingest_ts)) TBLPROPERTIES ({props})")


def committed_offsets(spark: SparkSession, ref: TableRef) -> dict[int, int]:
    """Last Kafka offset per partition already in bronze (from the snapshot summary)."""
    _, value = latest_summary_value(spark, ref.bronze, BRONZE_OFFSETS_KEY)
    return {int(p): int(o) for p, o in json.loads(value).items()} if value else {}


def parse_events(frame: DataFrame) -> DataFrame:
    """Kafka records -> bronze rows; nothing is filtered out."""
    return frame.selectExpr(
        "CAST(key AS STRING) AS event_key", "value", "CAST(value AS STRING) AS event_value",
        "topic", "partition", "offset", "timestamp",
    ).selectExpr(
        "*", "value IS NULL OR CAST(event_value AS BINARY) = value AS is_utf8",
        f"from_json(event_value, '{ENVELOPE}') AS env",
    ).selectExpr(
        "event_key", "CASE WHEN is_utf8 THEN event_value END AS event_value",
        "env.__op AS op", "env.__lsn AS lsn", "env.__txId AS tx_id",
        "timestamp_millis(env.__source_ts_ms) AS source_ts", "env.__deleted = 'true' AS deleted",
        f"{PARSE_ERROR} AS parse_error",
        f"CASE WHEN ({PARSE_ERROR}) IS NOT NULL THEN value END AS raw_value",
        "topic AS kafka_topic", "partition AS kafka_partition", "offset AS kafka_offset",
        "timestamp AS kafka_ts", "current_timestamp() AS ingest_ts",
    )


class BatchWriter:
    """foreachBatch sink: idempotent append with the consumed offsets in the same commit."""

    def __init__(self, spark: SparkSession, ref: TableRef, on_commit: OnCommit | None = None):
        self.spark, self.ref, self.on_commit = spark, ref, on_commit

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        committed = committed_offsets(self.spark, self.ref)
        fresh = batch.where(_not_committed(committed)) if committed else batch
        fresh = fresh.persist()
        try:
            ends = {r[0]: r[1] for r in fresh.groupBy("kafka_partition").agg({"kafka_offset": "max"}).collect()}
            if ends:
                offsets = {**committed, **ends}
                summary = json.dumps({str(p): o for p, o in sorted(offsets.items())})
                with faults.commit("bronze.before_commit", self.spark, self.ref.bronze):
                    (fresh.writeTo(self.ref.bronze)
                     .option(f"snapshot-property.{BRONZE_OFFSETS_KEY}", summary)
                     .option("snapshot-property.cdclake.bronze.batch-id", str(batch_id))
                     .append())
                faults.point("bronze.after_commit", self.spark)
        finally:
            fresh.unpersist()
        if ends and self.on_commit is not None:
            self.on_commit(self.ref)


def _not_committed(committed: dict[int, int]) -> str:
    done = " OR ".join(f"(kafka_partition = {p} AND kafka_offset <= {o})" for p, o in sorted(committed.items()))
    return f"NOT ({done})"


def starting_offsets(topic: str, partitions: list[int], committed: dict[int, int]) -> str:
    """``startingOffsets`` for a query without a checkpoint: resume after bronze's offsets."""
    if not committed:
        return "earliest"
    # -2 means earliest; Spark wants every partition of the topic listed.
    return json.dumps({topic: {str(p): committed[p] + 1 if p in committed else -2 for p in partitions}})


def start(spark: SparkSession, plan: LakehousePlan, ref: TableRef, *, available_now: bool,
          on_commit: OnCommit | None = None, partitions: list[int] | None = None) -> StreamingQuery:
    """Start the bronze stream of one table.

    Args:
        spark: the session.
        plan: the lakehouse plan.
        ref: the table.
        available_now: drain what is in Kafka now, then stop; else trigger every
            ``plan.trigger_seconds``.
        on_commit: called with ``ref`` after each batch that appended rows (continuous silver).
        partitions: the topic's partitions, for resuming from bronze's offsets without a checkpoint.

    Returns:
        The running query.
    """
    ensure_table(spark, plan, ref)
    reader = (spark.readStream.format("kafka")
              .option("kafka.bootstrap.servers", plan.bootstrap)
              .option("subscribe", ref.topic)
              .option("startingOffsets", starting_offsets(ref.topic, partitions or [], committed_offsets(spark, ref)))
              .option("failOnDataLoss", "true"))
    if plan.max_offsets_per_trigger:
        reader = reader.option("maxOffsetsPerTrigger", str(plan.max_offsets_per_trigger))
    writer = (parse_events(reader.load()).writeStream
              .foreachBatch(BatchWriter(spark, ref, on_commit))
              .option("checkpointLocation", checkpoint(plan, ref))
              .queryName(f"bronze_{ref.base}"))
    writer = writer.trigger(availableNow=True) if available_now else writer.trigger(
        processingTime=f"{plan.trigger_seconds} seconds")
    return writer.start()


def checkpoint(plan: LakehousePlan, ref: TableRef) -> str:
    return f"{plan.checkpoints.rstrip('/')}/bronze/{ref.namespace}/{ref.base}"
