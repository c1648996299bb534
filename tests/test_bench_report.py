"""The benchmark report's arithmetic: ratios, targets, a figure not measured (bench/report.py)."""

from __future__ import annotations

import json

from bench.__main__ import figures
from bench.report import Figure, write


def test_every_target_of_the_issue_has_a_figure_and_its_verdict(tmp_path):
    cap = {"capture": {"rows": 1000, "debezium_rate": 40_000, "pg_recvlogical_rate": 50_000, "warm_up_rows": 5000,
                       "warm_up_rate": 20_000, "passes": [{"debezium_rate": 40_000, "ratio": 0.8}]},
           "latency_at_80pct": {"p50_ms": 20, "p99_ms": 90, "achieved_rate": 31_000, "offered_rate": 32_000}}
    src = {"tps_attached": 950.0, "tps_without_before": 1000.0, "tps_without_after": 1000.0, "baseline_spread": 0.0}
    lake = {"ingest": {"events": 10, "bronze_eps": 30_000, "plain_consumer_eps": 60_000},
            "merge": {"changes": 10_000, "merge_seconds": {"1000000": 10.0, "10000000": 13.0}},
            "freshness": {"p50_s": 4.0, "p99_s": 8.0, "achieved_rate": 1000, "offered_rate": 1000, "trigger_s": 2}}
    load = {"rows": 100, "parallel": {"rows_per_s": 900, "workers": 2, "seconds": {"load_to_bronze": 1.0}},
            "debezium": {"rows_per_s": 300, "kafka_rows_per_s": 500, "seconds": {"snapshot_to_kafka": 2.0}}}
    figs = {f.name: f for f in figures(cap, src, lake, load)}
    assert (figs["capture_rate"].ratio, figs["capture_rate"].met) == (0.8, True)
    assert figs["capture_latency_p99"].met and figs["freshness_p99"].met
    assert (figs["bronze_vs_capture"].ratio, figs["bronze_vs_capture"].met) == (0.75, False)
    assert (figs["merge_growth"].ratio, figs["merge_growth"].met) == (1.3, False)
    assert (figs["pgbench_tps_attached"].ratio, figs["pgbench_tps_attached"].met) == (0.95, True)
    assert (figs["initial_load_vs_debezium_snapshot"].ratio, figs["initial_load_vs_debezium_snapshot"].met) == (3.0, True)
    assert figures(cap, src, lake)[-2].value is None  # not run: no verdict

    latest, table = write(list(figs.values()), tmp_path, at=0)
    entries = json.loads(latest.read_text())
    assert {tuple(sorted(e)) for e in entries} == {("baseline", "baseline_value", "met", "name", "note", "ratio",
                                                    "target", "unit", "value")}
    for word in ("capture", "bronze", "freshness", "initial", "merge", "pgbench"):
        assert any(word in e["name"] for e in entries), word
    assert table.name == "1970-01-01T000000Z.md" and "| initial_load_vs_debezium_snapshot | 900 rows/s |" in \
        table.read_text()


def test_a_lower_is_better_target_compares_the_value():
    assert Figure("x", 9.0, "s", None, None, "value <= 10").met
    assert not Figure("x", 11.0, "s", None, None, "value <= 10").met


def test_the_freshness_run_is_plotted_second_by_second(tmp_path):
    from bench.lakehouse.run import per_second

    commits = {1: 100.0, 2: 100.5, 3: 101.2, 4: 103.9}
    seen = {1: 102.0, 2: 102.0, 3: 104.1}  # row 4 never became visible
    series = per_second(commits, seen)
    assert series == [{"t": 0, "committed": 2, "visible": 0, "max_lag_s": 2.0},
                      {"t": 1, "committed": 1, "visible": 0, "max_lag_s": 2.9},
                      {"t": 2, "committed": 0, "visible": 2, "max_lag_s": None},
                      {"t": 3, "committed": 1, "visible": 0, "max_lag_s": None},
                      {"t": 4, "committed": 0, "visible": 1, "max_lag_s": None}]
    figs = [Figure("freshness_p99", 3.0, "s", None, None, "value <= 10")]
    _, table = write(figs, tmp_path, at=0, series=series)
    for name in ("freshness", "throughput"):
        png = tmp_path / f"1970-01-01T000000Z-{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
        assert f"![1970-01-01T000000Z-{name}](1970-01-01T000000Z-{name}.png)" in table.read_text()
