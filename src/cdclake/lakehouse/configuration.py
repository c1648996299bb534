"""The lakehouse plan: pipeline.yaml resolved once, at the edge, into what the jobs need.

Jobs never read the environment or the config file; the CLI (or a job script's argument
parser) builds a :class:`LakehousePlan` with :func:`plan_from_pipeline` and passes it down.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
from pydantic import SecretStr

from cdclake.config import Pipeline
from cdclake.config.tables import DEFAULT_SCHEMA, TableId, lake_name, topic_name
from cdclake.lakehouse.exceptions import LakehouseError

BUNDLED_MODELS = Path(__file__).resolve().parents[3] / "models"  # in a source checkout

# Iceberg snapshot-summary keys that carry each layer's source position (DESIGN §4).
BRONZE_OFFSETS_KEY = "cdclake.bronze.kafka-offsets"
SILVER_WATERMARK_KEY = "cdclake.silver.bronze-snapshot-id"
SILVER_TRUNCATE_KEY = "cdclake.silver.truncated-before-lsn"
GOLD_INPUTS_KEY = "cdclake.gold.input-snapshots"  # every silver table beneath the model
GOLD_MODEL_KEY = "cdclake.gold.model"  # the model's SQL/tests digest and the gold models it read

# Table properties every cdclake table gets: format v2, merge-on-read row-level changes.
TABLE_PROPERTIES = {
    "format-version": "2",
    "write.delete.mode": "merge-on-read",
    "write.update.mode": "merge-on-read",
    "write.merge.mode": "merge-on-read",
    "write.parquet.compression-codec": "zstd",
}


@dataclass(frozen=True)
class TableRef:
    """One captured source table and the names it has downstream.

    Example:
        >>> ref = TableRef(TableId("sales", "orders"), "cdc.sales__orders", "lake", "cdc_db")
        >>> ref.silver, ref.bronze_short
        ('lake.cdc_db.silver_sales__orders', 'cdc_db.bronze_sales__orders')
    """

    source: TableId
    topic: str
    catalog: str
    namespace: str
    key_columns: tuple[str, ...] = ()  # source.key_columns, for a table without a primary key
    transformed: bool = False  # the stream layer filters or reshapes it: silver is not the source table

    def __post_init__(self):  # a table given as text (tests, job arguments) is parsed once, here
        object.__setattr__(self, "source", TableId.parse(self.source))

    @property
    def schema(self) -> str:
        return self.source.schema

    @property
    def table(self) -> str:
        return self.source.name

    @property
    def base(self) -> str:
        """The Iceberg name stem (config/tables.py ``lake_name``): ``users``, ``sales__orders``."""
        return lake_name(self.source)

    def qualified(self, layer: str) -> str:
        return f"{self.catalog}.{self.namespace}.{layer}_{self.base}"

    def short(self, layer: str) -> str:
        return f"{self.namespace}.{layer}_{self.base}"

    @property
    def bronze(self) -> str:
        return self.qualified("bronze")

    @property
    def silver(self) -> str:
        return self.qualified("silver")

    @property
    def tombstones(self) -> str:
        """Silver's memory of deleted keys (``tombstones_<table>``), see lakehouse/silver.py."""
        return self.qualified("tombstones")

    @property
    def bronze_short(self) -> str:
        return self.short("bronze")

    @property
    def silver_short(self) -> str:
        return self.short("silver")


@dataclass(frozen=True)
class CatalogSettings:
    """Where the Iceberg catalog lives: JDBC in PostgreSQL (local) or AWS Glue."""

    name: str
    backend: str
    warehouse: str
    jdbc_url: str | None = None
    user: str | None = None
    password: SecretStr | None = None
    sqlalchemy_url: SecretStr | None = None
    region: str | None = None
    glue_endpoint: str | None = None  # emulators (moto, LocalStack) and other Glue-compatible services
    s3_endpoint: str | None = None
    s3_path_style_access: bool = False

    def __repr__(self) -> str:  # never a password, even by accident
        return f"CatalogSettings(name={self.name!r}, backend={self.backend!r}, warehouse={self.warehouse!r})"


@dataclass(frozen=True)
class LakehousePlan:
    """Everything the bronze, silver and gold jobs need, resolved from the config."""

    catalog: CatalogSettings
    namespace: str
    tables: tuple[TableRef, ...]
    bootstrap: str
    checkpoints: str
    trigger_seconds: int = 10
    max_offsets_per_trigger: int | None = None
    spark_master: str = "local[2]"
    driver_memory: str = "2g"
    spark_conf: dict[str, str] = field(default_factory=dict)
    models_dir: Path = BUNDLED_MODELS
    retention_days: int = 7
    orphan_age_hours: int = 72
    tombstone_retention_hours: int = 168
    source_connect: Callable[..., psycopg.Connection] | None = field(default=None, compare=False, repr=False)
    log_dir: Path | None = None  # a local Spark's engine logs go to a file here; None: the console
    state_dir: Path | None = None  # the run ledger (monitoring/runs.py) lives here; None: not recorded
    configured_tables: tuple[TableId, ...] = ()  # every source.tables entry, though `tables` may be a -t selection

    def __post_init__(self):  # tables given as text (tests) are parsed once, as TableRef does
        object.__setattr__(self, "configured_tables", tuple(TableId.parse(t) for t in self.configured_tables))

    def table(self, name: str) -> TableRef:
        """The configured table called ``name``: as in source.tables (``users``, ``public.users``,
        ``'sales."Sales Lines"'``), by its silver name (``silver_users``, ``cdc_db.silver_users``),
        or by its bare table name when one configured table alone has it (gold's ``{{ orders }}``).

        Raises:
            LakehouseError: no such configured table, listing the configured ones.
        """
        try:
            source = TableId.parse(name)
        except ValueError:
            source = None
        for ref in self.tables:
            if ref.source == source or name in (f"silver_{ref.base}", ref.silver_short, ref.silver):
                return ref
        bare = [ref for ref in self.tables if source is not None and ref.table == source.name]
        if len(bare) == 1 and source.schema == DEFAULT_SCHEMA and "." not in name:
            return bare[0]
        known = ", ".join(r.source for r in self.tables) or "none"
        raise LakehouseError(f"unknown table {name!r}; configured tables (source.tables): {known}", table=name)

    def connect_source(self, **kwargs) -> psycopg.Connection:
        if self.source_connect is None:
            raise LakehouseError("this plan has no source connection; build it with plan_from_pipeline()")
        return self.source_connect(**kwargs)


def plan_from_pipeline(pipeline: Pipeline, tables: list[str] | None = None) -> LakehousePlan:
    """Resolve the pipeline into a plan (the only place the lakehouse reads config).

    Args:
        pipeline: the validated pipeline.
        tables: restrict to these source tables (default: ``source.tables``), named as
            :meth:`SourceConfig.resolve_table` takes them.

    Returns:
        The plan, holding the catalog password as a secret.

    Raises:
        ConfigError: a name in ``tables`` is not a configured table.
    """
    from cdclake.source import connection

    lake = pipeline.lakehouse
    wanted = [pipeline.source.resolve_table(t) for t in tables] if tables else pipeline.source.tables
    refs = tuple(_table_ref(pipeline, t) for t in wanted)
    return LakehousePlan(
        catalog=_catalog_settings(pipeline),
        namespace=lake.namespace,
        tables=refs,
        bootstrap=pipeline.kafka.bootstrap,
        checkpoints=lake.checkpoints or (pipeline.state_dir / "checkpoints").as_uri(),
        trigger_seconds=lake.trigger_interval_seconds,
        max_offsets_per_trigger=lake.max_offsets_per_trigger,
        spark_master=pipeline.spark.master,
        driver_memory=pipeline.spark.driver_memory,
        spark_conf=dict(pipeline.spark.conf),
        models_dir=_models_dir(pipeline),
        retention_days=lake.snapshot_retention_days,
        orphan_age_hours=lake.orphan_file_age_hours,
        tombstone_retention_hours=lake.tombstone_retention_hours,
        source_connect=functools.partial(connection.connect, pipeline),
        log_dir=pipeline.state_dir / "logs",
        state_dir=pipeline.state_dir,
        configured_tables=tuple(pipeline.source.tables),
    )


def _table_ref(pipeline: Pipeline, table: TableId) -> TableRef:
    topic, transformed = _input_topic(pipeline, table)
    return TableRef(table, topic, pipeline.lakehouse.catalog, pipeline.lakehouse.namespace,
                    key_columns=tuple(pipeline.source.key_columns.get(table, ())), transformed=transformed)


def _input_topic(pipeline: Pipeline, table: TableId) -> tuple[str, bool]:
    """The topic bronze reads for ``table``, and whether the stream layer transforms it.

    ``lakehouse.input_topic_prefix`` wins; with the stream layer on, a table it reads comes
    from the topic it writes that table to (stream/configuration.py), any other table from
    its CDC topic.
    """
    if pipeline.lakehouse.input_topic_prefix:
        return topic_name(pipeline.lakehouse.input_topic_prefix, table), False
    cdc = topic_name(pipeline.kafka.topic_prefix, table)
    stream = pipeline.stream
    if not stream.enabled:
        return cdc, False
    try:
        return stream.bronze_topic(cdc), stream.transforms(cdc)
    except ValueError as exc:
        raise LakehouseError(f"{exc} (table {table})") from exc


def _catalog_settings(pipeline: Pipeline) -> CatalogSettings:
    from cdclake.source import connection

    lake = pipeline.lakehouse
    if lake.backend == "glue":
        if not pipeline.lakehouse.warehouse:
            raise LakehouseError("lakehouse.backend is glue but lakehouse.warehouse is not set; "
                                 "set it to an s3:// path, e.g. s3://my-bucket/iceberg")
        return CatalogSettings(lake.catalog, "glue", pipeline.warehouse, region=lake.aws_region,
                               glue_endpoint=lake.glue_endpoint, s3_endpoint=lake.s3_endpoint,
                               s3_path_style_access=lake.s3_path_style_access)
    dsn = connection.admin_dsn(pipeline, lake.catalog_database)
    parts = urlsplit(dsn)
    return CatalogSettings(
        name=lake.catalog,
        backend="jdbc",
        warehouse=pipeline.warehouse,
        jdbc_url=f"jdbc:postgresql://{parts.hostname}:{parts.port or 5432}{parts.path}",
        user=parts.username,
        password=connection.admin_password(pipeline),
        sqlalchemy_url=SecretStr(connection.sqlalchemy_url(pipeline, lake.catalog_database)),
    )


def _models_dir(pipeline: Pipeline) -> Path:
    configured = pipeline.lakehouse.models_dir
    if not configured:
        return BUNDLED_MODELS
    path = Path(configured)
    return path if path.is_absolute() else pipeline.path.resolve().parent / path
