"""Gold: SQL model files rebuilt atomically from silver, all read at one consistent point.

A model is ``<models_dir>/gold/<name>.sql``, one SELECT; ``{{ users }}`` names the silver
table of source table ``users``. The same file renders for Spark (silver pinned to one
snapshot per table, ``VERSION AS OF``) and for PostgreSQL (the source tables), which is
how ``cdclake verify`` checks gold. ``CREATE OR REPLACE TABLE ... AS`` swaps the table in
one commit; the input snapshots are in its summary, so a rerun on unchanged silver is a
no-op.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cdclake.lakehouse.configuration import GOLD_INPUTS_KEY, TABLE_PROPERTIES, LakehousePlan, TableRef
from cdclake.lakehouse.exceptions import LakehouseError, ModelError
from cdclake.lakehouse.spark import latest_summary_value, load_table, table_exists, with_commit_properties

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.]*)\s*\}\}")


@dataclass(frozen=True)
class Model:
    name: str
    path: Path
    sql: str

    @property
    def inputs(self) -> list[str]:
        return sorted(set(PLACEHOLDER.findall(self.sql)))

    def table(self, plan: LakehousePlan) -> str:
        return f"{plan.catalog.name}.{plan.namespace}.{self.name}"

    def render(self, lookup) -> str:
        return PLACEHOLDER.sub(lambda m: lookup(m.group(1)), self.sql)


@dataclass
class GoldResult:
    model: str
    rebuilt: bool
    inputs: dict[str, int | None]
    seconds: float = 0.0


def load_models(plan: LakehousePlan) -> list[Model]:
    """The gold models of the plan's models dir whose inputs are all configured tables."""
    folder = plan.models_dir / "gold"
    if not folder.is_dir():
        raise ModelError(f"no gold models: {folder} does not exist; set lakehouse.models_dir to a folder "
                         "holding gold/<model>.sql files")
    models = []
    for path in sorted(folder.glob("*.sql")):
        model = Model(path.stem if path.stem.startswith("gold_") else f"gold_{path.stem}", path, _strip(path))
        if not model.inputs:
            raise ModelError(f"{path}: names no input table; refer to silver tables as {{{{ users }}}}")
        if all(_configured(plan, name) for name in model.inputs):
            models.append(model)
    return models


def _strip(path: Path) -> str:
    text = path.read_text().strip().rstrip(";")
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))


def _configured(plan: LakehousePlan, name: str) -> bool:
    try:
        plan.table(name)
        return True
    except LakehouseError:
        return False


def render_postgres(model: Model, plan: LakehousePlan) -> str:
    """The model over the source tables, for PostgreSQL."""
    def lookup(name: str) -> str:
        return str(plan.table(name).source)  # PostgreSQL's spelling, quoted where needed
    return model.render(lookup)


def render_spark(model: Model, plan: LakehousePlan, snapshots: dict[str, int | None]) -> str:
    def lookup(name: str) -> str:
        ref = plan.table(name)
        snapshot = snapshots[ref.silver]
        return f"{ref.silver} VERSION AS OF {snapshot}" if snapshot else ref.silver
    return model.render(lookup)


def pin_inputs(spark: SparkSession, plan: LakehousePlan, models: list[Model]) -> dict[str, int | None]:
    """The current snapshot of every silver input, taken once for all models."""
    refs: dict[str, TableRef] = {}
    for model in models:
        for name in model.inputs:
            ref = plan.table(name)
            refs[ref.silver] = ref
    pinned = {}
    for name, ref in sorted(refs.items()):
        if not table_exists(spark, name):
            raise ModelError(f"gold input {ref.silver_short} does not exist yet; run `cdclake run silver` first",
                             table=ref.source)
        snapshot = load_table(spark, name).currentSnapshot()
        pinned[name] = snapshot.snapshotId() if snapshot is not None else None
    return pinned


def run(spark: SparkSession, plan: LakehousePlan, only: list[str] | None = None) -> list[GoldResult]:
    """Rebuild every gold model whose inputs changed since its last build."""
    models = [m for m in load_models(plan) if not only or m.name in only]
    pinned = pin_inputs(spark, plan, models)
    return [build(spark, plan, model, pinned) for model in models]


def build(spark: SparkSession, plan: LakehousePlan, model: Model, pinned: dict[str, int | None]) -> GoldResult:
    started = time.monotonic()
    inputs = {plan.table(n).silver: pinned[plan.table(n).silver] for n in model.inputs}
    stamp = json.dumps(inputs, sort_keys=True)
    target = model.table(plan)
    if table_exists(spark, target) and latest_summary_value(spark, target, GOLD_INPUTS_KEY)[1] == stamp:
        return GoldResult(model.name, False, inputs)
    props = ", ".join(f"'{k}'='{v}'" for k, v in TABLE_PROPERTIES.items())
    statement = (f"CREATE OR REPLACE TABLE {target} USING iceberg TBLPROPERTIES ({props}) AS "
                 f"{render_spark(model, plan, pinned)}")
    with_commit_properties(spark, {GOLD_INPUTS_KEY: stamp}, lambda: spark.sql(statement))
    return GoldResult(model.name, True, inputs, time.monotonic() - started)
