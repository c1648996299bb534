"""Chaos: the lakehouse jobs' drivers killed at named crash points, over and over, under load.

On a running stack with the pipeline captured (``cdclake up``, ``source init``,
``connector apply``), the open-loop workload runs for ``--minutes`` while job processes
(``python -m cdclake.lakehouse.jobs.run --layer bronze|silver``, each its own JVM) are
started one after another, each armed with a random crash point of lakehouse/faults.py
(``CDCLAKE_FAULT``) and SIGKILLed there. Then a clean bronze and silver run, and silver is
compared with PostgreSQL (``verify``), bronze checked for a Kafka record held twice.

    python -m bench.chaos.driver_kills -c pipeline.yaml [--minutes 5] [--rate 100] [--seed 7]

The test suite kills at each point twice (tests/lakehouse/test_job_faults.py); this runs
as many kills as fit in the time. The result is one JSON line: kills per point, the runs
that ended without reaching their point (no new data for that layer yet), bronze
duplicates, and per table the rows of the source and of silver with ``exact``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter

from cdclake.config import load
from cdclake.lakehouse.configuration import plan_from_pipeline
from cdclake.lakehouse.faults import ENV, POINTS
from cdclake.query.engines import run_sql
from cdclake.source import connection
from cdclake.source.workload import Workload
from cdclake.verify.verify import verify

QUIET = lambda message: None  # noqa: E731


def job(config: str, layer: str, fault: str | None = None) -> int:
    env = {k: v for k, v in os.environ.items() if k != ENV}
    if fault:
        env[ENV] = fault
    return subprocess.run([sys.executable, "-m", "cdclake.lakehouse.jobs.run", "--config", config, "--layer", layer],
                          env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=900).returncode


def wait_captured(pipeline, timeout: float = 300) -> None:
    """Until the slot confirms the WAL position of now: Debezium has produced every change."""
    with connection.connect(pipeline, autocommit=True) as conn:
        target = conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
        deadline = time.monotonic() + timeout
        while not conn.execute("SELECT confirmed_flush_lsn >= %s::pg_lsn FROM pg_replication_slots "
                               "WHERE slot_name = %s", (target, pipeline.source.slot)).fetchone()[0]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"slot {pipeline.source.slot} did not reach {target} in {timeout}s")
            time.sleep(1)


def bronze_duplicates(plan) -> dict[str, int]:
    return {ref.source: run_sql(plan, f"SELECT count(*) - count(DISTINCT (kafka_partition, kafka_offset)) "
                                      f"FROM {ref.bronze_short}").rows[0][0] for ref in plan.tables}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--config", default="pipeline.yaml")
    parser.add_argument("--minutes", type=float, default=5)
    parser.add_argument("--rate", type=float, default=100, help="workload changes per second")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    pipeline = load(args.config)
    plan = plan_from_pipeline(pipeline)
    rng = random.Random(args.seed)
    workload = Workload(pipeline, seed=args.seed)
    loader = threading.Thread(target=workload.run, kwargs={"rate": args.rate, "duration": args.minutes * 60,
                                                           "progress": QUIET}, daemon=True)
    started = time.monotonic()
    loader.start()
    kills, unreached, failed = Counter(), Counter(), Counter()
    while loader.is_alive():
        point = rng.choice(POINTS)
        code = job(args.config, point.split(".")[0], point)
        (kills if code == -9 else unreached if code == 0 else failed)[point] += 1
    wait_captured(pipeline)
    clean = {layer: job(args.config, layer) for layer in ("bronze", "silver")}
    report, duplicates = verify(plan, gold=False, progress=QUIET), bronze_duplicates(plan)
    print(json.dumps({
        "minutes": round((time.monotonic() - started) / 60, 1), "changes": workload.result.ops,
        "kills": dict(kills), "unreached": dict(unreached), "failed": dict(failed), "clean_exit": clean,
        "bronze_duplicates": duplicates,
        "tables": {t.table: {"source_rows": t.source_rows, "silver_rows": t.silver_rows, "exact": t.ok}
                   for t in report.tables},
        "exact": report.ok and not any(duplicates.values()),
    }))


if __name__ == "__main__":
    main()
