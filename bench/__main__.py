"""``python -m bench [-c pipeline.yaml]``: every benchmark in one run, then the report.

Runs, on the running stack (``cdclake up``): capture (Debezium vs pg_recvlogical on the
same WAL, commit-to-Kafka latency at 80% of the sustainable rate), the source (pgbench
with and without the pipeline), bronze ingest (vs a plain consumer and vs the capture
rate of this run), silver MERGE growth, freshness in continuous mode, and the parallel initial load (vs
Debezium's initial snapshot of the same table). Writes
bench/results/latest.json and a dated markdown table (bench/report.py).
"""

from __future__ import annotations

import argparse
import json

from bench import report
from bench.report import Figure
from cdclake.config import load


def figures(cap: dict, src: dict, lake: dict, load: dict | None = None) -> list[Figure]:
    """One figure per target of the performance issue, from this run's measurements."""
    from bench.capture.run import describe

    rate, lat = cap["capture"], cap["latency_at_80pct"]
    how, limited = describe(rate, lat)
    ingest, merge, fresh = lake["ingest"], lake["merge"], lake["freshness"]
    sizes = sorted(merge["merge_seconds"], key=int)
    return [
        Figure("capture_rate", rate["debezium_rate"], "changes/s", "pg_recvlogical", rate["pg_recvlogical_rate"],
               "ratio >= 0.7", f"{rate['rows']:,} changes on the same WAL; {how}"),
        Figure("capture_latency_p99", lat["p99_ms"], "ms", None, None, "value <= 100",
               f"at {lat['achieved_rate']:,} changes/s achieved ({lat['offered_rate']:,} offered); "
               f"p50 {lat['p50_ms']} ms{limited}"),
        Figure("bronze_vs_capture", ingest["bronze_eps"], "events/s", "Debezium capture", rate["debezium_rate"],
               "ratio >= 1.0", f"{ingest['events']:,} events"),
        Figure("bronze_vs_plain_consumer", ingest["bronze_eps"], "events/s", "confluent-kafka consumer",
               ingest["plain_consumer_eps"], "ratio >= 1.0", "same topic"),
        Figure("freshness_p99", fresh["p99_s"], "s", None, None, "value <= 10",
               f"continuous, {fresh['achieved_rate']:,} changes/s achieved ({fresh['offered_rate']:,} offered), "
               f"trigger {fresh['trigger_s']} s, p50 {fresh['p50_s']} s"),
        Figure("merge_growth", merge["merge_seconds"][sizes[-1]], "s", f"{int(sizes[0]):,} rows",
               merge["merge_seconds"][sizes[0]], "ratio <= 1.2",
               f"{merge['changes']:,} changes into {int(sizes[0]):,} and {int(sizes[-1]):,} rows"),
        initial_load_figure(load),
        Figure("pgbench_tps_attached", src["tps_attached"], "TPS", "without the pipeline (mean of before/after)",
               round((src["tps_without_before"] + src["tps_without_after"]) / 2, 1), "ratio >= 0.9",
               f"baseline spread {src['baseline_spread']:.1%}"),
    ]


def initial_load_figure(load: dict | None) -> Figure:
    name, baseline = "initial_load_vs_debezium_snapshot", "Debezium initial snapshot -> bronze -> silver"
    if load is None:
        return Figure(name, None, "rows/s", baseline, None, "ratio >= 2.0", "not run (--load-rows 0)")
    dbz, par = load["debezium"], load["parallel"]
    phases = ", ".join(f"{k} {v} s" for k, v in {**dbz["seconds"], **{f"parallel {k}": v for k, v
                                                                      in par["seconds"].items()}}.items())
    return Figure(name, par["rows_per_s"], "rows/s", baseline, dbz["rows_per_s"], "ratio >= 2.0",
                  f"{load['rows']:,} rows into silver, {par['workers']} readers; Debezium into Kafka alone "
                  f"{dbz['kafka_rows_per_s']:,} rows/s; {phases}")


def main() -> None:
    from bench.capture.run import measure as measure_capture
    from bench.initial_load.run import measure as measure_initial_load
    from bench.lakehouse.run import measure as measure_lakehouse
    from bench.source.run import measure as measure_source

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", default="pipeline.yaml")
    parser.add_argument("--rows", type=int, default=300_000, help="capture: changes decoded by both readers, per pass")
    parser.add_argument("--events", type=int, default=200_000, help="bronze ingest: events in the topic")
    parser.add_argument("--freshness-rate", type=float, default=1000, help="freshness: changes/s")
    parser.add_argument("--seconds", type=int, default=120, help="freshness: seconds of load")
    parser.add_argument("--load-rows", type=int, default=5_000_000, help="initial load: rows in the table (0: skip)")
    args = parser.parse_args()
    pipeline = load(args.config)
    cap = measure_capture(pipeline, args.rows, latency_seconds=30)
    print("capture:", json.dumps(cap), flush=True)
    src = measure_source(pipeline, scale=10, seconds=60, clients=4)
    print("pgbench:", json.dumps(src), flush=True)
    lake = measure_lakehouse(pipeline, events=args.events, seconds=args.seconds, rate=args.freshness_rate)
    print("lakehouse:", json.dumps(lake), flush=True)
    load = measure_initial_load(pipeline, args.load_rows) if args.load_rows else None
    print("initial load:", json.dumps(load), flush=True)
    figs = figures(cap, src, lake, load)
    latest, table = report.write(figs, series=lake["freshness"].get("series"))
    print(report.markdown(figs, "this run"))
    print(f"written: {latest}, {table}")


if __name__ == "__main__":
    main()
