"""Gold: SQL models with dbt's ``ref()``, ``source()`` and data tests, built from one silver point.

- :mod:`.project`: the model files, their graph and their YAML properties (no Spark);
- :mod:`.render`: a model's SQL for Spark (pinned snapshots) and for PostgreSQL (verify);
- :mod:`.datatests`: ``not_null``, ``unique``, ``accepted_values``, ``relationships``;
- :mod:`.build`: the Spark run, in dependency order.
"""

from __future__ import annotations

from cdclake.lakehouse.configuration import LakehousePlan
from cdclake.lakehouse.gold.build import GoldResult, run
from cdclake.lakehouse.gold.project import Model, Project, load_project, model_name
from cdclake.lakehouse.gold.render import postgres_views, render_postgres, render_spark


def load_models(plan: LakehousePlan) -> list[Model]:
    """The models that can run on this plan, parents first."""
    return list(load_project(plan).models.values())


__all__ = ["GoldResult", "Model", "Project", "load_models", "load_project", "model_name", "postgres_views",
           "render_postgres", "render_spark", "run"]
