"""The lakehouse job: ``spark-submit`` locally, or an AWS Glue 5.1 job script.

Arguments (Glue style, ``--KEY value``):

- ``--config``: pipeline.yaml (on Glue ship it with ``--extra-files``; it lands in the cwd);
- ``--layer``: bronze | silver | gold | all (default all);
- ``--mode``: available-now | continuous (default available-now);
- ``--tables``: comma-separated source tables, quoted as in PostgreSQL (default: all configured);
- ``--select``: comma-separated gold models, dbt-style (``+model`` adds its ancestors).

Example::

    spark-submit --jars "$(ls ~/.cache/cdclake/jvm/spark/*.jar | paste -sd,)" \\
        -m cdclake.lakehouse.jobs.run --config pipeline.yaml --layer bronze
"""

from __future__ import annotations

import sys

from cdclake.lakehouse.jobs.args import run_job

DEFAULTS = {"layer": "all", "mode": "available-now", "tables": "", "select": ""}


def main(argv: list[str] | None = None) -> int:
    return run_job(argv, DEFAULTS, _run)


def _run(args: dict[str, str]) -> None:
    from cdclake.config import load
    from cdclake.config.tables import split_list
    from cdclake.lakehouse import runner
    from cdclake.lakehouse.configuration import plan_from_pipeline
    from cdclake.lakehouse.spark import session

    tables = split_list(args["tables"])
    plan = plan_from_pipeline(load(args["config"]), tables or None)
    spark = session(plan, f"cdclake-{args['layer']}")
    layers, progress = runner.layers_for(args["layer"]), (lambda m: print(m, flush=True))
    if args["mode"] == "continuous":
        report = runner.run_continuous(spark, plan, layers, progress=progress)
    else:
        report = runner.run(spark, plan, layers, progress=progress, select=[s for s in args["select"].split(",") if s])
    report.raise_on_failure()


if __name__ == "__main__":
    sys.exit(main())
