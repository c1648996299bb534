"""cdclake's own Prometheus exporter: what the JMX metrics of Kafka and Connect cannot say.

Every scrape reads the live state (nothing is cached, so no value freezes at its last
reading while the pipeline is idle): the replication slot from PostgreSQL, the
connector's states from Kafka Connect, each table's position and freshness in every layer
(:mod:`cdclake.health.layers`), the dead-letter topic's size, the stream processor's
lag, and the run ledger's job runs and verify results (:mod:`cdclake.monitoring.runs`).
Metric names are ``cdclake_*``; the alert rules in ``deploy/monitoring/`` use them.

Example:
    >>> from cdclake.config import load
    >>> serve(load("pipeline.yaml"), port=9464)  # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from cdclake.config import Pipeline
from cdclake.monitoring import runs

STATES = ("RUNNING", "PAUSED", "STOPPED", "FAILED", "UNASSIGNED", "RESTARTING")


def gauge(name: str, doc: str, labels: list[str], samples: list[tuple[list[str], float | None]]) -> GaugeMetricFamily:
    """One gauge family; samples whose value is None (unknown) are left out, not reported as 0."""
    family = GaugeMetricFamily(name, doc, labels=labels)
    for values, value in samples:
        if value is not None:
            family.add_metric(values, float(value))
    return family


def slot_metrics(slot: dict[str, Any]) -> list[GaugeMetricFamily]:
    name = [slot["name"]]
    exists = slot.get("exists", False)
    return [
        gauge("cdclake_slot_exists", "1 when the replication slot exists", ["slot"],
              [(name, None if "error" in slot else exists)]),
        gauge("cdclake_slot_active", "1 when a connector streams from the slot", ["slot"],
              [(name, slot.get("active") if exists else None)]),
        gauge("cdclake_slot_lag_bytes", "pg_current_wal_lsn() - confirmed_flush_lsn", ["slot"],
              [(name, slot.get("lag_bytes"))]),
        gauge("cdclake_slot_retained_wal_bytes", "WAL kept for the slot: pg_current_wal_lsn() - restart_lsn",
              ["slot"], [(name, slot.get("retained_wal_bytes"))]),
        gauge("cdclake_slot_wal_lost", "1 when wal_status is lost (changes are missing)", ["slot"],
              [(name, slot.get("wal_status") == "lost" if exists else None)]),
    ]


def connector_metrics(status: dict[str, Any]) -> list[GaugeMetricFamily]:
    name = status["name"]
    state = status.get("state")
    tasks = status.get("tasks", [])
    return [
        gauge("cdclake_connector_state", "1 for the connector's current state", ["connector", "state"],
              [([name, s], s == state) for s in STATES] if state in STATES else []),
        gauge("cdclake_connector_task_state", "1 for each task's current state", ["connector", "task", "state"],
              [([name, str(t["id"]), s], s == t["state"]) for t in tasks for s in STATES]),
        gauge("cdclake_connector_tasks", "tasks the connector has", ["connector"],
              [([name], len(tasks) if state else None)]),
    ]


def layer_metrics(report: dict[str, Any]) -> list[GaugeMetricFamily]:
    rows = [(table, layer, entry[layer]) for table, entry in report["tables"].items() for layer in ("bronze", "silver")]
    rows += [(model, "gold", state) for model, state in report["gold"].items()]
    labels = ["table", "layer"]
    return [
        gauge("cdclake_layer_freshness_seconds", "age of the newest visible source commit; 0 when nothing "
              "is pending upstream", labels, [([t, layer], s["freshness_seconds"]) for t, layer, s in rows]),
        gauge("cdclake_layer_age_seconds", "now - newest source commit visible in the layer", labels,
              [([t, layer], s["age_seconds"]) for t, layer, s in rows]),
        gauge("cdclake_layer_last_commit_timestamp_seconds", "time of the layer's last Iceberg commit", labels,
              [([t, layer], s["last_commit"]) for t, layer, s in rows]),
        gauge("cdclake_layer_caught_up", "1 when the layer holds everything its upstream has", labels,
              [([t, layer], s["caught_up"]) for t, layer, s in rows]),
        gauge("cdclake_layer_lag_events", "events in the topic not yet committed to bronze", labels,
              [([t, "bronze"], e["bronze"]["lag_events"]) for t, e in report["tables"].items()]),
        gauge("cdclake_topic_end_offset", "sum of the table topic's end offsets", ["table", "topic"],
              [([t, e["topic"]], e["end_offset"]) for t, e in report["tables"].items()]),
        gauge("cdclake_freshness_objective_violated", "1 warn, 2 error (monitoring.freshness)", labels,
              [([t, layer], {"ok": 0, "warn": 1, "error": 2}.get(s["objective"])) for t, layer, s in rows]),
    ]


def stream_metrics(pipeline: Pipeline, stream: dict[str, Any]) -> list[GaugeMetricFamily]:
    from cdclake.broker.topics import end_offsets

    dlq = None
    if pipeline.stream.enabled:
        try:
            topic = pipeline.stream.dead_letter_topic
            dlq = sum(end_offsets(pipeline.kafka.bootstrap, [topic]).get(topic, {}).values())
        except Exception:  # noqa: BLE001 - an unreachable broker shows as cdclake_up{component="kafka"} 0
            dlq = None
    return [
        gauge("cdclake_dlq_messages", "records in the stream processor's dead-letter topic", ["topic"],
              [([pipeline.stream.dead_letter_topic], dlq)]),
        gauge("cdclake_stream_consumer_lag", "stream processor consumer lag (records)", [],
              [([], stream.get("consumer_lag"))]),
    ]


def job_metrics(ledger: dict[str, dict[str, Any]]) -> list[GaugeMetricFamily | CounterMetricFamily]:
    """From the run ledger (monitoring/runs.py): runs by outcome, the last run's duration and result.

    The label is ``layer``, not ``job``: Prometheus gives every scraped series its own ``job``.
    """
    total = CounterMetricFamily("cdclake_job_runs", "layer runs recorded in the run ledger", labels=["layer", "outcome"])
    for job, entry in ledger.items():
        for outcome, count in entry["runs"].items():
            total.add_metric([job, outcome], count)
    last = [(job, entry["last"]) for job, entry in ledger.items()]
    return [
        total,
        gauge("cdclake_job_last_duration_seconds", "how long the job's last run took", ["layer"],
              [([job], run["seconds"]) for job, run in last]),
        gauge("cdclake_job_last_run_timestamp_seconds", "when the job's last run started", ["layer"],
              [([job], run["started"]) for job, run in last]),
        gauge("cdclake_job_last_run_failed", "1 when the job's last run failed for some table", ["layer"],
              [([job], run["outcome"] == "failed") for job, run in last]),
        gauge("cdclake_job_last_success_timestamp_seconds", "when the job last ended without a failure", ["layer"],
              [([job], entry["last_success"]) for job, entry in ledger.items()]),
    ]


def verify_metrics(result: dict[str, Any] | None) -> list[GaugeMetricFamily]:
    """The last ``cdclake verify`` per silver table and gold model: exact or not, and when."""
    entries = [(name, "silver", e) for name, e in (result or {}).get("tables", {}).items()]
    entries += [(name, "gold", e) for name, e in (result or {}).get("gold", {}).items()]
    labels = ["table", "layer"]
    return [
        gauge("cdclake_verify_exact", "1 when the last verify found the layer equal to the source", labels,
              [([name, layer], e["ok"]) for name, layer, e in entries]),
        gauge("cdclake_verify_differences", "rows missing, extra or different at the last verify", labels,
              [([name, layer], e.get("missing", 0) + e.get("extra", 0) + e.get("different", 0))
               for name, layer, e in entries if layer == "silver"]),
        gauge("cdclake_verify_timestamp_seconds", "when the layer was last verified", labels,
              [([name, layer], e["at"]) for name, layer, e in entries]),
    ]


class CdclakeCollector(Collector):
    """Collects everything on each scrape; a component that is down shows as ``cdclake_up`` 0."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from cdclake.health.layers import full_status

        started = time.monotonic()
        status = full_status(self.pipeline, controller=False)
        layers = status.pop("layers")
        status["lakehouse"] = {"state": layers["state"]}
        yield gauge("cdclake_up", "1 when the component answers", ["component"],
                    [([name], part.get("state") == "up") for name, part in status.items()
                     if isinstance(part, dict) and part.get("state") in ("up", "down")])
        kafka = status["kafka"]
        yield gauge("cdclake_kafka_under_replicated_partitions", "partitions with fewer in-sync replicas than "
                    "replicas", [], [([], len(kafka["under_replicated_partitions"]) if kafka["state"] == "up" else None)])
        yield from slot_metrics(status["connector"]["slot"])
        yield from connector_metrics(status["connector"])
        yield from layer_metrics(layers)
        yield from stream_metrics(self.pipeline, status["stream"])
        yield from job_metrics(status["runs"])
        yield from verify_metrics(runs.last_verify(self.pipeline.state_dir))
        yield gauge("cdclake_scrape_duration_seconds", "time this scrape took", [],
                    [([], time.monotonic() - started)])


def registry(pipeline: Pipeline) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(CdclakeCollector(pipeline))
    return reg


def serve(pipeline: Pipeline, port: int, address: str = "127.0.0.1") -> Any:
    """Serve ``/metrics`` on ``address:port`` in a background thread; returns the server."""
    from prometheus_client import start_http_server

    server, _thread = start_http_server(port, addr=address, registry=registry(pipeline))
    return server
