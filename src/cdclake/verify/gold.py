"""Gold against the same model SQL run on PostgreSQL over the source tables."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from cdclake.lakehouse.configuration import LakehousePlan
from cdclake.lakehouse.gold import Model, Project, postgres_views, render_postgres
from cdclake.verify.normalize import canonical

EXAMPLES = 5


def value(v: Any) -> Any:
    """A number by its value: PostgreSQL's sum(bigint) is numeric where Spark's is bigint."""
    return canonical(Decimal(v)) if isinstance(v, int) and not isinstance(v, bool) else canonical(v)


@dataclass
class GoldReport:
    model: str
    source_rows: int = 0
    gold_rows: int = 0
    only_in_source: list[Any] = field(default_factory=list)
    only_in_gold: list[Any] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and not self.only_in_source and not self.only_in_gold


def verify_model(plan: LakehousePlan, project: Project, model: Model, catalog: Any) -> GoldReport:
    """Compare ``gold_<model>`` with its SQL computed by PostgreSQL (as multisets of rows).

    The models it refs are computed by PostgreSQL too (temporary views), from the source.
    """
    report = GoldReport(model.name)
    try:
        table = catalog.load_table(f"{plan.namespace}.{model.name}")
    except Exception as exc:  # pyiceberg's NoSuchTableError; keep the import lazy
        report.error = f"{plan.namespace}.{model.name} cannot be read ({type(exc).__name__}); run `cdclake run gold`"
        return report
    with plan.connect_source() as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        for statement in postgres_views(project, model, plan):
            conn.execute(statement)
        cur = conn.execute(render_postgres(model, plan))
        names = [d.name for d in cur.description]
        source = Counter(tuple(value(v) for v in row) for row in cur)
    arrow = table.scan(selected_fields=tuple(names)).to_arrow()
    gold = Counter(tuple(value(v) for v in row) for row in zip(*(arrow.column(n).to_pylist() for n in names)))
    report.source_rows, report.gold_rows = sum(source.values()), sum(gold.values())
    report.only_in_source = [dict(zip(names, r)) for r in list((source - gold).elements())[:EXAMPLES]]
    report.only_in_gold = [dict(zip(names, r)) for r in list((gold - source).elements())[:EXAMPLES]]
    return report
