"""Chaos: the broker loop. A stack of its own (PostgreSQL, a 3-node KRaft quorum, Connect +
Debezium) runs the demo tables under the open-loop workload while a random broker is
killed with SIGKILL every ``--every`` seconds for ``--minutes`` and restarted each time.
Then bronze and silver run, and silver is compared with PostgreSQL.

    python -m bench.chaos [--minutes 3] [--every 20] [--rate 300]   (or `make chaos`)

Ports: 22432 (PostgreSQL), 22092-22097 (Kafka), 22083 (Connect), each plus
``CDCLAKE_TEST_PORT_OFFSET`` so it keeps off the test stacks. Too long for the test suite
(about 6 minutes); the result is one JSON line: kills, changes, and per table the rows
of the source and of silver, the missing / extra / different ones, and ``exact``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

from cdclake.capture import service
from cdclake.config import Pipeline, load
from cdclake.lakehouse import runner
from cdclake.lakehouse.configuration import plan_from_pipeline
from cdclake.lakehouse.spark import session
from cdclake.source.demo import DEMO_TABLES, create_demo
from cdclake.source.prepare import init_source
from cdclake.source.workload import Workload
from cdclake.stack import process
from cdclake.stack import stack as local_stack
from cdclake.verify.verify import verify

QUIET = lambda message: None  # noqa: E731


def chaos_pipeline(directory: Path, offset: int) -> Pipeline:
    doc = {
        "source": {"managed": "local", "port": 22432 + offset, "database": "cdc_chaos", "tables": DEMO_TABLES},
        "kafka": {"managed": "local", "nodes": 3, "port": 22092 + offset, "partitions": 3, "heap": "512m"},
        "connect": {"managed": "local", "port": 22083 + offset, "heap": "768m", "heartbeat_interval_ms": 1000},
        "spark": {"master": "local[2]", "driver_memory": "2g"},
    }
    path = directory / "pipeline.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return load(path, environ={})


class Load(threading.Thread):
    """The open-loop workload, a second at a time, until ``stop``."""

    def __init__(self, pipeline: Pipeline, rate: float):
        super().__init__(daemon=True)
        self.workload, self.rate, self.ops, self.error = Workload(pipeline, seed=17), rate, 0, None
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopped.is_set():
                self.ops += self.workload.run(rate=self.rate, ops=int(self.rate), progress=QUIET).ops
        except Exception as exc:  # noqa: BLE001 - reported by stop()
            self.error = exc

    def stop(self) -> int:
        self.stopped.set()
        self.join()
        if self.error:
            raise self.error
        return self.ops


def broker_loop(pipeline: Pipeline, minutes: float, every: float, rng: random.Random) -> list[dict]:
    """SIGKILL a random broker every ``every`` s (jittered ±25 %) for ``minutes``, restarting each."""
    daemons = local_stack.LocalStack.of(pipeline).kafka.daemons()
    kills, end = [], time.monotonic() + minutes * 60
    while time.monotonic() < end:
        time.sleep(max(0.0, min(every * rng.uniform(0.75, 1.25), end - time.monotonic())))
        victim = rng.choice(daemons)
        pid = process.kill(victim)
        started = time.monotonic()
        restarted = local_stack.up(pipeline, progress=QUIET).started
        kills.append({"broker": victim.name, "pid": pid, "restarted": restarted,
                      "restart_s": round(time.monotonic() - started, 1)})
        print(f"killed {victim.name} (pid {pid}); restarted {restarted} in {kills[-1]['restart_s']}s", flush=True)
    return kills


def compare(spark, pipeline: Pipeline) -> dict:
    """Bronze then silver, then every silver table against PostgreSQL (``verify``: every row and value)."""
    plan = plan_from_pipeline(pipeline)
    report = runner.run(spark, plan, ["bronze", "silver"], progress=QUIET)
    verified = verify(plan, gold=False, progress=QUIET)
    bronze = {ref.table: spark.table(ref.bronze).count() for ref in plan.tables}
    tables = {t.table: {"source_rows": t.source_rows, "silver_rows": t.silver_rows, "missing": t.missing,
                        "extra": t.extra, "different": t.different, "exact": t.ok} for t in verified.tables}
    return {"bronze_events": bronze, "tables": tables, "failures": report.failures,
            "exact": verified.ok and not report.failures}


def chaos(minutes: float, every: float, rate: float, seed: int) -> dict:
    directory = Path(tempfile.mkdtemp(prefix="cdclake-chaos-"))
    directory.chmod(0o755)
    pipeline = chaos_pipeline(directory, int(os.environ.get("CDCLAKE_TEST_PORT_OFFSET", "0")))
    try:
        local_stack.up(pipeline, progress=print)
        create_demo(pipeline, seed=seed, users=200, products=50, orders=500)
        init_source(pipeline, progress=QUIET)
        service.apply(pipeline, progress=QUIET)
        load = Load(pipeline, rate)
        load.start()
        kills = broker_loop(pipeline, minutes, every, random.Random(seed))
        changes = load.stop()
        service.wait_running(pipeline, timeout=300)
        caught_up_s = service.wait_caught_up(pipeline, service.current_lsn(pipeline), timeout=600)
        spark = session(plan_from_pipeline(pipeline), "cdclake-chaos")
        try:
            result = compare(spark, pipeline)
        finally:
            spark.stop()
        return {"minutes": minutes, "kills": len(kills), "killed": [k["broker"] for k in kills],
                "max_restart_s": max((k["restart_s"] for k in kills), default=0), "changes": changes,
                "caught_up_s": round(caught_up_s, 1), **result}
    finally:
        local_stack.down(pipeline, purge=True, progress=QUIET)
        shutil.rmtree(directory, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--every", type=float, default=20.0, help="seconds between broker kills (jittered)")
    parser.add_argument("--rate", type=float, default=300.0, help="workload changes per second (open loop)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    # A SIGTERM (e.g. `timeout`) unwinds through chaos()'s finally, which stops its stack.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    result = chaos(args.minutes, args.every, args.rate, args.seed)
    print("chaos broker loop:", json.dumps(result), flush=True)
    raise SystemExit(0 if result["exact"] else 1)
