"""The reconciliation job: plain ``python`` locally (no Spark), or an AWS Glue 5.1 job script.

Silver against the source, per table: counts and per-key row hashes
(:mod:`cdclake.verify`). On a live source, rows changed after the run differ until the
next run; ``--tolerance`` is the fraction of a table's source rows allowed to differ.

Arguments (Glue style, ``--KEY value``): ``--config`` pipeline.yaml; ``--tolerance``
(default 0: exact).
"""

from __future__ import annotations

import sys

from cdclake.lakehouse.jobs.args import run_job

DEFAULTS = {"tolerance": "0"}


def main(argv: list[str] | None = None) -> int:
    return run_job(argv, DEFAULTS, _verify)


def _verify(args: dict[str, str]) -> None:
    from cdclake.config import load
    from cdclake.lakehouse.configuration import plan_from_pipeline
    from cdclake.orchestration.reconcile import reconcile

    plan = plan_from_pipeline(load(args["config"]))
    reconcile(plan, float(args["tolerance"]), progress=lambda m: print(m, flush=True))


if __name__ == "__main__":
    sys.exit(main())
