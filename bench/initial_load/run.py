"""Initial load of one table of N rows (default 5M) into silver, two ways in one run:

- baseline: Debezium's initial snapshot (a new connector, ``snapshot.mode: initial``) into
  Kafka, then bronze (available-now) and silver; the three phases are timed one after the
  other (bronze could overlap the snapshot in continuous mode: the Kafka phase alone is
  reported too);
- cdclake: a new connector with ``connect.initial_load: parallel`` (lakehouse/initial_load.py),
  whose apply loads the rows straight into bronze, then silver.

Each way has its own connector, slot, publication, topics and Iceberg namespace; both read
the same table. The figure is rows/s into silver, cdclake over Debezium.

Usage (on a running stack, `cdclake up`):
    .venv/bin/python -m bench.initial_load -c pipeline.yaml [--rows 5000000]
"""

from __future__ import annotations

import argparse
import json
import time

from bench.capture.run import cleanup, isolated, wait_total
from cdclake.capture import service
from cdclake.config import Pipeline, load
from cdclake.lakehouse import runner
from cdclake.lakehouse.configuration import plan_from_pipeline
from cdclake.lakehouse.spark import session
from cdclake.source import connection
from cdclake.source.prepare import init_source

TABLE = "public.bench_load"
QUIET = lambda message: None  # noqa: E731


def fill_table(pipeline: Pipeline, rows: int) -> None:
    with connection.connect(pipeline, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
        conn.execute(f"CREATE TABLE {TABLE} (id bigint PRIMARY KEY, name text, amount numeric(12,2), "
                     "updated_at timestamptz, status text)")
        conn.execute(f"INSERT INTO {TABLE} SELECT g, 'customer ' || g, (g % 100000) / 100.0, "
                     "TIMESTAMPTZ '2026-01-01 00:00:00+00' + g * interval '1 second', "
                     f"(ARRAY['new', 'paid', 'shipped'])[g % 3 + 1] FROM generate_series(1, {rows}) g")
        conn.execute(f"VACUUM ANALYZE {TABLE}")


def variant(stack: Pipeline, tag: str, initial_load: str) -> Pipeline:
    """The stack's pipeline capturing only the bench table, with capture state and a namespace of its own."""
    pipeline = isolated(stack, tag, [TABLE])
    connect = pipeline.connect.model_copy(update={"initial_load": initial_load, "snapshot_mode": "initial"})
    lakehouse = pipeline.lakehouse.model_copy(update={"namespace": f"ns_{tag}"})
    return pipeline.model_copy(update={"connect": connect, "lakehouse": lakehouse})


def timed(action) -> float:
    started = time.monotonic()
    action()
    return round(time.monotonic() - started, 1)


def into_silver(spark, pipeline: Pipeline, rows: int, layers: list[str]) -> dict:
    plan = plan_from_pipeline(pipeline)
    seconds = {layer: timed(lambda layer=layer: _run(spark, plan, layer)) for layer in layers}
    count = spark.sql(f"SELECT count(*) FROM {plan.tables[0].silver}").first()[0]
    if count != rows:
        raise RuntimeError(f"silver holds {count:,} rows after the load, expected {rows:,}")
    return seconds


def _run(spark, plan, layer: str) -> None:
    report = runner.run(spark, plan, [layer], progress=QUIET)
    if report.failures:
        raise RuntimeError(f"{layer} failed: {report.failures}")


def debezium_way(spark, stack: Pipeline, rows: int, tag: str) -> dict:
    tag = f"{tag}_dbz"
    pipeline = variant(stack, tag, "debezium")
    init_source(pipeline, progress=QUIET)
    try:
        topic = plan_from_pipeline(pipeline).tables[0].topic
        kafka = timed(lambda: (service.apply(pipeline, progress=QUIET),
                               wait_total(pipeline.kafka.bootstrap, topic, rows, timeout=3600)))
        seconds = {"snapshot_to_kafka": kafka, **into_silver(spark, pipeline, rows, ["bronze", "silver"])}
    finally:
        cleanup(pipeline, tag)
    return {"seconds": seconds, "kafka_rows_per_s": round(rows / kafka),
            "rows_per_s": round(rows / sum(seconds.values()))}


def parallel_way(spark, stack: Pipeline, rows: int, tag: str) -> dict:
    tag = f"{tag}_par"
    pipeline = variant(stack, tag, "parallel")
    init_source(pipeline, progress=QUIET)
    try:
        seconds = {"load_to_bronze": timed(lambda: service.apply(pipeline, progress=print)),
                   **into_silver(spark, pipeline, rows, ["silver"])}
    finally:
        cleanup(pipeline, tag)
    return {"seconds": seconds, "rows_per_s": round(rows / sum(seconds.values())),
            "workers": spark.sparkContext.defaultParallelism}


def measure(stack: Pipeline, rows: int) -> dict:
    tag = f"il{int(time.time()) % 100000}"
    fill_table(stack, rows)
    spark = session(plan_from_pipeline(stack), "cdclake-bench-initial-load")
    result = {"rows": rows, "parallel": parallel_way(spark, stack, rows, tag),
              "debezium": debezium_way(spark, stack, rows, tag)}
    with connection.connect(stack, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", default="pipeline.yaml")
    parser.add_argument("--rows", type=int, default=5_000_000)
    args = parser.parse_args()
    print(json.dumps(measure(load(args.config), args.rows)))


if __name__ == "__main__":
    main()
