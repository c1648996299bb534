"""``cdclake maintain``: compaction and cleanup of every table in the namespace.

Per table, in this order: for silver's ``tombstones_<table>``, drop the tombstones older
than ``lakehouse.tombstone_retention_hours``; ``rewrite_data_files`` (bin-pack), ``rewrite_position_delete_files``,
``expire_snapshots`` (older than the retention, default 7 days), ``remove_orphan_files``
(only files older than a safe age, default 72 h, so a running job's files are never
taken), ``rewrite_manifests``. Snapshots that hold a layer's position (bronze's offsets,
the bronze snapshot silver stopped at, silver's watermark, gold's inputs) are never
expired: the cut-off moves back to the oldest of them. ``--dry-run`` reports what each
step would do and changes nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from cdclake.lakehouse.configuration import (
    BRONZE_OFFSETS_KEY,
    GOLD_INPUTS_KEY,
    SILVER_WATERMARK_KEY,
    LakehousePlan,
)
from cdclake.lakehouse.spark import latest_summary_value, load_table

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

POSITION_KEYS = {"bronze_": BRONZE_OFFSETS_KEY, "silver_": SILVER_WATERMARK_KEY, "gold_": GOLD_INPUTS_KEY}


@dataclass
class TableMaintenance:
    table: str
    expire_before: str
    actions: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def tables(spark: SparkSession, plan: LakehousePlan) -> list[str]:
    """Every table of the namespace, catalog-qualified."""
    rows = spark.sql(f"SHOW TABLES IN {plan.catalog.name}.{plan.namespace}").collect()
    return sorted(f"{plan.catalog.name}.{plan.namespace}.{r.tableName}" for r in rows)


def protected_millis(spark: SparkSession, plan: LakehousePlan, name: str) -> list[int]:
    """Commit times of the snapshots that hold a layer's position in table ``name``."""
    short = name.rsplit(".", 1)[1]
    table = load_table(spark, name)
    ids = []
    for prefix, key in POSITION_KEYS.items():
        if short.startswith(prefix):
            current, value = latest_summary_value(spark, name, key)
            if value is not None:
                ids.append(_position_snapshot(table, current, key))
    if short.startswith("bronze_"):
        silver = f"{plan.catalog.name}.{plan.namespace}.silver_{short[len('bronze_'):]}"
        if spark.catalog.tableExists(silver):
            watermark = latest_summary_value(spark, silver, SILVER_WATERMARK_KEY)[1]
            ids.append(int(watermark) if watermark else None)
    return [table.snapshot(i).timestampMillis() for i in ids if i is not None and table.snapshot(i) is not None]


def _position_snapshot(table: Any, current: int | None, key: str) -> int | None:
    snapshot = table.snapshot(current) if current is not None else None
    while snapshot is not None and snapshot.summary().get(key) is None:
        parent = snapshot.parentId()
        snapshot = table.snapshot(parent) if parent is not None else None
    return snapshot.snapshotId() if snapshot is not None else None


def maintain_table(spark: SparkSession, plan: LakehousePlan, name: str, dry_run: bool) -> TableMaintenance:
    started = time.monotonic()
    now = datetime.now(timezone.utc)
    cutoff = now - timedelta(days=plan.retention_days)
    protected = protected_millis(spark, plan, name)
    if protected:
        cutoff = min(cutoff, datetime.fromtimestamp(min(protected) / 1000, timezone.utc))
    orphan_age = now - timedelta(hours=plan.orphan_age_hours)
    result = TableMaintenance(name, cutoff.isoformat())
    short = name.split(".", 1)[1]
    system = f"{plan.catalog.name}.system"
    ts = lambda moment: f"TIMESTAMP '{moment.strftime('%Y-%m-%d %H:%M:%S')}'"  # noqa: E731 (UTC session)
    if dry_run:
        result.actions = _dry_run(spark, name, cutoff)
        orphans = spark.sql(f"CALL {system}.remove_orphan_files(table => '{short}', "
                            f"older_than => {ts(orphan_age)}, dry_run => true)").collect()
        result.actions["orphan_files_to_remove"] = len(orphans)
    else:
        steps = {
            **_tombstone_pruning(name, now - timedelta(hours=plan.tombstone_retention_hours), ts),
            "rewrite_data_files": f"CALL {system}.rewrite_data_files(table => '{short}', strategy => 'binpack')",
            "rewrite_position_delete_files": f"CALL {system}.rewrite_position_delete_files(table => '{short}')",
            "expire_snapshots": f"CALL {system}.expire_snapshots(table => '{short}', older_than => {ts(cutoff)}, "
                                "retain_last => 1)",
            "remove_orphan_files": f"CALL {system}.remove_orphan_files(table => '{short}', "
                                   f"older_than => {ts(orphan_age)})",
            "rewrite_manifests": f"CALL {system}.rewrite_manifests(table => '{short}')",
        }
        for step, statement in steps.items():
            rows = spark.sql(statement).collect()
            result.actions[step] = rows[0].asDict() if len(rows) == 1 else {"files": len(rows)}
    result.seconds = time.monotonic() - started
    return result


def _tombstone_pruning(name: str, before: datetime, ts) -> dict[str, str]:
    if not name.rsplit(".", 1)[1].startswith("tombstones_"):
        return {}
    return {"prune_tombstones": f"DELETE FROM {name} WHERE _cdc_ts < {ts(before)}"}


def _dry_run(spark: SparkSession, name: str, cutoff: datetime) -> dict[str, Any]:
    files = spark.sql(f"SELECT content, count(*) AS n, sum(file_size_in_bytes) AS bytes FROM {name}.files "
                      "GROUP BY content").collect()
    by_content = {r.content: (r.n, r.bytes) for r in files}
    snapshots = spark.sql(f"SELECT count(*) AS n FROM {name}.snapshots WHERE committed_at < "
                          f"TIMESTAMP '{cutoff.strftime('%Y-%m-%d %H:%M:%S')}'").collect()[0].n
    manifests = spark.sql(f"SELECT count(*) AS n FROM {name}.manifests").collect()[0].n
    return {"data_files": by_content.get(0, (0, 0))[0], "data_bytes": by_content.get(0, (0, 0))[1] or 0,
            "position_delete_files": by_content.get(1, (0, 0))[0],
            "snapshots_older_than_cutoff": snapshots, "manifests": manifests}


def maintain(spark: SparkSession, plan: LakehousePlan, dry_run: bool = False, progress=print,
             only: list[str] | None = None) -> list[TableMaintenance]:
    """Maintain every table in the namespace (or those in ``only``)."""
    results = []
    for name in tables(spark, plan):
        if only and name.rsplit(".", 1)[1] not in only:
            continue
        result = maintain_table(spark, plan, name, dry_run)
        progress(f"{'[dry run] ' if dry_run else ''}{name}: {result.actions} ({result.seconds:.1f}s)")
        results.append(result)
    return results
