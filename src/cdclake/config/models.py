"""Typed pipeline.yaml: validated once at the edge, then passed down as objects.

Managed components (``managed: local``) are started by ``cdclake up``; a component given
by address (``source.dsn``, ``kafka.bootstrap_servers``, ``connect.url``) is used as is.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal
from urllib.parse import quote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, field_validator, model_validator

from cdclake.config.exceptions import ConfigError
from cdclake.config.tables import TableId, check_unique
from cdclake.deploy.configuration import DeployConfig
from cdclake.monitoring.configuration import MonitoringConfig
from cdclake.orchestration.configuration import AirflowConfig
from cdclake.stream.configuration import StreamConfig

IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Model(BaseModel):
    # Unknown keys are rejected: a typo must never pass silently.
    model_config = ConfigDict(extra="forbid", validate_default=True)


def _check_ident(value: str, what: str) -> str:
    if not IDENT.match(value):
        raise ValueError(f"{what} {value!r} is not a plain SQL identifier (letters, digits, _)")
    return value


class ManagedOrAddress(Model):
    """A component cdclake either starts itself (``managed: local``) or reaches by address."""

    managed: Literal["local"] | None = None

    def _resolve_kind(self, address_key: str) -> None:
        if self.managed and getattr(self, address_key):
            raise ValueError(f"give either managed: local or {address_key}, not both")
        if not self.managed and not getattr(self, address_key):
            self.managed = "local"

    @property
    def is_managed(self) -> bool:
        return self.managed == "local"


class SourceConfig(ManagedOrAddress):
    """The PostgreSQL database whose tables are captured."""

    dsn: str | None = Field(None, description="postgresql://user@host:port/db, password not included")
    password: SecretStr | None = Field(None, description="from CDCLAKE__SOURCE__PASSWORD only")
    password_file: Path | None = None
    database: str = "cdc_demo"
    port: int = Field(54329, ge=1, le=65535, description="port of the managed local cluster")
    tables: list[str] = Field(default_factory=list, description="schema.table as PostgreSQL writes it: "
                                                                  "'sales.\"Sales Lines\"', users (public)")
    publication: str = "dbz_publication"
    slot: str = "debezium_slot"
    capture_user: str = "cdclake_debezium"
    cdc_schema: str = Field("cdclake", description="schema of the heartbeat and signal tables")
    max_slot_wal_keep_size: str = "10GB"
    key_columns: dict[str, list[str]] = Field(
        default_factory=dict, description="for a table without a primary key: a unique column set silver keys "
                                          "it by (Debezium's message.key.columns); needs REPLICA IDENTITY FULL")

    @field_validator("publication", "slot", "capture_user", "cdc_schema", "database")
    @classmethod
    def _identifiers(cls, value: str, info) -> str:
        return _check_ident(value, info.field_name)

    @field_validator("tables")
    @classmethod
    def _qualify(cls, tables: list[str]) -> list[TableId]:
        out = list(dict.fromkeys(TableId.parse(t) for t in tables))
        check_unique(out)
        return out

    @field_validator("dsn")
    @classmethod
    def _no_password_in_dsn(cls, dsn: str | None) -> str | None:
        if dsn is None:
            return None
        parts = urlsplit(dsn)
        if parts.scheme not in ("postgresql", "postgres"):
            raise ValueError("dsn must start with postgresql://")
        if parts.password:
            raise ValueError(
                "dsn holds a password; remove it and set CDCLAKE__SOURCE__PASSWORD or source.password_file"
            )
        return dsn

    @model_validator(mode="after")
    def _one_kind(self) -> SourceConfig:
        self._resolve_kind("dsn")
        self._database_from_dsn()
        self._qualify_key_columns()
        return self

    def _qualify_key_columns(self) -> None:
        qualified = {}
        for table, columns in self.key_columns.items():
            name = TableId.parse(table)
            if name not in self.tables:
                raise ValueError(f"source.key_columns names {table!r}, which is not in source.tables")
            if not columns:
                raise ValueError(f"source.key_columns[{table!r}] is empty; name the unique column set")
            qualified[name] = list(columns)
        self.key_columns = qualified

    def _database_from_dsn(self) -> None:
        """source.database is the DSN's database: taken from it, or an error when they differ."""
        in_dsn = urlsplit(self.dsn).path.lstrip("/") if self.dsn else ""
        if not in_dsn or in_dsn == self.database:
            return
        if "database" in self.model_fields_set:
            raise ValueError(f"source.dsn names database {in_dsn!r} but source.database is {self.database!r}; "
                             f"make them the same (or drop source.database: it defaults to the DSN's)")
        self.database = _check_ident(in_dsn, "the database in source.dsn")

    def with_tables(self, tables: list[str], **changes) -> SourceConfig:
        """A copy capturing ``tables`` (parsed like source.tables: ``model_copy`` alone would not)."""
        return self.model_copy(update={"tables": [TableId.parse(t) for t in tables], **changes})

    def resolve_table(self, name: str) -> TableId:
        """The configured table a user named: ``schema.table``, or ``table`` for ``public``,
        quoted as in PostgreSQL (``'sales."Sales Lines"'``).

        Every command that takes a table (``run -t``, ``verify``, ``rebuild``, ``maintain -t``,
        ``connector snapshot``, the job script's ``--tables``) resolves it here, before any work.

        Example:
            >>> SourceConfig(tables=["users", "sales.orders"]).resolve_table("users")
            'public.users'

        Raises:
            ConfigError: not a configured table (or not a table name); the message lists the configured ones.
        """
        try:
            qualified = TableId.parse(name)
        except ValueError as exc:
            raise ConfigError(str(exc), key="source.tables") from exc
        if qualified in self.tables:
            return self.tables[self.tables.index(qualified)]
        known = ", ".join(self.tables) or "none"
        raise ConfigError(f"unknown table {name!r}; configured tables (source.tables): {known}. "
                          "Name one as schema.table, or table for the public schema (quote mixed-case "
                          "names: 'sales.\"Sales Lines\"')", key="source.tables")


class KafkaConfig(ManagedOrAddress):
    """Kafka brokers, and the defaults for the topics cdclake creates."""

    bootstrap_servers: str | None = None
    nodes: Literal[1, 3] = Field(1, description="managed local: 1 combined node or the 3-node quorum")
    port: int = Field(19092, ge=1024, le=65000, description="first broker port; node i uses port + 2*(i-1)")
    heap: str = "1g"
    topic_prefix: str = "cdc"
    partitions: int = Field(6, ge=1)
    replication_factor: int | None = Field(None, ge=1, description="default: min(3, brokers)")

    @model_validator(mode="after")
    def _one_kind(self) -> KafkaConfig:
        self._resolve_kind("bootstrap_servers")
        if self.replication_factor is None:
            self.replication_factor = min(3, self.nodes) if self.is_managed else 1
        if self.is_managed and self.replication_factor > self.nodes:
            raise ValueError(f"replication_factor {self.replication_factor} exceeds the {self.nodes} local node(s)")
        # The managed 3-node quorum runs min.insync.replicas=2 (stack/kafka.py min_isr): a topic
        # with fewer replicas could never take an acks=all write, which Debezium's producer uses.
        if self.is_managed and self.nodes == 3 and self.replication_factor < 2:
            raise ValueError(f"replication_factor {self.replication_factor} is below the 3-node cluster's "
                             "min.insync.replicas=2: every acks=all write would fail; use 3 (or 2)")
        return self

    @property
    def bootstrap(self) -> str:
        if self.bootstrap_servers:
            return self.bootstrap_servers
        return ",".join(f"127.0.0.1:{self.port + 2 * i}" for i in range(self.nodes))


class ConnectConfig(ManagedOrAddress):
    """The Kafka Connect cluster that runs Debezium."""

    url: str | None = None
    port: int = Field(8083, ge=1, le=65535, description="REST port of worker 1; worker i uses port + i - 1")
    heap: str = "1g"
    workers: int = Field(1, ge=1, le=4, description="managed local: Connect workers in the group; 2 for the "
                                                    "reference's failover (a dead worker's task moves)")
    group_id: str = "cdclake-connect"
    connector_name: str = "cdclake-postgres"
    snapshot_mode: Literal["initial", "no_data", "when_needed", "initial_only"] = "initial"
    initial_load: Literal["debezium", "parallel"] = Field(
        "debezium", description="how a new connector's tables, and tables added later, get their existing rows: "
                                "Debezium's snapshot, or cdclake's parallel load at one exported snapshot straight "
                                "into bronze (the connector then starts with snapshot.mode no_data)")
    heartbeat_interval_ms: int = Field(10_000, ge=100)
    secrets_file: str | None = Field(
        None, description="path ON THE CONNECT WORKER of a properties file with password=...; "
                          "default: the local state dir's secrets/debezium.properties")
    password_env: str | None = Field(
        None, description="environment variable ON THE CONNECT WORKER holding the password (${env:...}); "
                          "the AWS deployment's Fargate tasks get CDCLAKE_SOURCE_PASSWORD from Secrets Manager")
    overrides: dict[str, str] = Field(default_factory=dict, description="extra Debezium connector keys")

    @model_validator(mode="after")
    def _one_kind(self) -> ConnectConfig:
        self._resolve_kind("url")
        if self.workers > 1 and not self.is_managed:
            raise ValueError(f"connect.workers {self.workers} applies to the managed local Connect only; with "
                             "connect.url the cluster is yours (on AWS: deploy.aws.connect_tasks)")
        return self

    @property
    def endpoint(self) -> str:
        return (self.url or f"http://127.0.0.1:{self.port}").rstrip("/")


class LakehouseConfig(Model):
    """The Iceberg catalog and warehouse."""

    catalog: str = "lake"
    namespace: str = "cdc_db"
    warehouse: str | None = Field(None, description="default: file://<state dir>/warehouse")
    backend: Literal["jdbc", "glue"] = "jdbc"
    catalog_database: str = Field("cdclake_catalog", description="jdbc backend: database holding the catalog")
    checkpoints: str | None = Field(None, description="streaming checkpoints; default: file://<state dir>/checkpoints")
    input_topic_prefix: str | None = Field(
        None, description="topics bronze reads: default kafka.topic_prefix (cdc.*); 'bronze' behind a stream processor")
    trigger_interval_seconds: int = Field(10, ge=1, description="continuous mode: micro-batch trigger interval")
    max_offsets_per_trigger: int | None = Field(None, ge=1, description="bronze: cap on records per micro-batch")
    models_dir: str | None = Field(None, description="gold models: gold/*.sql, their properties and data tests in "
                                                     "gold/*.yml; default: the bundled demo models/")
    snapshot_retention_days: int = Field(7, ge=1, description="maintain: expire snapshots older than this")
    orphan_file_age_hours: int = Field(72, ge=24, description="maintain: only delete orphan files older than this")
    tombstone_retention_hours: int = Field(
        168, ge=1, description="silver keeps deleted keys' tombstones this long; must cover Debezium's replay window")
    aws_region: str | None = Field(None, description="glue backend: AWS region of the Glue catalog and S3")
    glue_endpoint: str | None = Field(
        None, description="glue backend: Glue API endpoint override (LocalStack, moto); default: the region's")
    s3_endpoint: str | None = Field(
        None, description="glue backend: S3 endpoint override (MinIO, LocalStack, moto); default: the region's")
    s3_path_style_access: bool = Field(
        False, description="glue backend: path-style S3 URLs (http://host/bucket/key), as MinIO and moto need")

    @field_validator("catalog", "namespace", "catalog_database")
    @classmethod
    def _identifiers(cls, value: str, info) -> str:
        return _check_ident(value, info.field_name)


class SparkConfig(Model):
    """Where the Spark jobs run and any extra Spark conf."""

    master: str = "local[2]"
    driver_memory: str = "3g"
    conf: dict[str, str] = Field(default_factory=dict)

    @field_validator("conf", mode="before")
    @classmethod
    def _as_strings(cls, conf):
        # YAML turns `true` and `8` into bool and int; Spark conf values are strings.
        if isinstance(conf, dict):
            return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in conf.items()}
        return conf


class Pipeline(Model):
    """The whole of pipeline.yaml."""

    source: SourceConfig = Field(default_factory=SourceConfig)
    kafka: KafkaConfig = Field(default_factory=KafkaConfig)
    connect: ConnectConfig = Field(default_factory=ConnectConfig)
    lakehouse: LakehouseConfig = Field(default_factory=LakehouseConfig)
    spark: SparkConfig = Field(default_factory=SparkConfig)
    stream: StreamConfig = Field(default_factory=StreamConfig)
    airflow: AirflowConfig = Field(default_factory=AirflowConfig)
    deploy: DeployConfig = Field(default_factory=DeployConfig)
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)

    _path: Path = PrivateAttr(default=Path("pipeline.yaml"))

    @model_validator(mode="after")
    def _topics_fit(self) -> Pipeline:
        check_unique(self.source.tables, self.kafka.topic_prefix)
        return self

    @property
    def path(self) -> Path:
        return self._path

    @property
    def state_dir(self) -> Path:
        """``.cdclake/`` beside the config file: data, logs, pid files, local secrets."""
        return self._path.resolve().parent / ".cdclake"

    @property
    def warehouse(self) -> str:
        return self.lakehouse.warehouse or (self.state_dir / "warehouse").as_uri()


def with_password(dsn: str, password: SecretStr | None) -> str:
    """Put a password into a DSN for a driver; never log the result."""
    if password is None:
        return dsn
    parts = urlsplit(dsn)
    user = parts.username or ""
    netloc = f"{quote(user, safe='')}:{quote(password.get_secret_value(), safe='')}@{parts.hostname}"
    if parts.port:
        netloc += f":{parts.port}"
    return parts._replace(netloc=netloc).geturl()


def mask_dsn(dsn: str) -> str:
    """A DSN fit for logs: any password replaced by ``***``."""
    parts = urlsplit(dsn)
    if not parts.password:
        return dsn
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return parts._replace(netloc=netloc).geturl()
