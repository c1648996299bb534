"""``cdclake up`` / ``down``: the local stack in dependency order.

PostgreSQL, then Kafka, then Connect (which needs Kafka for its internal topics). A
component given by address in pipeline.yaml is used, not started. A failed ``up`` stops
whatever it had started; ``down`` stops exactly the daemons whose pid files ``up`` wrote.
"""

from __future__ import annotations

import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cdclake.config import Pipeline
from cdclake.stack import process
from cdclake.stack.connect import LocalConnect
from cdclake.stack.kafka import LocalKafka, format_storage
from cdclake.stack.postgres import LocalPostgres

STOP_TIMEOUT = 30.0
PG_TIMEOUT, KAFKA_TIMEOUT, CONNECT_TIMEOUT, MONITORING_TIMEOUT = 60.0, 120.0, 180.0, 60.0

Progress = Callable[[str], None]


@dataclass
class LocalStack:
    """The managed parts of a pipeline's stack (None where the config gives an address)."""

    postgres: LocalPostgres | None
    kafka: LocalKafka | None
    connect: LocalConnect | None

    @classmethod
    def of(cls, pipeline: Pipeline) -> LocalStack:
        state = pipeline.state_dir
        src, kafka, connect = pipeline.source, pipeline.kafka, pipeline.connect
        jmx = pipeline.monitoring.jmx_port if pipeline.monitoring.jmx_exporter else None
        return cls(
            postgres=LocalPostgres(state, src.port, src.max_slot_wal_keep_size) if src.is_managed else None,
            kafka=LocalKafka(state, kafka.nodes, kafka.port, kafka.replication_factor, kafka.heap, jmx)
            if kafka.is_managed else None,
            connect=LocalConnect(state, connect.port, kafka.bootstrap, kafka.replication_factor, connect.group_id,
                                 connect.heap, jmx and jmx + 10, connect.workers) if connect.is_managed else None,
        )

    def daemons(self) -> list[process.Daemon]:
        """Every managed daemon, in start order."""
        out = []
        if self.postgres:
            out.append(self.postgres.daemon())
        if self.kafka:
            out.extend(self.kafka.daemons())
        if self.connect:
            out.extend(self.connect.daemons())
        return out


@dataclass
class UpReport:
    started: list[str] = field(default_factory=list)
    already_running: list[str] = field(default_factory=list)
    external: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def up(pipeline: Pipeline, progress: Progress = print) -> UpReport:
    """Start every managed component that is not running; wait until each is ready."""
    stack = LocalStack.of(pipeline)
    report = UpReport(external=[name for name, part in
                                (("postgres", stack.postgres), ("kafka", stack.kafka), ("connect", stack.connect))
                                if part is None])
    try:
        if stack.postgres:
            _up_postgres(pipeline, stack.postgres, report, progress)
        if stack.kafka:
            _up_kafka(stack.kafka, report, progress)
        if stack.connect:
            _up_connect(stack.connect, report, progress)
        if pipeline.monitoring.serve:
            _up_monitoring(pipeline, report, progress)
    except BaseException:
        if report.started:
            progress("up failed: stopping what it started (" + ", ".join(report.started) + ")")
        run_dir = pipeline.state_dir / "run"
        stop_pidfiles([run_dir / f"{name}.pid" for name in report.started], progress)
        raise
    return report


def _start(daemon: process.Daemon, probe: Callable[[], bool], timeout: float, what: str,
           report: UpReport, progress: Progress) -> bool:
    if process.running_pid(daemon.pidfile):
        report.already_running.append(daemon.name)
        return False
    progress(f"starting {daemon.name} ...")
    pid = process.start(daemon)
    report.started.append(daemon.name)
    report.seconds[daemon.name] = round(process.wait_ready(daemon, pid, probe, timeout, what), 1)
    progress(f"{daemon.name} ready in {report.seconds[daemon.name]}s (log: {daemon.log})")
    return True


def _up_postgres(pipeline: Pipeline, pg: LocalPostgres, report: UpReport, progress: Progress) -> None:
    if pg.init_cluster():
        progress(f"created PostgreSQL cluster in {pg.data_dir}")
    _start(pg.daemon(), pg.probe, PG_TIMEOUT, f"SELECT 1 on port {pg.port}", report, progress)
    for database in (pipeline.source.database, pipeline.lakehouse.catalog_database):
        pg.ensure_database(database)


def _up_kafka(kafka: LocalKafka, report: UpReport, progress: Progress) -> None:
    daemons = kafka.daemons()
    if all(process.running_pid(d.pidfile) for d in daemons):
        report.already_running.extend(d.name for d in daemons)
        return
    format_storage(kafka.prepare())
    started = {}
    for node, daemon in zip(kafka.node_list(), daemons):
        if process.running_pid(daemon.pidfile):
            report.already_running.append(daemon.name)
            continue
        progress(f"starting {daemon.name} (KRaft broker+controller on {node.address}) ...")
        started[node.node_id] = (node, daemon, process.start(daemon))
        report.started.append(daemon.name)
    # The nodes of a quorum need each other to elect a leader, so they start together.
    t0 = time.monotonic()
    for node, daemon, pid in started.values():
        process.wait_ready(daemon, pid, lambda n=node: kafka.probe(n), KAFKA_TIMEOUT,
                           f"a metadata response from {node.address}")
        report.seconds[daemon.name] = round(time.monotonic() - t0, 1)
        progress(f"{daemon.name} ready in {report.seconds[daemon.name]}s (log: {daemon.log})")


def _up_connect(connect: LocalConnect, report: UpReport, progress: Progress) -> None:
    connect.prepare()
    for index in connect.indexes():
        _start(connect.daemon(index), lambda i=index: connect.probe(i), CONNECT_TIMEOUT,
               f"GET {connect.worker_url(index)}/connector-plugins listing Debezium", report, progress)


def _up_monitoring(pipeline: Pipeline, report: UpReport, progress: Progress) -> None:
    from cdclake.monitoring.service import daemons

    for daemon, probe, what in daemons(pipeline):
        _start(daemon, probe, MONITORING_TIMEOUT, what, report, progress)


@dataclass
class DownReport:
    stopped: list[str] = field(default_factory=list)
    purged: bool = False


# Readers of the stack and consumers of Kafka first, PostgreSQL last; every Kafka node is
# signalled at once because a quorum that loses members one by one stalls the last ones'
# controlled shutdown.
STOP_ORDER = ("monitoring", "airflow", "stream", "connect", "kafka", "postgres")


def down(pipeline: Pipeline, purge: bool = False, progress: Progress = print) -> DownReport:
    """Stop every daemon ``up`` started (by its pid file); with ``purge`` delete the state too."""
    report = DownReport()
    run_dir = pipeline.state_dir / "run"
    report.stopped = stop_pidfiles(sorted(run_dir.glob("*.pid")) if run_dir.exists() else [], progress)
    if purge and pipeline.state_dir.exists():
        progress(f"deleting {pipeline.state_dir}")
        shutil.rmtree(pipeline.state_dir)
        report.purged = True
    return report


def stop_pidfiles(pidfiles: list[Path], progress: Progress) -> list[str]:
    """Stop the daemons behind these pid files in STOP_ORDER; returns the names stopped."""
    stopped = []
    for prefix in STOP_ORDER:
        group = [p for p in pidfiles if p.stem.split("-")[0] == prefix]
        running = [(p, process.running_pid(p)) for p in group]
        for pidfile, pid in running:
            if pid:
                progress(f"stopping {pidfile.stem} ...")
                process.signal_group(pid, signal.SIGINT if prefix == "postgres" else signal.SIGTERM)
        for pidfile, pid in running:
            if pid:
                process.stop_pid(pidfile, STOP_TIMEOUT)
                stopped.append(pidfile.stem)
            pidfile.unlink(missing_ok=True)
    return stopped
