"""The Iceberg maintenance job: ``spark-submit`` locally, or an AWS Glue 5.1 job script.

Compaction, position-delete rewrite, snapshot expiry, orphan removal and manifest rewrite
of every table in the namespace (:mod:`cdclake.lakehouse.maintenance`).

Arguments (Glue style, ``--KEY value``): ``--config`` pipeline.yaml; ``--dry-run`` true|false
(default false).
"""

from __future__ import annotations

import sys

from cdclake.lakehouse.jobs.args import run_job

DEFAULTS = {"dry-run": "false"}


def main(argv: list[str] | None = None) -> int:
    return run_job(argv, DEFAULTS, _maintain)


def _maintain(args: dict[str, str]) -> None:
    from cdclake.config import load
    from cdclake.lakehouse.configuration import plan_from_pipeline
    from cdclake.lakehouse.maintenance import maintain
    from cdclake.lakehouse.spark import session

    plan = plan_from_pipeline(load(args["config"]))
    results = maintain(session(plan, "cdclake-maintenance"), plan, dry_run=args["dry-run"] == "true",
                       progress=lambda m: print(m, flush=True))
    print(f"maintained {len(results)} table(s)", flush=True)


if __name__ == "__main__":
    sys.exit(main())
