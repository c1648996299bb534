"""Unit tests: lag and freshness arithmetic, objectives, exit codes, metric families."""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry

from cdclake.health.layers import committed_position, freshness, lag_events, worst_objective
from cdclake.health.verdict import StatusExit, exit_code, problems
from cdclake.monitoring.configuration import FreshnessObjective, MonitoringConfig
from cdclake.monitoring.exporter import connector_metrics, layer_metrics, slot_metrics


def test_lag_counts_uncommitted_events_and_unread_partitions_whole():
    position = committed_position({0: 9, 1: 4})  # last offsets consumed
    assert position == {0: 10, 1: 5}
    assert lag_events({0: 10, 1: 8, 2: 3}, position) == 0 + 3 + 3


def test_freshness_is_zero_when_caught_up_and_the_age_otherwise():
    assert freshness(100.0, True, now=160.0) == (60.0, 0.0)
    assert freshness(100.0, False, now=160.0) == (60.0, 60.0)
    assert freshness(None, True, now=160.0) == (None, 0.0)
    assert freshness(None, False, now=160.0) == (None, None)


def test_objectives_like_dbt_source_freshness():
    objective = FreshnessObjective(warn_after_seconds=60, error_after_seconds=120)
    assert [objective.evaluate(s) for s in (None, 0, 61, 121)] == ["unknown", "ok", "warn", "error"]
    config = MonitoringConfig(tables={"users": {"warn_after_seconds": 1, "error_after_seconds": 2}})
    assert config.objective("public.users").error_after_seconds == 2
    assert config.objective("public.orders") == config.freshness
    with pytest.raises(ValueError, match="error_after_seconds"):
        FreshnessObjective(warn_after_seconds=10, error_after_seconds=5)


def _layer(objective="ok", fresh=0.0, **extra):
    return {"exists": True, "snapshot_id": 1, "last_commit": 1.0, "newest_source_ts": 1.0, "caught_up": fresh == 0,
            "age_seconds": fresh, "freshness_seconds": fresh, "objective": objective, **extra}


def _status(bronze="ok", task="RUNNING", kafka="up"):
    layers = {"state": "up", "gold": {"gold_x": _layer()},
              "tables": {"public.users": {"topic": "cdc.users", "end_offset": 7,
                                          "bronze": _layer(bronze, 900.0, lag_events=3, position=4),
                                          "silver": _layer(watermark=1)}}}
    return {"postgres": {"state": "up"}, "kafka": {"state": kafka, "under_replicated_partitions": []},
            "connector": {"name": "c", "state": "RUNNING", "tasks": [{"id": 0, "state": task}],
                          "slot": {"name": "s", "exists": True, "active": True, "wal_status": "reserved",
                                   "lag_bytes": 10, "retained_wal_bytes": 20}},
            "layers": layers}


def test_exit_code_is_the_worst_finding():
    assert exit_code(_status()) == StatusExit.OK
    assert exit_code(_status(bronze="warn")) == StatusExit.OK
    assert exit_code(_status(bronze="error")) == StatusExit.FRESHNESS_ERROR
    assert exit_code(_status(bronze="error", task="FAILED")) == StatusExit.FAILED
    assert exit_code(_status(task="FAILED", kafka="down")) == StatusExit.DOWN
    assert [code for code, _ in problems(_status(bronze="error", task="FAILED"))] == [StatusExit.FAILED,
                                                                                       StatusExit.FRESHNESS_ERROR]
    assert worst_objective(_status(bronze="warn")["layers"]) == "warn"


def _scrape(families) -> str:
    class Fixed:
        def collect(self):
            return families

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Fixed())
    return generate_latest(registry).decode()


def test_metric_families_carry_the_status_numbers():
    status = _status(task="FAILED")
    text = _scrape(slot_metrics(status["connector"]["slot"]) + connector_metrics(status["connector"])
                   + layer_metrics(status["layers"]))
    assert 'cdclake_slot_lag_bytes{slot="s"} 10.0' in text
    assert 'cdclake_slot_retained_wal_bytes{slot="s"} 20.0' in text
    assert 'cdclake_connector_task_state{connector="c",state="FAILED",task="0"} 1.0' in text
    assert 'cdclake_connector_state{connector="c",state="RUNNING"} 1.0' in text
    assert 'cdclake_layer_lag_events{layer="bronze",table="public.users"} 3.0' in text
    assert 'cdclake_layer_freshness_seconds{layer="bronze",table="public.users"} 900.0' in text
    assert 'cdclake_layer_freshness_seconds{layer="gold",table="gold_x"} 0.0' in text
    assert 'cdclake_topic_end_offset{table="public.users",topic="cdc.users"} 7.0' in text


def test_unknown_values_are_absent_not_zero():
    text = _scrape(slot_metrics({"name": "s", "exists": False}))
    assert 'cdclake_slot_exists{slot="s"} 0.0' in text
    assert "cdclake_slot_lag_bytes{" not in text


def test_status_text_has_a_line_per_table_and_layer():
    from cdclake.commands.stack import render_status
    from cdclake.health.layers import render_layers

    status = {**_status(), "endpoints": {"metrics": "http://127.0.0.1:9464/metrics"},
              "runs": {"silver": {"runs": {"ok": 0, "failed": 1}, "last_success": None,
                                  "last": {"started": 0.0, "seconds": 4.25, "outcome": "failed",
                                           "failures": {"public.orders": "silver: boom"}}}}}
    text = render_layers(status)
    lines = text.splitlines()
    assert any(line.startswith("public.users") and "bronze" in line and " 3 " in line and "900" in line
               and line.endswith("ok") for line in lines)
    assert any("kafka" in line and "end offset 7" in line for line in lines)
    assert any(line.startswith("gold_x") and "gold" in line for line in lines)
    assert lines[-1] == "metrics: http://127.0.0.1:9464/metrics"
    assert lines[-2] == ("last silver run: FAILED at 1970-01-01 00:00:00 UTC after 4.2s "
                         "(public.orders: silver: boom)")
    assert not {"layers", "endpoints", "runs"} & {line.split()[0] for line in render_status(status).splitlines()}


def test_the_run_ledger_tallies_runs_and_keeps_the_last_verify_per_table(tmp_path):
    from cdclake.monitoring import runs

    runs.record_job(tmp_path, runs.JobRun("silver", started=100.0, seconds=2.0))
    runs.record_job(tmp_path, runs.JobRun("silver", started=200.0, seconds=3.0, failures={"public.orders": "boom"}))
    runs.record_job(tmp_path, runs.JobRun("bronze", started=150.0, seconds=1.0))
    (tmp_path / "runs" / "jobs.jsonl").open("a").write('{"job": "gold", "cut by a cra')  # a crash mid-line
    tally = runs.tally(tmp_path)
    assert set(tally) == {"silver", "bronze"}
    assert tally["silver"]["runs"] == {"ok": 1, "failed": 1}
    assert tally["silver"]["last"] == {"started": 200.0, "seconds": 3.0, "outcome": "failed",
                                       "failures": {"public.orders": "boom"}}
    assert tally["silver"]["last_success"] == 102.0

    runs.record_verify(tmp_path, {"tables": [{"table": "public.a", "ok": True, "missing": 0},
                                             {"table": "public.b", "ok": False, "missing": 2}],
                                  "gold": [{"model": "gold_x", "ok": True}]}, at=10.0)
    runs.record_verify(tmp_path, {"tables": [{"table": "public.b", "ok": True, "missing": 0}], "gold": []}, at=20.0)
    last = runs.last_verify(tmp_path)
    assert {t: (e["ok"], e["at"]) for t, e in last["tables"].items()} == {"public.a": (True, 10.0),
                                                                          "public.b": (True, 20.0)}
    assert last["gold"]["gold_x"]["ok"] is True


def test_the_ledger_is_cut_back_when_it_doubles(tmp_path, monkeypatch):
    from cdclake.monitoring import runs

    monkeypatch.setattr(runs, "KEEP_LINES", 5)
    for i in range(11):
        runs.record_job(tmp_path, runs.JobRun("bronze", started=float(i), seconds=1.0))
    kept = runs.job_runs(tmp_path)
    assert [r["started"] for r in kept] == [6.0, 7.0, 8.0, 9.0, 10.0]


def test_a_layer_run_is_recorded_with_only_its_own_tables_failures(tmp_path):
    from cdclake.lakehouse import runner
    from cdclake.lakehouse.configuration import LakehousePlan
    from cdclake.monitoring import runs

    plan = LakehousePlan(catalog=None, namespace="n", tables=(), bootstrap="", checkpoints="", state_dir=tmp_path)
    report = runner.RunReport(["silver"], failures={"public.a": "silver: old", "public.z": "bronze: other"})

    def merge() -> None:
        report.failures["public.b"] = "silver: broke"

    runner.recorded(plan, report, "silver", ["public.a", "public.b"], merge)
    assert report.failures == {"public.z": "bronze: other", "public.b": "silver: broke"}  # a merged again
    assert runs.tally(tmp_path)["silver"]["last"]["failures"] == {"public.b": "silver: broke"}


def test_job_and_verify_metrics_come_from_the_ledger():
    from cdclake.monitoring.exporter import job_metrics, verify_metrics

    ledger = {"silver": {"runs": {"ok": 4, "failed": 1}, "last_success": 50.0,
                         "last": {"started": 60.0, "seconds": 2.5, "outcome": "failed", "failures": {"t": "x"}}}}
    verified = {"tables": {"public.a": {"ok": False, "missing": 1, "extra": 2, "different": 3, "at": 9.0}},
                "gold": {"gold_x": {"ok": True, "at": 9.0}}}
    text = _scrape(job_metrics(ledger) + verify_metrics(verified))
    assert 'cdclake_job_runs_total{layer="silver",outcome="failed"} 1.0' in text
    assert 'cdclake_job_runs_total{layer="silver",outcome="ok"} 4.0' in text
    assert 'cdclake_job_last_run_failed{layer="silver"} 1.0' in text
    assert 'cdclake_job_last_duration_seconds{layer="silver"} 2.5' in text
    assert 'cdclake_verify_exact{layer="silver",table="public.a"} 0.0' in text
    assert 'cdclake_verify_differences{layer="silver",table="public.a"} 6.0' in text
    assert 'cdclake_verify_exact{layer="gold",table="gold_x"} 1.0' in text
    assert "cdclake_verify_exact" in _scrape(verify_metrics(None)) and "{" not in _scrape(verify_metrics(None))
