"""The Spark session: local (JDBC catalog + filesystem warehouse) or AWS (Glue + S3FileIO),
rendered from one plan by :func:`as_spark_conf`.

PySpark is imported lazily, so the CLI and the unit tests start without a JVM.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cdclake.errors import NotInstalledError
from cdclake.lakehouse.configuration import LakehousePlan
from cdclake.lakehouse.exceptions import LakehouseError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

ICEBERG_EXTENSIONS = "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions"
SPARK_CATALOG = "org.apache.iceberg.spark.SparkCatalog"
GLUE_CATALOG = "org.apache.iceberg.aws.glue.GlueCatalog"
S3_FILE_IO = "org.apache.iceberg.aws.s3.S3FileIO"
JVM_UTC = "-Duser.timezone=UTC"
LOG4J2_TO_FILE = """\
# Written by cdclake: Spark's, Hadoop's and Iceberg's log lines go to this file, not the console.
rootLogger.level = warn
rootLogger.appenderRef.file.ref = file
appender.file.type = File
appender.file.name = file
appender.file.fileName = {path}
appender.file.append = true
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = %d{{yyyy-MM-dd HH:mm:ss.SSS}} %p %c{{1}}: %m%n%ex
logger.jetty.name = org.sparkproject.jetty
logger.jetty.level = warn
"""


def catalog_conf(plan: LakehousePlan) -> dict[str, str]:
    """The ``spark.sql.catalog.<name>.*`` keys (runtime-settable, so Glue jobs use them too)."""
    cat = plan.catalog
    prefix = f"spark.sql.catalog.{cat.name}"
    conf = {prefix: SPARK_CATALOG, f"{prefix}.warehouse": cat.warehouse, f"{prefix}.cache-enabled": "false"}
    if cat.backend == "glue":
        conf.update({f"{prefix}.catalog-impl": GLUE_CATALOG, f"{prefix}.io-impl": S3_FILE_IO})
        conf.update({f"{prefix}.{key}": value for key, value in glue_client_properties(cat).items()})
        return conf
    conf.update({
        f"{prefix}.type": "jdbc",
        f"{prefix}.uri": cat.jdbc_url,
        f"{prefix}.jdbc.user": cat.user or "",
        # v1 layout: pyiceberg's SqlCatalog reads the same tables.
        f"{prefix}.jdbc.schema-version": "V1",
    })
    if cat.password is not None:
        # Spark redacts keys matching (?i)password in its UI and logs.
        conf[f"{prefix}.jdbc.password"] = cat.password.get_secret_value()
    return conf


def glue_client_properties(cat) -> dict[str, str]:
    """Iceberg's AWS client properties (region, endpoint overrides) for a glue catalog."""
    props = {"client.region": cat.region, "glue.endpoint": cat.glue_endpoint, "s3.endpoint": cat.s3_endpoint,
             "s3.path-style-access": "true" if cat.s3_path_style_access else None}
    return {key: value for key, value in props.items() if value}


def as_spark_conf(plan: LakehousePlan, jars: list[str] | None = None,
                  log_config: Path | None = None) -> dict[str, str]:
    """Render the plan into Spark conf: Iceberg extensions, the catalog, UTC, small-machine defaults.

    Args:
        plan: the lakehouse plan.
        jars: jar paths for ``spark.jars`` (local runs; Glue brings its own).
        log_config: a log4j2 configuration for the driver (see :func:`log_to_file`).

    Returns:
        Spark conf keys to values; ``spark.conf`` from pipeline.yaml wins over ours.
    """
    driver_options = f"{JVM_UTC} -Dlog4j2.configurationFile={log_config.as_uri()}" if log_config else JVM_UTC
    conf = {
        "spark.sql.extensions": ICEBERG_EXTENSIONS,
        "spark.sql.defaultCatalog": plan.catalog.name,
        "spark.sql.session.timeZone": "UTC",
        "spark.driver.extraJavaOptions": driver_options,
        "spark.executor.extraJavaOptions": JVM_UTC,
        "spark.sql.shuffle.partitions": "4",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.streaming.stopGracefullyOnShutdown": "true",
        "spark.sql.iceberg.handle-timestamp-without-timezone": "true",
        **catalog_conf(plan),
    }
    if plan.spark_master.startswith("local"):
        conf.update({"spark.driver.bindAddress": "127.0.0.1", "spark.driver.host": "127.0.0.1",
                     "spark.driver.memory": plan.driver_memory})
    if jars:
        conf["spark.jars"] = ",".join(jars)
    conf.update(plan.spark_conf)
    return conf


def local_jars() -> list[str]:
    """The Iceberg runtime, Kafka source and JDBC driver jars resolved by ``cdclake setup``."""
    from cdclake.install.jvm import installed

    return sorted(str(p) for p in installed("spark").glob("*.jar"))


def log_file(plan: LakehousePlan) -> Path | None:
    """Where a local Spark's engine logs go (None: to the console, as Spark does by default)."""
    return plan.log_dir / "spark.log" if plan.log_dir and plan.spark_master.startswith("local") else None


def log_to_file(path: Path) -> Path:
    """Write a log4j2 configuration that sends every engine log line to ``path``; returns its file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    config = path.with_name("log4j2-spark.properties")
    config.write_text(LOG4J2_TO_FILE.format(path=path))
    return config


def session(plan: LakehousePlan, app_name: str = "cdclake") -> SparkSession:
    """A SparkSession for the plan (the active one, reconfigured, if it already exists).

    A local session logs to :func:`log_file` (the NativeCodeLoader, trigger and shutdown
    warnings users learn to ignore) when the plan has a ``log_dir``.

    Raises:
        NotInstalledError: pyspark or the jars are missing, with the install command.
        CatalogNameError: ``lakehouse.catalog`` differs from the one holding the tables.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise NotInstalledError("pyspark is not installed; pip install 'cdclake[lakehouse]'") from exc
    from cdclake.lakehouse.catalog import check_catalog_name

    check_catalog_name(plan)
    active = SparkSession.getActiveSession()
    if active is not None:
        for key, value in catalog_conf(plan).items():
            active.conf.set(key, value)
        return active
    local = plan.spark_master.startswith("local")
    builder = SparkSession.builder.appName(app_name)
    if local:
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        builder = builder.master(plan.spark_master)
    # Elsewhere (spark-submit --master, AWS Glue) the launcher chose the master and the jars.
    jars = local_jars() if local else []
    logs = log_file(plan)
    for key, value in as_spark_conf(plan, jars, log_to_file(logs) if logs else None).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    check_versions(spark.version, iceberg_version(spark))
    return spark


# The pinned pair (DESIGN §2, AWS Glue 5.1): the job scripts are tested against these lines.
SPARK_LINE, ICEBERG_LINE = "3.5", "1.10"


def iceberg_version(spark: SparkSession) -> str | None:
    """The Iceberg runtime's version on the session's classpath, or None when it is missing."""
    try:
        return str(jvm(spark).org.apache.iceberg.IcebergBuild.version())
    except Exception:  # noqa: BLE001 - py4j raises a generic error for a class it cannot find
        return None


def check_versions(spark_version: str, iceberg: str | None) -> None:
    """Raise when the session is not the pinned Spark/Iceberg pair, naming what runs and the fix."""
    if iceberg is None:
        raise LakehouseError("the Iceberg Spark runtime is not on the Spark classpath; run `cdclake setup` "
                             f"(locally), or on Glue pass --datalake-formats iceberg (Iceberg {ICEBERG_LINE}.x)")
    if not spark_version.startswith(SPARK_LINE + ".") or not iceberg.startswith(ICEBERG_LINE + "."):
        raise LakehouseError(f"cdclake's jobs need Spark {SPARK_LINE}.x with Iceberg {ICEBERG_LINE}.x (as on AWS "
                             f"Glue 5.1), this session runs Spark {spark_version} with Iceberg {iceberg}; use "
                             "the pinned pair (`cdclake setup`, or Glue version 5.1)")


def jvm(spark: SparkSession) -> Any:
    return spark.sparkContext._jvm


def ensure_namespace(spark: SparkSession, plan: LakehousePlan) -> None:
    spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {plan.catalog.name}.{plan.namespace}")


def load_table(spark: SparkSession, name: str) -> Any:
    """The Java ``org.apache.iceberg.Table`` for a catalog-qualified name, freshly loaded."""
    return jvm(spark).org.apache.iceberg.spark.Spark3Util.loadIcebergTable(spark._jsparkSession, name)


def table_exists(spark: SparkSession, name: str) -> bool:
    return bool(spark.catalog.tableExists(name))


def latest_summary_value(spark: SparkSession, name: str, key: str) -> tuple[int | None, str | None]:
    """Walk back from the current snapshot to the newest one whose summary has ``key``.

    Maintenance commits (compaction, manifest rewrites) carry no cdclake key, so the newest
    snapshot that does is the layer's committed position.

    Returns:
        (current snapshot id or None for an empty table, the value or None).
    """
    table = load_table(spark, name)
    current = table.currentSnapshot()
    summary = newest_summary(table, lambda s: s.get(key) is not None)
    return (current.snapshotId() if current is not None else None), (summary.get(key) if summary else None)


def data_file_rows(table: Any) -> int:
    """The rows in an Iceberg table's data files, from its current snapshot's summary (no scan;
    rows that delete files remove still count)."""
    current = table.currentSnapshot()
    return int(current.summary().get("total-records") or 0) if current is not None else 0


def newest_summary(table: Any, wanted: Callable[[Any], bool]) -> Any:
    """The summary of the newest snapshot, walking back its parents, that ``wanted`` accepts (or None)."""
    snapshot = table.currentSnapshot()
    while snapshot is not None:
        if wanted(snapshot.summary()):
            return snapshot.summary()
        parent = snapshot.parentId()
        snapshot = table.snapshot(parent) if parent is not None else None
    return None


def with_commit_properties(spark: SparkSession, properties: dict[str, str], action) -> Any:
    """Run ``action()`` so every Iceberg commit it makes carries ``properties`` in its summary.

    This is how silver commits its watermark atomically with the MERGE: the position lands
    in the very snapshot that holds the data.
    """
    from pyspark.java_gateway import ensure_callback_server_started

    gateway = spark.sparkContext._gateway
    ensure_callback_server_started(gateway)
    jv = jvm(spark)
    props = jv.java.util.HashMap()
    for key, value in properties.items():
        props.put(key, value)
    outcome: dict[str, Any] = {}

    class _Callable:
        def call(self):
            try:
                outcome["value"] = action()
            except BaseException as exc:  # re-raised below, with its Python type intact
                outcome["error"] = exc
                raise
            return None

        class Java:
            implements = ["java.util.concurrent.Callable"]

    error_class = jv.java.lang.Class.forName("java.lang.RuntimeException")
    try:
        jv.org.apache.iceberg.spark.CommitMetadata.withCommitProperties(props, _Callable(), error_class)
    except Exception as exc:
        if "error" in outcome:
            raise outcome["error"] from exc
        raise
    return outcome.get("value")


# Iceberg's answers to a commit that lost the optimistic-concurrency race: the table moved
# on and the retried commit conflicts (validation), or the retries ran out.
COMMIT_CONFLICTS = ("org.apache.iceberg.exceptions.ValidationException",
                    "org.apache.iceberg.exceptions.CommitFailedException")


def commit_conflict(exc: BaseException) -> str | None:
    """The first line of Iceberg's conflict error inside ``exc`` (Python and Java causes), else None."""
    seen: BaseException | None = exc
    while seen is not None:
        throwable = getattr(seen, "java_exception", None) or getattr(seen, "_origin", None)
        while throwable is not None:
            name = str(throwable.getClass().getName())
            if name in COMMIT_CONFLICTS:
                short, message = name.rsplit(".", 1)[1], str(throwable.getMessage() or "").strip()
                return f"{short}: {message.splitlines()[0]}" if message else short
            throwable = throwable.getCause()
        seen = seen.__cause__ or seen.__context__
    return None
