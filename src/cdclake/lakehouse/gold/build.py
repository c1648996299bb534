"""Gold on Spark: the selected models rebuilt in dependency order, all from one silver point.

Every silver table beneath the selected models is pinned once (its current snapshot);
each model reads silver ``VERSION AS OF`` that snapshot and its ``ref()`` parents at the
snapshot this run built (or found), so a chain of models is one consistent cut. A model
is computed once (cached), its data tests run on the result, and only when they pass does
``CREATE OR REPLACE TABLE ... AS`` swap the table in one commit: a failing test leaves the
previous table in place and skips the models that read it. The commit's summary records
the silver snapshots (``cdclake.gold.input-snapshots``) and the model's digest with the
gold snapshots it read (``cdclake.gold.model``), so a rerun on unchanged inputs and an
unchanged model is a no-op.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cdclake.lakehouse.configuration import GOLD_INPUTS_KEY, GOLD_MODEL_KEY, TABLE_PROPERTIES, LakehousePlan
from cdclake.lakehouse.exceptions import ModelError, ModelTestError
from cdclake.lakehouse.gold import datatests
from cdclake.lakehouse.gold.project import Model, Project, load_project
from cdclake.lakehouse.gold.render import spark_lookup
from cdclake.lakehouse.spark import latest_summary_value, load_table, table_exists, with_commit_properties

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@dataclass
class GoldResult:
    model: str
    rebuilt: bool
    inputs: dict[str, int | None] = field(default_factory=dict)
    seconds: float = 0.0
    tests: int = 0  # data tests that passed on this build
    error: str | None = None


def run(spark: SparkSession, plan: LakehousePlan, select: list[str] | tuple[str, ...] = ()) -> list[GoldResult]:
    """Rebuild the selected models (all by default) whose inputs or SQL changed since their last build.

    A model that fails (its SQL, or a data test) is reported in its result; the models
    that read it are skipped, the others still run.

    Raises:
        ModelError: the project itself is invalid (unknown ref/source, a cycle, a bad
            --select), or a silver input does not exist yet.
    """
    project = load_project(plan)
    models = project.select(select)
    silver = pin_silver(spark, plan, project, models)
    gold: dict[str, int | None] = {}
    results: dict[str, GoldResult] = {}
    for model in models:
        failed = [parent for parent in model.refs if parent in results and results[parent].error]
        if failed:
            results[model.name] = GoldResult(model.name, False, error=f"skipped: it refs {failed[0]}, which failed")
            continue
        try:
            for parent in model.refs:
                if parent not in gold:
                    gold[parent] = unselected_parent(spark, plan, project, project.models[parent], model, silver)
            results[model.name] = build(spark, plan, project, model, silver, gold)
        except ModelError as exc:
            results[model.name] = GoldResult(model.name, False, error=str(exc))
    return list(results.values())


def silver_beneath(plan: LakehousePlan, project: Project, model: Model) -> list[str]:
    """The silver tables ``model`` reads, directly or through its ancestors (and their tests)."""
    names = set()
    for m in [model, *(project.models[a] for a in project.ancestors(model.name))]:
        references = [*m.references, *(t.to for t in m.tests if t.to is not None)]
        names.update(plan.table(r.name).silver for r in references if r.kind == "source")
    return sorted(names)


def pin_silver(spark: SparkSession, plan: LakehousePlan, project: Project,
               models: list[Model]) -> dict[str, int | None]:
    """The current snapshot of every silver table beneath ``models``, taken once for all."""
    names = sorted({name for model in models for name in silver_beneath(plan, project, model)})
    pinned = {}
    for name in names:
        if not table_exists(spark, name):
            ref = plan.table(name)
            raise ModelError(f"gold input {ref.silver_short} does not exist yet; run `cdclake run silver` first",
                             table=ref.source)
        snapshot = load_table(spark, name).currentSnapshot()
        pinned[name] = snapshot.snapshotId() if snapshot is not None else None
    return pinned


def unselected_parent(spark: SparkSession, plan: LakehousePlan, project: Project, parent: Model, child: Model,
                      silver: dict[str, int | None]) -> int | None:
    """The snapshot of a parent this run does not build; it must stand at this run's silver point."""
    target = parent.table(plan)
    again = f"run `cdclake run gold --select +{child.name}` to build both from one point"
    if not table_exists(spark, target):
        raise ModelError(f"{child.name} refs {parent.name}, which is not built yet; {again}")
    current, stamp = latest_summary_value(spark, target, GOLD_INPUTS_KEY)
    wanted = {name: silver[name] for name in silver_beneath(plan, project, parent)}
    if stamp is None or json.loads(stamp) != wanted:
        raise ModelError(f"{child.name} refs {parent.name}, which was built from other silver snapshots than "
                         f"this run reads; {again}")
    return current


def digest(model: Model) -> str:
    """Changes with the model's SQL, its tests or its description: any of them rebuilds it."""
    text = json.dumps([model.sql, repr(model.tests), model.description])
    return hashlib.sha256(text.encode()).hexdigest()


def build(spark: SparkSession, plan: LakehousePlan, project: Project, model: Model, silver: dict[str, int | None],
          gold: dict[str, int | None]) -> GoldResult:
    """Build one model (or find it current); record the snapshot its children will read in ``gold``."""
    started = time.monotonic()
    inputs = {name: silver[name] for name in silver_beneath(plan, project, model)}
    stamp = json.dumps(inputs, sort_keys=True)
    marker = json.dumps({"sha256": digest(model), "refs": {r: gold[r] for r in model.refs}}, sort_keys=True)
    target = model.table(plan)
    if table_exists(spark, target) and _recorded(spark, target) == (stamp, marker):
        gold[model.name] = load_table(spark, target).currentSnapshot().snapshotId()
        return GoldResult(model.name, False, inputs)
    lookup = spark_lookup(plan, silver, gold)
    passed = _publish(spark, plan, model, lookup, {GOLD_INPUTS_KEY: stamp, GOLD_MODEL_KEY: marker})
    gold[model.name] = load_table(spark, target).currentSnapshot().snapshotId()
    return GoldResult(model.name, True, inputs, time.monotonic() - started, tests=passed)


def _recorded(spark: SparkSession, target: str) -> tuple[str | None, str | None]:
    return (latest_summary_value(spark, target, GOLD_INPUTS_KEY)[1],
            latest_summary_value(spark, target, GOLD_MODEL_KEY)[1])


def _publish(spark: SparkSession, plan: LakehousePlan, model: Model, lookup, summary: dict[str, str]) -> int:
    """Compute the model once, test it, then swap the table; returns the tests passed."""
    from pyspark.errors import PySparkException

    view = f"cdclake_gold_{model.name}"
    frame = None
    try:
        frame = spark.sql(model.render(lookup)).persist()
        frame.createOrReplaceTempView(view)
        failures = [f for test in model.tests if (f := datatests.outcome(spark, test, view, lookup))]
        if failures:
            raise ModelTestError(model.name, failures)
        props = ", ".join(f"'{k}'='{v}'" for k, v in TABLE_PROPERTIES.items())
        comment = f"COMMENT {datatests.literal(model.description)} " if model.description else ""
        statement = (f"CREATE OR REPLACE TABLE {model.table(plan)} USING iceberg {comment}"
                     f"TBLPROPERTIES ({props}) AS SELECT * FROM {view}")
        with_commit_properties(spark, summary, lambda: spark.sql(statement))
    except PySparkException as exc:
        reason = (getattr(exc, "desc", None) or str(exc)).strip().splitlines()[0]
        raise ModelError(f"{model.path}: Spark cannot build {model.name}: {reason}") from exc
    finally:
        spark.catalog.dropTempView(view)
        if frame is not None:
            frame.unpersist()
    return len(model.tests)
