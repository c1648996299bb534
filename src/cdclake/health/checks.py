"""What each component of the stack is doing right now.

Every function returns a plain dict (JSON-ready) with at least ``state`` ("up" or
"down") and the component's address; ``error`` says why a component is down.
"""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from typing import Any

import psycopg
from confluent_kafka import KafkaException
from cdclake.broker.clients import admin as kafka_admin

from cdclake.config import Pipeline, mask_dsn
from cdclake.errors import CdclakeError
from cdclake.install import jvm
from cdclake.source import connection
from cdclake.stack.kafka import LocalKafka, java_argv
from cdclake.stream.metrics import stream_status

QUORUM_MAIN = "org.apache.kafka.tools.MetadataQuorumCommand"


def stack_status(pipeline: Pipeline, controller: bool = True) -> dict[str, Any]:
    """One JSON object: each component's state and address.

    Args:
        controller: also ask the KRaft quorum for its leader (a JVM tool run: seconds; the
            metrics exporter skips it so a scrape stays fast).
    """
    return {
        "postgres": postgres_status(pipeline),
        "kafka": kafka_status(pipeline, controller),
        "connect": connect_status(pipeline),
        "connector": _connector_status(pipeline),
        "stream": stream_status(pipeline),
    }


def _connector_status(pipeline: Pipeline) -> dict[str, Any]:
    from cdclake.capture.service import connector_status

    return connector_status(pipeline)


def postgres_status(pipeline: Pipeline) -> dict[str, Any]:
    out: dict[str, Any] = {"managed": pipeline.source.is_managed,
                           "dsn": mask_dsn(connection.admin_dsn(pipeline))}
    try:
        with connection.connect(pipeline) as conn:
            row = conn.execute("SELECT current_setting('server_version'), current_setting('wal_level')").fetchone()
        out.update(state="up", version=row[0], wal_level=row[1])
    except (psycopg.Error, OSError) as exc:
        out.update(state="down", error=_first_line(exc))
    return out


def kafka_status(pipeline: Pipeline, controller: bool = True) -> dict[str, Any]:
    bootstrap = pipeline.kafka.bootstrap
    out: dict[str, Any] = {"managed": pipeline.kafka.is_managed, "bootstrap_servers": bootstrap}
    try:
        admin = kafka_admin(bootstrap)
        metadata = admin.list_topics(timeout=5)
    except KafkaException as exc:
        out.update(state="down", error=_first_line(exc))
        return out
    under = [f"{t.topic}[{p.id}]" for t in metadata.topics.values() for p in t.partitions.values()
             if len(p.isrs) < len(p.replicas)]
    out.update(
        state="up",
        cluster_id=metadata.cluster_id,
        brokers=sorted(f"{b.id}@{b.host}:{b.port}" for b in metadata.brokers.values()),
        topics=len([t for t in metadata.topics if not t.startswith("__")]),
        under_replicated_partitions=under,
    )
    if pipeline.kafka.is_managed:
        out["version"] = _jar_version("kafka-clients")
        out["active_controller"] = _active_controller(pipeline) if controller else None
    return out


def connect_status(pipeline: Pipeline) -> dict[str, Any]:
    url = pipeline.connect.endpoint
    out: dict[str, Any] = {"managed": pipeline.connect.is_managed, "url": url}
    try:
        root = _get_json(f"{url}/")
        plugins = _get_json(f"{url}/connector-plugins")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        out.update(state="down", error=_first_line(exc))
        return out
    out.update(state="up", version=root.get("version"), kafka_cluster_id=root.get("kafka_cluster_id"),
               plugins=sorted(p["class"] for p in plugins))
    return out


def _get_json(url: str, timeout: float = 5) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.load(resp)


def _jar_version(artifact: str) -> str | None:
    try:
        jars = jvm.installed("kafka").glob(f"{artifact}-*.jar")
    except CdclakeError:
        return None
    for jar in jars:
        return jar.stem.removeprefix(f"{artifact}-")
    return None


def _active_controller(pipeline: Pipeline) -> int | None:
    """The KRaft quorum leader, from the metadata-quorum tool (Kafka's own answer)."""
    kafka = pipeline.kafka
    local = LocalKafka(pipeline.state_dir, kafka.nodes, kafka.port, kafka.replication_factor)
    try:
        argv = java_argv("128m", QUORUM_MAIN, local.log4j_file(), "--bootstrap-server", kafka.bootstrap,
                         "describe", "--status")
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (CdclakeError, subprocess.TimeoutExpired, OSError):
        return None
    for line in result.stdout.splitlines():
        if line.startswith("LeaderId:"):
            return int(line.split(":", 1)[1])
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
