"""Source benchmark: pgbench TPS with the pipeline attached against without it, same run.

    python -m bench.source [-c pipeline.yaml] [--scale 10] [--seconds 60] [--clients 4]

Needs the stack up (``cdclake up``). pgbench's tables live in the benchmark's own schema
(``search_path``), so its unqualified statements touch nothing else. Three runs of the
same length: without capture, with Debezium streaming pgbench_accounts, _branches and
_tellers into Kafka, and without again (the two baselines bracket the attached run, so
drift on a shared machine shows as their spread). Ratio = attached TPS / mean baseline
TPS; target >= 0.9.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import uuid

from psycopg import sql

from bench.capture.run import isolated
from cdclake.capture import recover, service
from cdclake.config import Pipeline, load
from cdclake.source import connection
from cdclake.source.prepare import init_source
from cdclake.stack.postgres import pg_bin

CAPTURED = ("pgbench_accounts", "pgbench_branches", "pgbench_tellers")  # pgbench_history has no key


def pgbench(pipeline: Pipeline, schema: str, args: list[str]) -> str:
    """Run pgbench against the source with ``schema`` first on the search path; returns its output."""
    env = {**os.environ, "PGOPTIONS": f"-c search_path={schema}"}
    password = connection.admin_password(pipeline)
    if password:
        env["PGPASSWORD"] = password.get_secret_value()
    argv = [str(pg_bin("pgbench")), *args, connection.admin_dsn(pipeline)]
    return subprocess.run(argv, env=env, check=True, capture_output=True, text=True).stdout


def tps(output: str) -> float:
    match = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", output)
    if not match:
        raise RuntimeError(f"no TPS in pgbench's output:\n{output[-2000:]}")
    return float(match.group(1))


def tps_run(pipeline: Pipeline, schema: str, seconds: int, clients: int) -> float:
    return tps(pgbench(pipeline, schema, ["-T", str(seconds), "-c", str(clients), "-j", str(min(clients, 2)), "-n"]))


def attached_run(pipeline: Pipeline, schema: str, seconds: int, clients: int) -> dict:
    """TPS while Debezium streams the pgbench tables; then the connector and slot are removed."""
    init_source(pipeline, progress=lambda m: None)
    service.apply(pipeline, progress=lambda m: None)
    try:
        return {"tps": tps_run(pipeline, schema, seconds, clients)}
    finally:
        service.client(pipeline).delete(pipeline.connect.connector_name)
        recover.drop_slot(pipeline, progress=lambda m: None)


def run(pipeline: Pipeline, tag: str, scale: int, seconds: int, clients: int) -> dict:
    with connection.connect(pipeline, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(tag)))
    pgbench(pipeline, tag, ["-i", "-s", str(scale), "-q"])
    before = tps_run(pipeline, tag, seconds, clients)
    attached = attached_run(pipeline, tag, seconds, clients)["tps"]
    after = tps_run(pipeline, tag, seconds, clients)
    baseline = statistics.fmean([before, after])
    return {"scale": scale, "seconds": seconds, "clients": clients, "tps_without_before": round(before, 1),
            "tps_attached": round(attached, 1), "tps_without_after": round(after, 1),
            "baseline_spread": round(abs(before - after) / baseline, 3), "ratio": round(attached / baseline, 3)}


def cleanup(pipeline: Pipeline, tag: str) -> None:
    with connection.connect(pipeline, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(pipeline.source.publication)))
        for schema in (tag, pipeline.source.cdc_schema):
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def measure(base: Pipeline, scale: int, seconds: int, clients: int) -> dict:
    """The three pgbench runs on the benchmark's own schema, slot and connector, removed afterwards."""
    tag = f"bench_{uuid.uuid4().hex[:6]}"
    pipeline = isolated(base, tag)
    pipeline = pipeline.model_copy(update={  # streaming overhead, not a snapshot: no_data
        "source": pipeline.source.with_tables([f"{tag}.{t}" for t in CAPTURED]),
        "connect": pipeline.connect.model_copy(update={"snapshot_mode": "no_data"})})
    try:
        return run(pipeline, tag, scale, seconds, clients)
    finally:
        cleanup(pipeline, tag)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", default="pipeline.yaml")
    parser.add_argument("--scale", type=int, default=10)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    result = measure(load(args.config), args.scale, args.seconds, args.clients)
    print(json.dumps({"pgbench": result}), flush=True)
    print(f"\npgbench TPS: {result['tps_attached']:,} with the pipeline attached vs "
          f"{result['tps_without_before']:,} / {result['tps_without_after']:,} without (before / after) "
          f"-> ratio {result['ratio']} (target >= 0.9)")
