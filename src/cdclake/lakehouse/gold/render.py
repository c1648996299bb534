"""A model's SQL for each engine: Spark over pinned snapshots, PostgreSQL over the source tables.

The same file renders for both; the PostgreSQL form is how ``cdclake verify`` checks gold.
There a ``ref()`` reads the parent model computed by PostgreSQL too (a temporary view),
never the gold table, so a chain of models is checked from the source end to end.
"""

from __future__ import annotations

from cdclake.lakehouse.configuration import LakehousePlan
from cdclake.lakehouse.gold.project import Model, Project, Reference


def pinned(table: str, snapshot: int | None) -> str:
    """``table VERSION AS OF <id>``: the one point every model of a run reads."""
    return f"{table} VERSION AS OF {snapshot}" if snapshot else table


def spark_lookup(plan: LakehousePlan, silver: dict[str, int | None], gold: dict[str, int | None]):
    """Reference -> Spark relation: silver at its pinned snapshot, a gold model at the one built."""
    def lookup(reference: Reference) -> str:
        if reference.kind == "ref":
            return pinned(f"{plan.catalog.name}.{plan.namespace}.{reference.name}", gold[reference.name])
        name = plan.table(reference.name).silver
        return pinned(name, silver[name])
    return lookup


def render_spark(model: Model, plan: LakehousePlan, silver: dict[str, int | None],
                 gold: dict[str, int | None] | None = None) -> str:
    return model.render(spark_lookup(plan, silver, gold or {}))


def render_postgres(model: Model, plan: LakehousePlan) -> str:
    """The model over the source tables; a ref() reads the temporary view of :func:`postgres_views`."""
    def lookup(reference: Reference) -> str:
        if reference.kind == "ref":
            return f'pg_temp."{reference.name}"'
        return str(plan.table(reference.name).source)  # PostgreSQL's spelling, quoted where needed
    return model.render(lookup)


def postgres_views(project: Project, model: Model, plan: LakehousePlan) -> list[str]:
    """``CREATE TEMPORARY VIEW`` of each model ``model`` reads, parents first."""
    order = [name for name in project.models if name in project.ancestors(model.name)]
    return [f'CREATE TEMPORARY VIEW "{name}" AS {render_postgres(project.models[name], plan)}' for name in order]
