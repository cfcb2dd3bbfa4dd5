"""Real processes for integration tests: workers, /metrics scrapes, waiting on conditions.

Waiting is done on conditions (a port accepting, a counter reaching a value) with a
deadline, never with fixed sleeps.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from frictionwatch.broker import EmbeddedBroker, free_port
from frictionwatch.kafka_broker import KafkaBroker
from frictionwatch.metrics_page import Samples, scrape
from frictionwatch.metrics_page import total as total  # for the tests: the project's one /metrics reader

T = TypeVar("T")
Broker = EmbeddedBroker | KafkaBroker  # a broker on this machine: tests/conftest.py starts one per engine


def wait_until(condition: Callable[[], T], timeout: float, what: str, poll: float = 0.2) -> T:
    """Poll ``condition`` until it returns something truthy; AssertionError naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: T = condition()
    while not last:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last: {last!r}")
        time.sleep(poll)  # polling an external process: there is no event to wait on
        last = condition()
    return last


class Worker:
    """``frictionwatch worker`` in a subprocess, with its own metrics port and log file."""

    def __init__(self, bootstrap: str, log_dir: Path, *extra: str, name: str = "worker", port: int = 0) -> None:
        self.port = port or free_port()  # a port chosen beforehand: Prometheus already scrapes it
        self.log_path = log_dir / f"{name}.log"
        self.log = self.log_path.open("wb")
        command = [
            sys.executable, "-m", "frictionwatch", "worker",
            "--bootstrap-servers", bootstrap, "--metrics-port", str(self.port), *extra,
        ]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ})
        self.url = f"http://127.0.0.1:{self.port}/metrics"

    def samples(self) -> Samples:
        try:
            return scrape(self.url)
        except OSError:
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited with {self.process.returncode}; log:\n{self.tail()}") from None
            return {}

    def tail(self, lines: int = 40) -> str:
        if not self.log.closed:  # closed once stopped
            self.log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def crashes(self) -> list[str]:
        """Faust's reports of an agent that crashed (and was restarted): always a bug."""
        if not self.log.closed:
            self.log.flush()
        return [line for line in self.log_path.read_text(errors="replace").splitlines() if "Crashed reason=" in line]

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; AssertionError if it doesn't stop or one of its agents crashed."""
        crashed = self.crashes()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise AssertionError(f"worker did not stop within {timeout:.0f} s of SIGTERM") from None
        self.log.close()
        assert not crashed, f"an agent of the worker crashed: {crashed[:3]}"
        return self.process.returncode


def stop_all(workers: list[Worker]) -> list[int]:
    """Stop every worker, even after one failed to stop cleanly (then its AssertionError); the exit codes."""
    codes, failures = [], []
    for worker in workers:
        try:
            codes.append(worker.stop())
        except AssertionError as failure:
            failures.append(failure)
    if failures:
        raise failures[0]
    return codes


def frictionwatch(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the frictionwatch command to completion; AssertionError with its output if it fails."""
    done = subprocess.run(
        [sys.executable, "-m", "frictionwatch", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise AssertionError(f"frictionwatch {' '.join(args)} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return done
