"""The Debezium PostgreSQL connector, rendered from pipeline.yaml (docs/events.md).

Tuning, for throughput with bounded latency on one Connect task:
- ``max.batch.size`` 4096 / ``max.queue.size`` 16384: Debezium hands Connect bigger
  batches (defaults 2048 / 8192), fewer poll round trips under load;
- ``poll.interval.ms`` 5 (default 500): Connect takes whatever is queued every 5 ms
  instead of waiting for a full batch; measured with bench/capture on 2 cores, 25 ms gave
  p50 0.5-0.8 s near saturation, 5 ms gives p50 ~30 ms / p99 140-240 ms at 19-30k
  changes/s, and more throughput, not less (the queue never backs up);
- producer ``linger.ms`` 2, ``batch.size`` 512 KiB, ``lz4``: batches still fill at high
  rates (the producer batches while the previous request is in flight) for 2 ms of
  added latency at most; lz4 is the cheapest codec on CPU;
- producer ``acks=all`` + idempotence: a broker failover never loses or reorders a change.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from cdclake.config import Pipeline
from cdclake.config.tables import TableId, include_pattern, regex_literal, topic_name
from cdclake.source.prepare import SIGNAL_TABLE, capture_tables, secrets_file

POSTGRES_CONNECTOR = "io.debezium.connector.postgresql.PostgresConnector"
# ExtractNewRecordState would drop TRUNCATE events; ours flattens them (jvm/debezium/src).
TRUNCATE = "io.cdclake.connect.TruncateAsChange"
# Each table's events to the topic config/tables.py names (Debezium's own names can collide).
ROUTER = "io.cdclake.connect.RouteByTable"
# Every other change, the envelope flattened to its row plus metadata (docs/events.md): what
# Debezium's ExtractNewRecordState writes with delete rewrite and add.fields, plus
# __cdclake_before, the old row as JSON text (with REPLICA IDENTITY FULL the whole row, which an
# update of a table without a key needs to know which of its rows changed, lakehouse/multiset.py),
# in one copy of the row instead of three (a third of Connect's CPU in a profile).
FLATTEN = "io.cdclake.connect.FlatChange"
JSON_CONVERTER = "org.apache.kafka.connect.json.JsonConverter"
TOAST_PLACEHOLDER = "__debezium_unavailable_value"

TUNING = {
    "max.batch.size": "4096",
    "max.queue.size": "16384",
    "poll.interval.ms": "5",
    "producer.override.linger.ms": "2",
    "producer.override.batch.size": "524288",
    "producer.override.compression.type": "lz4",
    "producer.override.acks": "all",
    "producer.override.enable.idempotence": "true",
}


def topic_for(pipeline: Pipeline, table: TableId) -> str:
    """The CDC topic of a table: ``cdc.users`` for public.users, ``cdc.sales__orders`` for sales.orders."""
    return topic_name(pipeline.kafka.topic_prefix, table)


def table_topics(pipeline: Pipeline) -> dict[TableId, str]:
    """Captured table -> its topic, for the configured tables."""
    return {table: topic_for(pipeline, table) for table in pipeline.source.tables}


def route_map(pipeline: Pipeline) -> str:
    """``RouteByTable``'s ``topics``: ``schema.table=topic`` for every captured table, the parts
    percent-encoded (a dot too), so no name can break the list."""
    def part(identifier: str) -> str:
        return quote(identifier, safe="").replace(".", "%2E")

    return ",".join(f"{part(t.schema)}.{part(t.name)}={topic_for(pipeline, t)}" for t in capture_tables(pipeline))


def connector_config(pipeline: Pipeline) -> dict[str, str]:
    """The connector's config as Kafka Connect takes it. Holds no secret: the password is a
    ``${file:...}`` (or, with ``connect.password_env``, ``${env:...}``) reference the worker resolves."""
    src, connect = pipeline.source, pipeline.connect
    host, port, database = _database_address(pipeline)
    prefix = pipeline.kafka.topic_prefix
    password_file = connect.secrets_file or str(secrets_file(pipeline))
    password = (f"${{env:{connect.password_env}}}" if connect.password_env
                else f"${{file:{password_file}:password}}")
    config = {
        "connector.class": POSTGRES_CONNECTOR,
        "tasks.max": "1",
        "plugin.name": "pgoutput",
        "database.hostname": host,
        "database.port": str(port),
        "database.user": src.capture_user,
        "database.password": password,
        "database.dbname": database,
        "topic.prefix": prefix,
        "table.include.list": ",".join(include_pattern(t) for t in capture_tables(pipeline)),
        "publication.name": src.publication,
        "publication.autocreate.mode": "disabled",  # cdclake owns it (least privilege)
        "slot.name": src.slot,
        # A parallel initial load reads the rows itself (lakehouse/initial_load.py): the connector only streams.
        "snapshot.mode": "no_data" if connect.initial_load == "parallel" else connect.snapshot_mode,
        "decimal.handling.mode": "string",
        "time.precision.mode": "adaptive",
        # ISO 8601 with each field kept (numeric would fold months into 30.4375 days).
        "interval.handling.mode": "string",
        # Types Debezium does not know (tsquery, line, box, multiranges, composites, ...) arrive
        # as base64 of PostgreSQL's text instead of being dropped from the event.
        "include.unknown.datatypes": "true",
        "hstore.handling.mode": "json",
        "binary.handling.mode": "base64",
        "tombstones.on.delete": "false",
        # Debezium's context headers (connector name, task, version) on every record: nothing
        # downstream reads them, and building and converting them was a sixteenth of Connect's CPU.
        "extended.headers.enabled": "false",
        # Connect's JsonConverter writes a column's DEFAULT in place of an explicit NULL unless
        # told not to (KIP-581; FlatChange copies raw values): SET c = NULL must reach silver as NULL.
        "value.converter": JSON_CONVERTER,
        "value.converter.schemas.enable": "false",
        "value.converter.replace.null.with.default": "false",
        # TRUNCATE is a change like any other: silver empties the table at its position.
        "skipped.operations": "none",
        "heartbeat.interval.ms": str(connect.heartbeat_interval_ms),
        "heartbeat.action.query": heartbeat_query(pipeline),
        "signal.enabled.channels": "source",
        "signal.data.collection": f"{src.cdc_schema}.{SIGNAL_TABLE}",
        "incremental.snapshot.chunk.size": "4096",
        **message_key_columns(pipeline),
        "transforms": "route,truncate,flat",
        "transforms.route.type": ROUTER,
        "transforms.route.topics": route_map(pipeline),
        "transforms.truncate.type": TRUNCATE,
        "transforms.flat.type": FLATTEN,
        # Topics Connect creates itself (heartbeat, signal); table topics are made up front.
        "topic.creation.default.partitions": "1",
        "topic.creation.default.replication.factor": str(pipeline.kafka.replication_factor),
        **TUNING,
    }
    config.update(connect.overrides)
    return config


def message_key_columns(pipeline: Pipeline) -> dict[str, str]:
    """Debezium's ``message.key.columns`` for tables keyed by ``source.key_columns``."""
    keys = pipeline.source.key_columns
    if not keys:
        return {}
    return {"message.key.columns": ";".join(f"{include_pattern(TableId.parse(table))}:{','.join(map(regex_literal, cols))}"
                                            for table, cols in sorted(keys.items()))}


def heartbeat_query(pipeline: Pipeline) -> str:
    # A constant statement (no user input), so plain text is safe here.
    return (f"INSERT INTO {pipeline.source.cdc_schema}.heartbeat (id, ts) VALUES (1, now()) "
            "ON CONFLICT (id) DO UPDATE SET ts = excluded.ts")


def _database_address(pipeline: Pipeline) -> tuple[str, int, str]:
    src = pipeline.source
    if src.is_managed:
        return "127.0.0.1", src.port, src.database
    parts = urlsplit(src.dsn)
    return parts.hostname or "localhost", parts.port or 5432, parts.path.lstrip("/") or src.database
