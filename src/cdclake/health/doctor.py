"""``cdclake doctor``: the reference runbook's daily checks and failure scenarios, as code.

Each check reuses the Airflow DAG's health checks (:mod:`cdclake.health.pipeline`) or the
layer report, and turns a failure into a :class:`Finding` with the exact command that
fixes it: broker down, under-replicated partitions, connector or task failed, slot
missing / lost / inactive / lagging, bronze or silver behind, disk full on the Kafka
data directory, a job whose last run failed, a table the last verify found different.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cdclake.config import Pipeline
from cdclake.health.pipeline import (ConnectorNotRunningError, HealthCheckError, KafkaUnhealthyError,
                                     ReplicationSlotError, check_connector, check_kafka, check_replication_slot)

DISK_USED_MAX = 0.85  # the Kafka data directory's file system, fraction used


@dataclass
class Finding:
    check: str
    ok: bool
    message: str
    fix: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def kafka_finding(pipeline: Pipeline) -> Finding:
    try:
        summary = check_kafka(pipeline)
    except KafkaUnhealthyError as exc:
        under = exc.details.get("under_replicated")
        fix = ("restart the lagging broker (`cdclake up` restarts a stopped managed node) and wait for the ISR: "
               f"kafka-topics.sh --bootstrap-server {pipeline.kafka.bootstrap} --describe --under-replicated-partitions"
               if under else _broker_fix(pipeline))
        return Finding("kafka", False, str(exc), fix)
    return Finding("kafka", True, f"{summary['brokers']} broker(s) at {summary['bootstrap_servers']}, "
                   "no under-replicated partition")


def _broker_fix(pipeline: Pipeline) -> str:
    if pipeline.kafka.is_managed:
        return "cdclake up   # restarts the managed broker; its log: .cdclake/logs/kafka-1.log"
    return "systemctl restart kafka   # on the broker host, then: kafka-broker-api-versions.sh " \
           f"--bootstrap-server {pipeline.kafka.bootstrap}"


def connector_finding(pipeline: Pipeline) -> Finding:
    try:
        summary = check_connector(pipeline)
    except ConnectorNotRunningError as exc:
        return Finding("connector", False, str(exc), _connector_fix(pipeline, exc))
    return Finding("connector", True, f"{summary['connector']}: " +
                   ", ".join(f"{k} {v}" for k, v in summary["states"].items()))


def _connector_fix(pipeline: Pipeline, exc: ConnectorNotRunningError) -> str:
    states = exc.details.get("states")
    if not states:
        return "cdclake up && cdclake connector apply" if pipeline.connect.is_managed else "cdclake connector apply"
    if {"PAUSED", "STOPPED"} & set(states.values()):
        return "cdclake connector resume"
    url, name = pipeline.connect.endpoint, pipeline.connect.connector_name
    return (f"cdclake connector restart   # = curl -X POST '{url}/connectors/{name}/restart?includeTasks=true"
            "&onlyFailed=true'; if it fails again, check the slot (below) and the Connect log")


def slot_finding(pipeline: Pipeline) -> Finding:
    try:
        summary = check_replication_slot(pipeline, pipeline.airflow.max_slot_lag_bytes)
    except ReplicationSlotError as exc:
        return Finding("slot", False, str(exc), _slot_fix(pipeline, str(exc)))
    return Finding("slot", True, f"{summary['slot']} active, wal_status {summary['wal_status']}, "
                   f"lag {summary['lag_bytes']} bytes, retained WAL {summary['retained_wal_bytes']} bytes")


def _slot_fix(pipeline: Pipeline, message: str) -> str:
    slot = pipeline.source.slot
    if "lost WAL" in message:
        return "cdclake recover   # resets offsets, new slot and snapshot; silver drops the gap's deletes"
    if "does not exist" in message:
        return ("cdclake connector apply   # Debezium creates the slot; `cdclake recover` if the connector "
                "streamed before")
    if "not active" in message:
        return "cdclake connector status && cdclake connector restart"
    if "cannot read" in message:
        return "cdclake up" if pipeline.source.is_managed else "check the source DSN and that PostgreSQL is up"
    return ("cdclake connector status   # the connector falls behind; check Kafka, then raise "
            "airflow.max_slot_lag_bytes only if the backlog is expected")


def layer_findings(pipeline: Pipeline) -> list[Finding]:
    """Bronze behind its topic, silver behind bronze, a layer past its freshness objective."""
    from cdclake.health.layers import layer_report

    report = layer_report(pipeline)
    if report["state"] == "down":
        return [Finding("lakehouse", False, f"cannot read the lakehouse: {report['error']}",
                        "cdclake status   # the catalog database (PostgreSQL) and Kafka must be up")]
    out = []
    for table, entry in report["tables"].items():
        out += [_layer_finding(table, "bronze", entry["bronze"],
                               f"{entry['bronze']['lag_events']} event(s) in {entry['topic']} not in bronze"),
                _layer_finding(table, "silver", entry["silver"], "silver has not merged bronze's newest snapshot")]
    return out


def _layer_finding(table: str, layer: str, state: dict[str, Any], behind: str) -> Finding:
    check = f"{layer} {table}"
    fresh = state["freshness_seconds"]
    if state["objective"] == "error":
        return Finding(check, False, f"{behind}; freshness {fresh:.0f}s is past its objective",
                       f"cdclake run {layer}   # or check its Airflow task / job log")
    if not state["caught_up"]:
        return Finding(check, True, f"{behind} (freshness {fresh or 0:.0f}s, within objective)")
    return Finding(check, True, f"caught up (objective {state['objective']})")


def run_findings(pipeline: Pipeline) -> list[Finding]:
    """The run ledger: a job whose last run failed, a table the last verify found different."""
    from cdclake.monitoring import runs

    out = []
    for job, entry in runs.tally(pipeline.state_dir).items():
        last = entry["last"]
        if last["outcome"] == "failed":
            why = "; ".join(f"{table}: {reason}" for table, reason in last["failures"].items())
            out.append(Finding(f"{job} job", False, f"the last run failed: {why}",
                               f"fix the cause named above, then: cdclake run {job}"))
        else:
            out.append(Finding(f"{job} job", True, f"the last run took {last['seconds']:.1f}s"))
    verified = runs.last_verify(pipeline.state_dir) or {}
    for table, entry in verified.get("tables", {}).items():
        if not entry["ok"]:
            out.append(Finding(f"verify {table}", False, "the last verify found silver different from the source",
                               f"cdclake verify {table}   # examples; then: cdclake rebuild silver {table}"))
    return out


def disk_finding(pipeline: Pipeline, used_max: float = DISK_USED_MAX) -> Finding:
    """The file system holding the managed Kafka's data directory (an external broker: its hosts)."""
    if not pipeline.kafka.is_managed:
        return Finding("kafka disk", True, "external Kafka: check its hosts (df -h /var/lib/kafka/data)")
    path = _existing(pipeline.state_dir / "kafka")
    usage = shutil.disk_usage(path)
    used = usage.used / usage.total
    message = f"{path}: {used:.0%} used, {usage.free / 2**30:.1f} GiB free"
    if used > used_max:
        return Finding("kafka disk", False, f"{message} (over {used_max:.0%})",
                       f"du -sh {path}/*/* | sort -h | tail; lower retention: kafka-configs.sh --bootstrap-server "
                       f"{pipeline.kafka.bootstrap} --alter --entity-type topics --entity-name <topic> "
                       "--add-config retention.ms=86400000")
    return Finding("kafka disk", True, message)


def _existing(path: Path) -> Path:
    while not path.exists():
        path = path.parent
    return path


CHECKS: list[Callable[[Pipeline], Finding | list[Finding]]] = [
    kafka_finding, connector_finding, slot_finding, disk_finding, layer_findings, run_findings]


def diagnose(pipeline: Pipeline) -> list[Finding]:
    """Run every check in runbook order; a check that raises unexpectedly becomes a finding."""
    out: list[Finding] = []
    for check in CHECKS:
        try:
            result = check(pipeline)
        except HealthCheckError as exc:
            result = Finding(check.__name__.removesuffix("_finding"), False, str(exc))
        out.extend(result if isinstance(result, list) else [result])
    return out


def render(findings: list[Finding]) -> str:
    lines = []
    for f in findings:
        lines.append(f"{'ok  ' if f.ok else 'FAIL'} {f.check:<24} {f.message}")
        if f.fix:
            lines.append(f"     {'':<24} fix: {f.fix}")
    bad = sum(not f.ok for f in findings)
    lines.append(f"{bad} problem(s)" if bad else "all checks passed")
    return "\n".join(lines)
