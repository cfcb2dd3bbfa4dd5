"""Apache Kafka on this machine: one KRaft node (broker and controller) on loopback.

For ``frictionwatch broker --engine kafka`` and the integration tests on Apache Kafka. It
runs the broker's jars with the machine's Java (17 or newer): ``scripts/fetch-kafka``
fetches them from Maven Central into ``deploy/kafka/lib`` (``deploy/kafka/pom.xml``), or
point ``kafka_jars`` at any folder holding them, such as the ``libs/`` of a Kafka release.
Storage lives in a temporary folder, formatted at start and removed at stop.

Use it as a context manager::

    with KafkaBroker() as broker:
        print(broker.bootstrap_servers)  # 127.0.0.1:<a free port>
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Self

from frictionwatch.broker import BrokerError, LocalBroker, free_port

DEFAULT_JARS = Path(__file__).resolve().parent.parent / "deploy" / "kafka" / "lib"
FETCH_HINT = (
    "fetch them with scripts/fetch-kafka (runs `mvn -q -f deploy/kafka/pom.xml dependency:copy-dependencies`;"
    " needs Maven and Java 17+), or set FRICTIONWATCH_KAFKA_JARS to a folder holding them (a Kafka release's libs/)"
)
HEAP = "-Xmx512m"


def kafka_jars(folder: str | Path = "") -> Path:
    """The folder of Apache Kafka's jars (``deploy/kafka/lib`` by default); BrokerError if it has none."""
    path = Path(folder) if folder else DEFAULT_JARS
    if not any(path.glob("kafka_2.13-*.jar")):
        raise BrokerError(f"Apache Kafka's jars are not in {path}: {FETCH_HINT}")
    return path


def java_command() -> str:
    """The ``java`` of JAVA_HOME or PATH, checked to be version 17 or newer; BrokerError otherwise."""
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not java or not Path(java).is_file():
        raise BrokerError(
            "Apache Kafka needs Java 17 or newer and none was found (Debian: apt-get install openjdk-17-jre)"
        )
    done = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30, check=False)
    found = re.search(r'version "(\d+)', done.stderr)
    if not found or int(found.group(1)) < 17:
        raise BrokerError(f"Apache Kafka 4 needs Java 17 or newer; {java} is: {done.stderr.strip()[:200]}")
    return java


def cluster_id() -> str:
    """A random KRaft cluster id: a UUID in URL-safe base64 that doesn't start with "-" (read as a flag)."""
    while True:
        found = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not found.startswith("-"):
            return found


def wait_for_metadata(bootstrap: str, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
    """Block until a metadata request to ``bootstrap`` lists a broker; BrokerError after ``timeout`` s."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap, "log.connection.close": False, "log_level": 0})
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise BrokerError(f"Apache Kafka exited with code {process.returncode} before answering")
        try:
            if admin.list_topics(timeout=1.0).brokers:
                return
        except Exception:  # KafkaException: not answering yet
            pass
        if time.monotonic() > deadline:
            raise BrokerError(f"Apache Kafka at {bootstrap} did not answer a metadata request within {timeout:.0f} s")
        time.sleep(0.1)  # polling another process: there is no event to wait on


class KafkaBroker(LocalBroker):
    """Runs Apache Kafka (KRaft, one node) on ``host:port`` (a free port by default).

    The rest as :class:`~frictionwatch.broker.LocalBroker`; ``jars`` is the folder of its
    jars (:func:`kafka_jars`), ``partitions`` the default partition count of new topics.
    """

    engine = "kafka"
    quirks = ""  # no defects to work around (see docs/operations.md)

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        start_timeout: float = 300.0,
        log_path: Path | None = None,
        advertised: str | None = None,
        jars: str | Path = "",
        partitions: int = 4,
    ) -> None:
        super().__init__(host, port, start_timeout=start_timeout, log_path=log_path, advertised=advertised)
        self.jars = jars
        self.partitions = partitions
        self.workdir: Path | None = None

    def properties(self, data: Path, controller_port: int) -> str:
        """server.properties of a single combined broker and controller with one replica of everything."""
        controller = f"{self.host}:{controller_port}"
        return "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"listeners=PLAINTEXT://{self.bootstrap_servers},CONTROLLER://{controller}",
                f"advertised.listeners=PLAINTEXT://{self.advertised or self.bootstrap_servers}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                f"controller.quorum.bootstrap.servers={controller}",
                f"log.dirs={data}",
                f"num.partitions={self.partitions}",
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=4",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "transaction.state.log.num.partitions=4",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                "message.max.bytes=16777216",
                "",
            ]
        )

    def start(self) -> Self:
        java, jars = java_command(), kafka_jars(self.jars)
        self.workdir = Path(tempfile.mkdtemp(prefix="frictionwatch-kafka-"))
        config = self.workdir / "server.properties"
        config.write_text(self.properties(self.workdir / "data", free_port(self.host)))
        base = [java, HEAP, "-XX:+UseSerialGC", "-Djava.awt.headless=true", "-Dlog4j2.level=WARN"]
        base += ["-cp", f"{jars}/*"]
        cluster = cluster_id()
        with open(self.log_path or os.devnull, "ab") as log:
            formatted = subprocess.run(
                [*base, "kafka.tools.StorageTool", "format", "--standalone", "-t", cluster, "-c", str(config)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, timeout=300, check=False,
            )  # fmt: skip
            if formatted.returncode != 0:
                self.stop()
                raise BrokerError(f"formatting Kafka's storage failed (exit {formatted.returncode}); see its log")
            self.process = subprocess.Popen(
                [*base, "kafka.Kafka", str(config)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        try:
            wait_for_metadata(self.bootstrap_servers, self.start_timeout, self.process)
        except BrokerError:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 30.0) -> None:
        super().stop(timeout)
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
