"""The managed Kafka: KRaft combined broker+controller nodes launched from the pinned jars.

One node by default; three for the reference's quorum (node ids 1-3, static controller
quorum voters, replication factor 3, ``min.insync.replicas=2``), all on loopback ports.
"""

from __future__ import annotations

import uuid
from base64 import urlsafe_b64encode
from dataclasses import dataclass
from pathlib import Path

from cdclake.broker.clients import admin as kafka_admin

from cdclake.install import jvm
from cdclake.stack.exceptions import StackError
from cdclake.stack.process import Daemon

BROKER_MAIN = "kafka.Kafka"
JMX_RULES = Path(__file__).resolve().parents[1] / "monitoring" / "jmx"
STORAGE_MAIN = "kafka.tools.StorageTool"
# G1 for every daemon; the heap is fixed (Xms=Xmx) so a 2-core machine never spends time growing it.
G1 = ["-XX:+UseG1GC", "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent"]
# Kafka's own broker defaults (kafka-run-class.sh): short pauses keep produce latency low.
BROKER_GC = [*G1, "-XX:MaxGCPauseMillis=20"]

# Daemons log to stdout, which cdclake writes to .cdclake/logs/<component>.log.
LOG4J2 = """\
name=cdclake
status=warn
appender.out.type=Console
appender.out.name=STDOUT
appender.out.layout.type=PatternLayout
appender.out.layout.pattern=[%d] %p %m (%c)%n
rootLogger.level=INFO
rootLogger.appenderRef.out.ref=STDOUT
logger.request.name=kafka.request.logger
logger.request.level=WARN
logger.clients.name=org.apache.kafka.clients
logger.clients.level=WARN
logger.config.name=org.apache.kafka.common.config.AbstractConfig
logger.config.level=WARN
logger.reflections.name=org.reflections
logger.reflections.level=ERROR
"""


@dataclass(frozen=True)
class KafkaNode:
    node_id: int
    broker_port: int
    controller_port: int
    home: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.broker_port}"


@dataclass(frozen=True)
class LocalKafka:
    state_dir: Path
    nodes: int
    base_port: int
    replication_factor: int
    heap: str = "1g"
    jmx_port: int | None = None  # first node's JMX exporter port; node i uses jmx_port + i - 1

    @property
    def home(self) -> Path:
        return self.state_dir / "kafka"

    def node_list(self) -> list[KafkaNode]:
        return [KafkaNode(i, self.base_port + 2 * (i - 1), self.base_port + 2 * (i - 1) + 1,
                          self.home / f"node-{i}") for i in range(1, self.nodes + 1)]

    @property
    def bootstrap(self) -> str:
        return ",".join(node.address for node in self.node_list())

    @property
    def min_isr(self) -> int:
        return min_isr(self.replication_factor)

    def daemon(self, node: KafkaNode) -> Daemon:
        jmx = self.jmx_port and self.jmx_port + node.node_id - 1
        return Daemon(
            name=f"kafka-{node.node_id}",
            argv=java_argv(self.heap, BROKER_MAIN, self.log4j_file(), str(self.properties_file(node)), jmx_port=jmx),
            log=self.state_dir / "logs" / f"kafka-{node.node_id}.log",
            pidfile=self.state_dir / "run" / f"kafka-{node.node_id}.pid",
            ports=[node.broker_port, node.controller_port, *([jmx] if jmx else [])],
        )

    def daemons(self) -> list[Daemon]:
        return [self.daemon(node) for node in self.node_list()]

    def properties_file(self, node: KafkaNode) -> Path:
        return node.home / "server.properties"

    def log4j_file(self) -> Path:
        return self.home / "log4j2.properties"

    def server_properties(self, node: KafkaNode) -> dict[str, str]:
        quorum = [QuorumNode(n.node_id, "127.0.0.1", n.broker_port, n.controller_port) for n in self.node_list()]
        me = quorum[node.node_id - 1]
        return render_server_properties(me, quorum, str(node.home / "data"), self.replication_factor,
                                        bind_host=me.host)

    def prepare(self) -> list[list[str]]:
        """Write each node's config; return the storage-format commands still needed."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.log4j_file().write_text(LOG4J2)
        cluster_id = self._cluster_id()
        commands = []
        for node in self.node_list():
            node.home.mkdir(parents=True, exist_ok=True)
            self.properties_file(node).write_text(
                properties_text(self.server_properties(node), "cdclake up"))
            if not (node.home / "data" / "meta.properties").exists():
                # --cluster-id=...: a url-safe base64 id may start with "-", which argparse takes for a flag.
                commands.append(java_argv("256m", STORAGE_MAIN, self.log4j_file(), "format",
                                          f"--cluster-id={cluster_id}", "-c", str(self.properties_file(node)),
                                          "--ignore-formatted"))
        return commands

    def _cluster_id(self) -> str:
        path = self.home / "cluster.id"
        if not path.exists():
            path.write_text(urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=") + "\n")
        return path.read_text().strip()

    def probe(self, node: KafkaNode) -> bool:
        """Ready when the node answers a metadata request and lists itself as a broker."""
        metadata = kafka_admin(node.address).list_topics(
            timeout=2)
        return node.node_id in metadata.brokers


@dataclass(frozen=True)
class QuorumNode:
    """One KRaft combined node as its peers and clients reach it."""

    node_id: int
    host: str
    broker_port: int = 9092
    controller_port: int = 9093


def min_isr(replication_factor: int) -> int:
    """2 for the reference's RF 3 (one broker may fail without stopping writes), else 1."""
    return 2 if replication_factor >= 3 else 1


def render_server_properties(node: QuorumNode, quorum: list[QuorumNode], log_dir: str, replication_factor: int,
                             bind_host: str = "", overrides: dict[str, str] | None = None) -> dict[str, str]:
    """``server.properties`` of one KRaft combined broker+controller node.

    The one renderer for every target: the local stack (loopback ports) and the AWS
    deployment's user-data (``cdclake deploy render``) both call it.

    Args:
        node: this node.
        quorum: every controller voter, this node included.
        log_dir: the data directory.
        replication_factor: default RF of every topic, internal ones included.
        bind_host: listener bind address; empty binds every interface.
        overrides: keys that win over ours (e.g. thread counts for a bigger host).
    """
    voters = ",".join(f"{n.node_id}@{n.host}:{n.controller_port}" for n in quorum)
    rf, isr = str(replication_factor), str(min_isr(replication_factor))
    props = {
        "process.roles": "broker,controller",
        "node.id": str(node.node_id),
        "controller.quorum.voters": voters,
        "listeners": f"PLAINTEXT://{bind_host}:{node.broker_port},CONTROLLER://{bind_host}:{node.controller_port}",
        "advertised.listeners": f"PLAINTEXT://{node.host}:{node.broker_port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": log_dir,
        "num.partitions": "3",
        "default.replication.factor": rf,
        "min.insync.replicas": isr,
        "offsets.topic.replication.factor": rf,
        "transaction.state.log.replication.factor": rf,
        "transaction.state.log.min.isr": isr,
        "share.coordinator.state.topic.replication.factor": rf,
        "share.coordinator.state.topic.min.isr": isr,
        # cdclake creates every topic itself, with the configured partitions and RF.
        "auto.create.topics.enable": "false",
        "group.initial.rebalance.delay.ms": "0",
        "num.network.threads": "2",
        "num.io.threads": "4",
        "log.retention.hours": "168",
    }
    props.update(overrides or {})
    return props


def properties_text(props: dict[str, str], writer: str) -> str:
    """A Java properties file, headed by who wrote it."""
    return f"# written by {writer}; edit pipeline.yaml instead\n" + "".join(f"{k}={v}\n" for k, v in props.items())


def java_argv(heap: str, main: str, log4j: Path, *args: str, classpath: str | None = None,
              jmx_port: int | None = None, jmx_rules: str = "broker", gc: list[str] = BROKER_GC) -> list[str]:
    agent = [jmx_agent_flag(jmx_port, jmx_rules)] if jmx_port else []
    return [jvm.java_bin(), f"-Xms{heap}", f"-Xmx{heap}", *gc, "-Djava.awt.headless=true", *agent,
            f"-Dlog4j2.configurationFile={log4j}",
            "-cp", classpath or jvm.classpath("kafka"), main, *args]


def jmx_agent_flag(port: int, rules: str) -> str:
    """``-javaagent:`` for the Prometheus JMX exporter on 127.0.0.1:``port`` with bundled ``rules``
    (``broker`` or ``connect``, in cdclake/monitoring/jmx/)."""
    agents = sorted(jvm.installed("jmx").glob("jmx_prometheus_javaagent-*.jar"))
    return f"-javaagent:{agents[-1]}=127.0.0.1:{port}:{JMX_RULES / f'{rules}.yaml'}"


def format_storage(commands: list[list[str]]) -> None:
    import subprocess

    for argv in commands:
        result = subprocess.run(argv, capture_output=True, text=True)
        if result.returncode != 0:
            raise StackError(f"formatting Kafka storage failed:\n{result.stdout}{result.stderr}",
                             component="kafka")
