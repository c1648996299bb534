"""The managed Kafka Connect workers (distributed mode) with the Debezium plugin.

One worker by default; ``connect.workers: 2`` starts a second in the same group, as the
reference runs two Debezium tasks on ECS: when the worker running the connector's task
dies, the group moves the task to the survivor. Worker ``i`` listens on ``port + i - 1``
(and its JMX agent on ``jmx_port + i - 1``); worker 1's REST address is the cluster's.
"""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from cdclake.install import jvm
from cdclake.stack.kafka import G1, LOG4J2, java_argv, properties_text
from cdclake.stack.process import Daemon

CONNECT_MAIN = "org.apache.kafka.connect.cli.ConnectDistributed"
CONFIG_TOPIC, OFFSET_TOPIC, STATUS_TOPIC = "debezium_configs", "debezium_offsets", "debezium_status"
DEBEZIUM_POSTGRES = "io.debezium.connector.postgresql.PostgresConnector"
# G1 at its default pause target, not the broker's 20 ms: Debezium allocates a few KB per
# change, and a 20 ms target keeps the young generation so small that it collects ~5x as
# often. Measured with bench/capture on 2 cores, warm JVM: 18 s of GC pauses per run
# against 4 s; capture 0.28x -> 0.31x pg_recvlogical on Debezium 3.6.3 (one pair), and
# 0.28-0.34x -> 0.37-0.41x on 3.7.1 (2-3 runs each); young pauses p99 ~80-95 ms, max ~130 ms.
CONNECT_GC = G1


@dataclass(frozen=True)
class LocalConnect:
    state_dir: Path
    port: int
    bootstrap: str
    replication_factor: int
    group_id: str
    heap: str = "1g"
    jmx_port: int | None = None  # Prometheus JMX exporter port of worker 1 (Connect + Debezium MBeans)
    workers: int = 1

    @property
    def home(self) -> Path:
        return self.state_dir / "connect"

    @property
    def url(self) -> str:
        return self.worker_url(1)

    @property
    def secrets_dir(self) -> Path:
        """Files the worker's FileConfigProvider may read (``${file:<path>:<key>}``)."""
        return self.state_dir / "secrets"

    def indexes(self) -> range:
        return range(1, self.workers + 1)

    def worker_port(self, index: int) -> int:
        return self.port + index - 1

    def worker_url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.worker_port(index)}"

    def worker_id(self, index: int) -> str:
        """How Connect's REST status names the worker (``worker_id``): its advertised address."""
        return f"127.0.0.1:{self.worker_port(index)}"

    def worker_of(self, worker_id: str) -> int:
        """The index of the worker a REST status names, e.g. the one running a task."""
        for index in self.indexes():
            if self.worker_id(index) == worker_id:
                return index
        raise ValueError(f"worker {worker_id} is not one of this stack's Connect workers")

    def _name(self, index: int) -> str:
        return "connect" if index == 1 else f"connect-{index}"

    def daemon(self, index: int = 1) -> Daemon:
        name, jmx = self._name(index), self.jmx_port and self.jmx_port + index - 1
        return Daemon(
            name=name,
            argv=java_argv(self.heap, CONNECT_MAIN, self.home / "log4j2.properties",
                           str(self.home / f"{name}.properties"), jmx_port=jmx, jmx_rules="connect", gc=CONNECT_GC),
            log=self.state_dir / "logs" / f"{name}.log",
            pidfile=self.state_dir / "run" / f"{name}.pid",
            ports=[self.worker_port(index), *([jmx] if jmx else [])],
        )

    def daemons(self) -> list[Daemon]:
        return [self.daemon(index) for index in self.indexes()]

    def worker_properties(self, index: int = 1) -> dict[str, str]:
        port = str(self.worker_port(index))
        return {
            "bootstrap.servers": self.bootstrap,
            **distributed_worker_properties(self.group_id, self.replication_factor),
            "listeners": f"http://127.0.0.1:{port}",
            "rest.advertised.host.name": "127.0.0.1",
            "rest.advertised.port": port,
            "plugin.path": str(jvm.installed("debezium").parent),
            "plugin.discovery": "service_load",
        }

    def prepare(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "log4j2.properties").write_text(LOG4J2)
        for index in self.indexes():
            (self.home / f"{self._name(index)}.properties").write_text(
                properties_text(self.worker_properties(index), "cdclake up"))

    def probe(self, index: int = 1) -> bool:
        """Ready when the worker says it finished startup and it lists the Debezium plugin."""
        url = self.worker_url(index)
        with urllib.request.urlopen(f"{url}/health", timeout=3) as resp:
            if json.load(resp).get("status") != "healthy":
                return False
        return DEBEZIUM_POSTGRES in plugin_classes(url)


def distributed_worker_properties(group_id: str, replication_factor: int) -> dict[str, str]:
    """The Connect worker settings every target shares (local stack, AWS Fargate tasks)."""
    rf = str(replication_factor)
    return {
        "group.id": group_id,
        "config.storage.topic": CONFIG_TOPIC,
        "offset.storage.topic": OFFSET_TOPIC,
        "status.storage.topic": STATUS_TOPIC,
        "config.storage.replication.factor": rf,
        "offset.storage.replication.factor": rf,
        "status.storage.replication.factor": rf,
        "offset.storage.partitions": "25",
        "key.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "key.converter.schemas.enable": "false",
        "value.converter.schemas.enable": "false",
        "value.converter.replace.null.with.default": "false",
        # The connector config carries ${file:...} / ${env:...} references, never a secret.
        "config.providers": "file,env",
        "config.providers.file.class": "org.apache.kafka.common.config.provider.FileConfigProvider",
        "config.providers.env.class": "org.apache.kafka.common.config.provider.EnvVarConfigProvider",
        "topic.creation.enable": "true",
        # At-least-once: after a crash Debezium may resend changes since the last flush;
        # they carry their LSN, so the lakehouse drops them (DESIGN §3).
        "offset.flush.interval.ms": "5000",
        # A restarted worker gets its tasks back after 5 s, not the default 5 minutes that
        # only pays off in a multi-worker cluster waiting for a bounced member.
        "scheduled.rebalance.max.delay.ms": "5000",
        "connector.client.config.override.policy": "All",
    }


def plugin_classes(url: str, timeout: float = 3) -> list[str]:
    with urllib.request.urlopen(f"{url}/connector-plugins", timeout=timeout) as resp:
        return [p["class"] for p in json.load(resp)]
