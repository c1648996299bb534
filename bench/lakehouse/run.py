"""Benchmarks of the lakehouse jobs, each against a baseline measured in the same run.

- ``ingest``: bronze (available-now) over a topic of N Debezium-shaped events, as a ratio
  to a plain confluent-kafka consumer reading the same topic.
- ``merge``: silver MERGE time of the same 10k changes (70% updates, 20% inserts, 10%
  deletes) into tables of 1M and 10M rows; target growth <= 1.2x for 10x the rows.
- ``freshness``: continuous bronze+silver with the configured trigger (10 s) under a
  steady insert load (--rate, 1,000 changes/s) after a 30 s warm-up; commit-to-visible-in-silver
  p50/p99 (target p99 <= 10 s), visible = the commit time of the first silver snapshot holding
  the row.

Usage (on a running stack, `cdclake up`):
    .venv/bin/python -m bench.lakehouse -c pipeline.yaml [ingest|merge|freshness|all] [--events 200000]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import threading
import time
import uuid

from cdclake.broker import clients
from cdclake.broker.topics import ensure_topics
from cdclake.config import load
from cdclake.lakehouse import bronze, runner, silver
from cdclake.lakehouse.configuration import LakehousePlan, TableRef, plan_from_pipeline
from cdclake.lakehouse.pgschema import Column, TableSchema
from cdclake.lakehouse.spark import ensure_namespace, session
from cdclake.source import connection

SCHEMA = TableSchema("public.bench", (
    Column("id", "int8", False, -1, "bigint", key_pos=1), Column("name", "text", False, -1, "text"),
    Column("amount", "numeric", False, ((12 << 16) | 2) + 4, "numeric(12,2)"),
    Column("updated_at", "timestamptz", False, -1, "timestamptz"),
))


def event(key: int, op: str, lsn: int) -> bytes:
    row = {"id": key, "name": f"name {key} {lsn}", "amount": f"{random.uniform(0, 99999):.2f}",
           "updated_at": "2026-01-01T10:00:00.123456Z", "__op": op, "__lsn": lsn, "__txId": lsn,
           "__source_ts_ms": 1767261600000, "__deleted": "true" if op == "d" else "false"}
    return json.dumps(row).encode()


def fill_topic(bootstrap: str, topic: str, events: int) -> None:
    ensure_topics(bootstrap, [topic], 3, 1)
    producer = clients.producer(bootstrap, **{"linger.ms": 20, "compression.type": "lz4"})
    for i in range(events):
        producer.produce(topic, key=json.dumps({"id": i}).encode(), value=event(i, "c", 1000 + i))
        if i % 10000 == 0:
            producer.poll(0)
    producer.flush(60)


def plain_consumer(bootstrap: str, topic: str, events: int) -> float:
    consumer = clients.consumer(bootstrap, f"bench-{uuid.uuid4().hex[:6]}")
    consumer.subscribe([topic])
    seen, start = 0, None
    while seen < events:
        for msg in consumer.consume(10000, 1.0):
            if not msg.error():
                start = start or time.monotonic()
                seen += 1
    seconds = time.monotonic() - start
    consumer.close()
    return seconds


def bench_ingest(spark, plan: LakehousePlan, events: int) -> dict:
    tag = uuid.uuid4().hex[:6]
    ref = TableRef(f"public.bench_{tag}", f"bench.ingest.{tag}", plan.catalog.name, plan.namespace)
    fill_topic(plan.bootstrap, ref.topic, events)
    baseline = plain_consumer(plan.bootstrap, ref.topic, events)
    bronze.ensure_table(spark, plan, ref)
    started = time.monotonic()
    bronze.start(spark, plan, ref, available_now=True).awaitTermination()
    seconds = time.monotonic() - started
    assert spark.table(ref.bronze).count() == events
    return {"events": events, "plain_consumer_eps": round(events / baseline), "bronze_eps": round(events / seconds),
            "bronze_vs_plain": round(baseline / seconds, 3)}


def bench_merge(spark, plan: LakehousePlan, sizes=(1_000_000, 10_000_000), changes: int = 10_000) -> dict:
    out = {}
    for rows in (20_000, *sizes):  # the first is a JVM/Iceberg warm-up, not reported
        ref = TableRef(f"public.bench_{rows}_{uuid.uuid4().hex[:6]}", "unused", plan.catalog.name, plan.namespace)
        ensure_namespace(spark, plan)
        silver.ensure_table(spark, ref, SCHEMA)
        silver.ensure_tombstones(spark, ref, SCHEMA)
        spark.range(rows).selectExpr("id", "concat('name ', id) AS name", "CAST(id % 100000 AS DECIMAL(12,2)) AS amount",
                                     "TIMESTAMP'2026-01-01 00:00:00' AS updated_at", "1 AS _cdc_lsn",
                                     "TIMESTAMP'2026-01-01 00:00:00' AS _cdc_ts").writeTo(ref.silver).append()
        rng = random.Random(rows)
        keys = rng.sample(range(rows), int(changes * 0.8))
        ops = [(k, "u") for k in keys[: int(changes * 0.7)]] + [(k, "d") for k in keys[int(changes * 0.7):]]
        ops += [(rows + i, "c") for i in range(changes - len(ops))]
        values = [(json.dumps({"id": k}), event(k, op, 10 + i).decode(), op, 10 + i, 0, i)
                  for i, (k, op) in enumerate(ops)]
        events = spark.createDataFrame(values, "event_key string, event_value string, op string, lsn bigint, "
                                               "kafka_partition int, kafka_offset bigint")
        events = events.selectExpr("*", "CAST(NULL AS TIMESTAMP) AS source_ts").persist()
        events.count()
        started = time.monotonic()
        silver.merge(spark, ref, SCHEMA, events, 1)
        out[rows] = round(time.monotonic() - started, 2)
        assert spark.table(ref.silver).count() == rows - int(changes * 0.1) + (changes - int(changes * 0.8))
        for table in (ref.silver, ref.tombstones):
            spark.sql(f"DROP TABLE {table} PURGE")
    out.pop(20_000)
    sizes_s = sorted(out)
    return {"changes": changes, "merge_seconds": out, "growth_10x_rows": round(out[sizes_s[-1]] / out[sizes_s[0]], 2)}


def bench_freshness(spark, pipeline, plan: LakehousePlan, seconds: int = 120, rate: float = 20,
                    warm_up: int = 30) -> dict:
    """Needs the connector: a table ``public.bench_fresh`` is created and captured.

    The load runs ``warm_up`` seconds before the ``seconds`` it is measured over: steady
    state, once the JVM has compiled the batch's code paths (a fresh session's first
    batches take 2-3x longer and leave a backlog the next ones work off). The whole run's
    p99 is reported too.
    """
    from cdclake.capture import service
    from cdclake.lakehouse.catalog import pyiceberg_catalog
    from cdclake.source.prepare import init_source

    table = "public.bench_fresh"
    with connection.connect(pipeline, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS public.bench_fresh (id bigserial PRIMARY KEY, "
                     "committed_at timestamptz NOT NULL DEFAULT clock_timestamp(), pad text)")
    tables = list(dict.fromkeys([*pipeline.source.tables, table]))
    pipeline = pipeline.model_copy(update={"source": pipeline.source.with_tables(tables)})
    init_source(pipeline, progress=lambda m: None)
    service.apply(pipeline, progress=lambda m: None)
    plan = plan_from_pipeline(pipeline, [table])
    ref = plan.tables[0]
    stop = threading.Event()
    job = threading.Thread(target=runner.run_continuous, args=(spark, plan, ["bronze", "silver"]),
                           kwargs={"progress": lambda m: None, "stop": stop}, daemon=True)
    job.start()
    commits: dict[int, float] = {}
    seen: dict[int, float] = {}

    achieved: dict[str, float] = {}

    def writer():
        # 100 transactions/s of rate/100 rows each, open loop; the rate reached is reported.
        per_tx = max(1, round(rate / 100))
        with connection.connect(pipeline, autocommit=True) as conn:
            start, sent = time.monotonic(), 0
            achieved["measured_from"] = time.time() + warm_up
            while time.monotonic() - start < warm_up + seconds:
                rows = conn.execute("INSERT INTO public.bench_fresh (pad) SELECT 'x' FROM generate_series(1, %s) "
                                    "RETURNING id", (per_tx,)).fetchall()
                now = time.time()
                commits.update((row[0], now) for row in rows)
                sent += 1
                wait = start + sent / 100 - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
            achieved["rate"] = len(commits) / (time.monotonic() - start)

    catalog = pyiceberg_catalog(plan)
    _warm_up(pipeline, catalog, ref)
    load_thread = threading.Thread(target=writer, daemon=True)
    load_thread.start()
    deadline, last = time.monotonic() + seconds + 60, None
    while time.monotonic() < deadline:
        table = _silver_table(catalog, ref)
        snapshot = table.current_snapshot() if table is not None else None
        if snapshot is not None and snapshot.snapshot_id != last:
            # A row is visible from the commit of the first snapshot holding it: Iceberg's own
            # commit time, not when this loop happened to look (metadata is polled every 0.2 s).
            last = snapshot.snapshot_id
            for i in _visible_ids(table, last):
                seen.setdefault(i, snapshot.timestamp_ms / 1000)
        if not load_thread.is_alive() and commits and all(i in seen for i in commits):
            break
        time.sleep(0.2)
    stop.set()
    job.join(60)
    measured = {i: at for i, at in commits.items() if at >= achieved["measured_from"]}
    lags = sorted(seen[i] - at for i, at in measured.items() if i in seen)
    whole_run = sorted(seen[i] - at for i, at in commits.items() if i in seen)
    q = _percentiles(lags)
    return {"trigger_s": plan.trigger_seconds, "offered_rate": rate, "achieved_rate": round(achieved.get("rate", 0)),
            "warm_up_s": warm_up, "rows": len(measured), "visible": len(lags),
            "p50_s": round(q[49], 1), "p99_s": round(q[98], 1), "max_s": round(lags[-1], 1) if lags else None,
            "p99_with_warm_up_s": round(_percentiles(whole_run)[98], 1),
            "series": per_second(commits, seen)}


def _percentiles(values: list[float]) -> list[float]:
    return statistics.quantiles(values, n=100) if len(values) > 2 else [float("nan")] * 99


def per_second(commits: dict[int, float], seen: dict[int, float]) -> list[dict]:
    """Second by second from the first commit: rows committed, rows that became visible in
    silver, and the worst freshness of the rows committed in that second (for the plots)."""
    if not commits:
        return []
    start = min(commits.values())
    last = max([*commits.values(), *(seen[k] for k in commits.keys() & seen.keys())])
    series = [{"t": t, "committed": 0, "visible": 0, "max_lag_s": None} for t in range(int(last - start) + 1)]
    for key, at in commits.items():
        point = series[int(at - start)]
        point["committed"] += 1
        if key in seen:
            point["max_lag_s"] = round(max(point["max_lag_s"] or 0.0, seen[key] - at), 2)
            series[max(0, int(seen[key] - start))]["visible"] += 1
    return series


def _silver_table(catalog, ref: TableRef):
    try:
        return catalog.load_table(ref.silver_short)
    except Exception:  # noqa: BLE001 - not created yet
        return None


def _visible_ids(table, snapshot_id: int | None = None) -> list[int]:
    """The ids in silver (at ``snapshot_id``, else its current snapshot); none before it exists."""
    if table is None:
        return []
    return table.scan(selected_fields=("id",), snapshot_id=snapshot_id).to_arrow().column("id").to_pylist()


def _warm_up(pipeline, catalog, ref: TableRef, timeout: float = 300) -> None:
    """Steady state only: one row through bronze and silver before the clock starts."""
    with connection.connect(pipeline, autocommit=True) as conn:
        key = conn.execute("INSERT INTO public.bench_fresh (pad) VALUES ('warm-up') RETURNING id").fetchone()[0]
    deadline = time.monotonic() + timeout
    while key not in _visible_ids(_silver_table(catalog, ref)):
        if time.monotonic() > deadline:
            raise TimeoutError(f"warm-up row {key} not in {ref.silver_short} after {timeout}s")
        time.sleep(1)


def measure(pipeline, events: int, seconds: int, rate: float, what: str = "all") -> dict:
    """The lakehouse benchmarks in the ``bench`` namespace; keys ingest, merge, freshness."""
    plan = plan_from_pipeline(pipeline)
    plan = LakehousePlan(**{**plan.__dict__, "namespace": "bench"})
    spark = session(plan, "cdclake-bench")
    out = {}
    if what in ("ingest", "all"):
        out["ingest"] = bench_ingest(spark, plan, events)
    if what in ("merge", "all"):
        out["merge"] = bench_merge(spark, plan)
    if what in ("freshness", "all"):
        out["freshness"] = bench_freshness(spark, pipeline, plan, seconds, rate)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", default="pipeline.yaml")
    parser.add_argument("what", nargs="?", default="all", choices=["ingest", "merge", "freshness", "all"])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--seconds", type=int, default=120)
    parser.add_argument("--rate", type=float, default=1000, help="freshness: changes/s")
    args = parser.parse_args()
    for name, result in measure(load(args.config), args.events, args.seconds, args.rate, args.what).items():
        print(f"{name}:", json.dumps(result), flush=True)
