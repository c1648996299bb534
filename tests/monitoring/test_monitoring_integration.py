"""Monitoring on the real stack: layer positions and freshness equal what Kafka and Iceberg
hold, the exporter reports them, and a real Prometheus scrapes the same numbers."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request

import pytest

from cdclake.broker.topics import end_offsets
from cdclake.capture.service import slot_status
from cdclake.health.layers import full_status, layer_report
from cdclake.health.verdict import StatusExit, exit_code
from cdclake.lakehouse import runner
from cdclake.lakehouse.configuration import SILVER_WATERMARK_KEY
from cdclake.lakehouse.spark import latest_summary_value
from cdclake.monitoring import runs
from cdclake.monitoring.configuration import MonitoringConfig
from cdclake.monitoring.exporter import serve
from cdclake.source.workload import Workload
from tests.conftest import unique
from tests.lakehouse.conftest import cleanup, spark, wait_captured  # noqa: F401 - fixtures
from tests.lakehouse.test_lakehouse_integration import DEMO, QUIET, assert_exact, demo_capture

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_layers_exporter_and_prometheus_agree_with_kafka_and_iceberg(stack, spark, cleanup, tmp_path):
    tag = unique("mon")
    pipeline, plan = demo_capture(stack, tag, DEMO, cleanup, ops=200)
    before, started = runs.tally(pipeline.state_dir), time.time()
    assert not runner.run(spark, plan, ["bronze", "silver", "gold"], progress=QUIET).failures
    assert_ledger_recorded(pipeline, before, started)
    assert_exact(plan)
    verified = runs.last_verify(pipeline.state_dir)
    assert all(verified["tables"][ref.source]["ok"] and verified["tables"][ref.source]["at"] >= started
               for ref in plan.tables)

    report = layer_report(pipeline)
    ends = end_offsets(plan.bootstrap, [r.topic for r in plan.tables])
    for ref in plan.tables:
        entry = report["tables"][ref.source]
        newest = spark.sql(f"SELECT max(source_ts) FROM {ref.bronze}").first()[0]
        assert entry["end_offset"] == entry["bronze"]["position"] == sum(ends[ref.topic].values())
        assert entry["bronze"]["lag_events"] == 0 and entry["bronze"]["freshness_seconds"] == 0
        assert abs(entry["bronze"]["newest_source_ts"] - newest.timestamp()) < 1e-3
        watermark = latest_summary_value(spark, ref.silver, SILVER_WATERMARK_KEY)[1]
        assert entry["silver"]["watermark"] == int(watermark) == entry["bronze"]["snapshot_id"]
        assert entry["silver"]["caught_up"] and entry["silver"]["newest_source_ts"] == entry["bronze"]["newest_source_ts"]
    assert report["gold"] and all(g["caught_up"] and g["freshness_seconds"] == 0 for g in report["gold"].values())

    # Changes that reach Kafka but not bronze: lag is exactly the new events, freshness grows.
    Workload(pipeline, seed=3, schema=tag).run(rate=500, ops=60, progress=QUIET)
    wait_captured(pipeline, plan)
    behind = layer_report(pipeline)
    for ref in plan.tables:
        entry, before = behind["tables"][ref.source], report["tables"][ref.source]
        assert entry["bronze"]["lag_events"] == entry["end_offset"] - before["end_offset"]
    lagging = [t for t, e in behind["tables"].items() if e["bronze"]["lag_events"]]
    assert lagging and all(behind["tables"][t]["bronze"]["freshness_seconds"] > 0 for t in lagging)

    strict = pipeline.model_copy(update={"monitoring": MonitoringConfig(
        freshness={"warn_after_seconds": 0.001, "error_after_seconds": 0.002})})
    assert exit_code(full_status(strict)) == StatusExit.FRESHNESS_ERROR
    assert exit_code(full_status(pipeline)) == StatusExit.OK

    scraped = scrape_with_prometheus(pipeline, tmp_path)
    for table in lagging:
        assert scraped[("cdclake_layer_lag_events", table)] == behind["tables"][table]["bronze"]["lag_events"]
        assert scraped[("cdclake_topic_end_offset", table)] == behind["tables"][table]["end_offset"]
    slot = slot_status(pipeline)
    assert scraped[("cdclake_slot_retained_wal_bytes", pipeline.source.slot)] > 0
    assert slot["retained_wal_bytes"] > 0
    assert all(scraped[("cdclake_verify_exact", ref.source)] == 1 for ref in plan.tables)
    assert all(scraped[("cdclake_job_last_run_failed", job)] == 0 for job in runner.LAYERS)


def assert_ledger_recorded(pipeline, before: dict, started: float) -> None:
    """Each layer's run is in the ledger once more than before, ok, with its duration."""
    after = runs.tally(pipeline.state_dir)
    for job in runner.LAYERS:
        earlier = before.get(job, {"runs": {"ok": 0}})["runs"]["ok"]
        assert after[job]["runs"]["ok"] == earlier + 1, (job, after[job])
        assert after[job]["last"]["outcome"] == "ok" and after[job]["last"]["started"] >= started
        assert after[job]["last"]["seconds"] > 0 and after[job]["last_success"] > started


def scrape_with_prometheus(pipeline, tmp_path) -> dict[tuple[str, str], float]:
    """Run a real Prometheus against the exporter; return the queried values by (metric, table|slot)."""
    if not shutil.which("prometheus"):
        from cdclake.install.setup import apt_install

        apt_install("prometheus")
    exporter = serve(pipeline, free_port())
    port = free_port()
    (tmp_path / "prometheus.yml").write_text(json.dumps({
        "global": {"scrape_interval": "5s", "scrape_timeout": "5s"},
        "scrape_configs": [{"job_name": "cdclake",
                            "static_configs": [{"targets": [f"127.0.0.1:{exporter.server_port}"]}]}]}))
    proc = subprocess.Popen(["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        return _query_until_scraped(port)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        exporter.shutdown()


def _query_until_scraped(port: int, timeout: float = 90) -> dict[tuple[str, str], float]:
    query = urllib.parse.quote('{__name__=~"cdclake_layer_lag_events|cdclake_topic_end_offset|'
                               'cdclake_slot_retained_wal_bytes|cdclake_verify_exact|cdclake_job_last_run_failed"}')
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/query?query={query}", timeout=5) as resp:
                result = json.load(resp)["data"]["result"]
        except OSError:
            result = []
        if result:
            return {(r["metric"]["__name__"], r["metric"].get("table") or r["metric"].get("slot")
                     or r["metric"].get("layer")): float(r["value"][1]) for r in result}
        time.sleep(1)
    raise TimeoutError(f"Prometheus on port {port} scraped no cdclake metrics within {timeout}s")


def test_jmx_exporter_agents_expose_broker_connect_and_debezium_metrics(stack, cleanup):
    from psycopg import sql

    from cdclake.source import connection
    from tests.conftest import capture_pipeline
    from tests.lakehouse.conftest import start_capture

    tag = unique("jmx")
    pipeline = capture_pipeline(stack, tag, ["items"])
    cleanup(pipeline)
    with connection.connect(pipeline, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(tag)))
        conn.execute(sql.SQL("CREATE TABLE {}.items (id int PRIMARY KEY, name text)").format(sql.Identifier(tag)))
    start_capture(pipeline)
    port = stack.monitoring.jmx_port
    broker = _samples(port, "kafka_server_replicamanager_underreplicatedpartitions")
    assert broker == {"": 0.0}
    server = f'server="{pipeline.kafka.topic_prefix}"'
    connected = _samples(port + 10, "debezium_postgres_streaming_connected", server)
    assert list(connected.values()) == [1.0]
    assert _samples(port + 10, "debezium_postgres_streaming_queueremainingcapacity", server)
    status = _samples(port + 10, "kafka_connect_connector_status", f'connector="{pipeline.connect.connector_name}"')
    assert [labels for labels, value in status.items() if value == 1.0] == [
        f'connector="{pipeline.connect.connector_name}",status="running"']


def _samples(port: int, name: str, having: str = "", timeout: float = 60) -> dict[str, float]:
    """``{labels: value}`` of one metric from a JMX exporter agent, waiting until it appears."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            lines = resp.read().decode().splitlines()
        found = {}
        for line in lines:
            if line.startswith(name + "{") or line.startswith(name + " "):
                series, value = line.rsplit(" ", 1)
                labels = series[len(name):].strip("{}")
                if having in labels:
                    found[labels] = float(value)
        if found:
            return found
        time.sleep(1)
    raise TimeoutError(f"no {name}{{{having}}} on the JMX exporter at port {port} within {timeout}s")


def test_up_serves_the_dashboard_and_exporter_and_down_stops_them(stack):
    """``monitoring.serve``: the ``up``ed stack serves both pages; status lists them; down stops them."""
    from cdclake.config import load
    from cdclake.monitoring.endpoints import running_endpoints
    from cdclake.stack.stack import stop_pidfiles, up
    from tests.lakehouse.conftest import write_pipeline

    dashboard_port, metrics_port = free_port(), free_port()
    served = stack.model_copy(update={"monitoring": stack.monitoring.model_copy(update={
        "serve": True, "dashboard_port": dashboard_port, "metrics_port": metrics_port})})
    pipeline = load(write_pipeline(served, unique("serve")))
    report = up(pipeline, progress=QUIET)
    pidfiles = [pipeline.state_dir / "run" / f"{name}.pid" for name in report.started]
    try:
        assert report.started == ["monitoring-dashboard", "monitoring-metrics"]
        assert {"postgres", "connect"} <= set(report.already_running)
        with urllib.request.urlopen(f"http://127.0.0.1:{dashboard_port}/api/status", timeout=30) as resp:
            shown = json.load(resp)
        assert shown["connect"]["state"] == "up" and shown["postgres"]["state"] == "up"
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=30) as resp:
            assert 'cdclake_up{component="kafka"} 1.0' in resp.read().decode()
        assert running_endpoints(pipeline.state_dir) == {
            "dashboard": f"http://127.0.0.1:{dashboard_port}/", "metrics": f"http://127.0.0.1:{metrics_port}/metrics"}
        assert up(pipeline, progress=QUIET).started == []  # idempotent
    finally:
        stopped = stop_pidfiles(pidfiles, QUIET)  # what `down` does for these, leaving the session stack up
    assert stopped == ["monitoring-dashboard", "monitoring-metrics"]
    assert running_endpoints(pipeline.state_dir) == {} and not any(p.exists() for p in pidfiles)
