"""The Iceberg maintenance job: ``spark-submit`` locally, or an AWS Glue 5.1 job script.

Compaction, position-delete rewrite, snapshot expiry, orphan removal and manifest rewrite
of every table in the namespace (:mod:`cdclake.lakehouse.maintenance`).

Arguments (Glue style, ``--KEY value``): ``--config`` pipeline.yaml; ``--dry-run`` true|false
(default false).
"""

from __future__ import annotations

import sys

from cdclake.lakehouse.jobs.args import resolved_options

DEFAULTS = {"dry-run": "false"}


def main(argv: list[str] | None = None) -> int:
    from cdclake.config import load
    from cdclake.errors import CdclakeError
    from cdclake.lakehouse.configuration import plan_from_pipeline
    from cdclake.lakehouse.maintenance import maintain
    from cdclake.lakehouse.spark import session

    args = resolved_options(argv if argv is not None else sys.argv, ["config", *DEFAULTS], DEFAULTS)
    try:
        plan = plan_from_pipeline(load(args["config"]))
        results = maintain(session(plan, "cdclake-maintenance"), plan, dry_run=args["dry-run"] == "true",
                           progress=lambda m: print(m, flush=True))
    except CdclakeError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code
    print(f"maintained {len(results)} table(s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
