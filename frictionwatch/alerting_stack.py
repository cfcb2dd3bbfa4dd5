"""Prometheus and Alertmanager (Debian's packages) on free loopback ports, and a webhook
receiver standing in for a team's paging tool: for `frictionwatch demo --with-alerting` and
the alerting integration tests."""

from __future__ import annotations

import http.server
import json
import shutil
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from frictionwatch.broker import free_port, wait_for_port


class StackError(RuntimeError):
    """Prometheus or Alertmanager is not installed or did not start."""


def binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise StackError(
            f"{name} is not installed; on Debian: apt-get install prometheus prometheus-alertmanager"
            " (scripts/test installs them)"
        )
    return found


class Server:
    """A process listening on 127.0.0.1:port, its output in a log file."""

    def __init__(self, command: list[str], port: int, log: Path) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log
        with log.open("wb") as output:
            self.process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
        wait_for_port("127.0.0.1", port, 30, None)

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=5) as response:
            return json.loads(response.read())

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_alertmanager(
    directory: Path, webhook_url: str, port: int | None = None, config: dict[str, Any] | None = None
) -> Server:
    """Alertmanager routing everything to ``webhook_url`` at once, resolved alerts included.

    ``port`` (default: a free one) lets a test restart it where its clients expect it;
    ``config`` replaces that catch-all configuration (e.g. the shipped alerts/alertmanager.yml).
    """
    config = config or {
        "route": {
            "receiver": "test", "group_by": ["alertname", "journey", "step", "channel", "queue", "source"],
            "group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h",
        },
        "receivers": [{"name": "test", "webhook_configs": [{"url": webhook_url, "send_resolved": True}]}],
    }  # fmt: skip
    path = directory / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    port = port or free_port()
    command = [
        binary("prometheus-alertmanager"), f"--config.file={path}", f"--storage.path={directory / 'am-data'}",
        f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=",
    ]  # fmt: skip
    return Server(command, port, directory / "alertmanager.log")


def start_prometheus(directory: Path, targets: list[str], rule_files: list[Path], alertmanager: Server) -> Server:
    """Prometheus scraping ``targets`` every second and evaluating ``rule_files`` every second."""
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(path) for path in rule_files],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{alertmanager.port}"]}]}]},
        "scrape_configs": [{"job_name": "frictionwatch", "static_configs": [{"targets": targets}]}],
    }
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    command = [
        binary("prometheus"), f"--config.file={path}", f"--storage.tsdb.path={directory / 'prom-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]  # fmt: skip
    return Server(command, port, directory / "prometheus.log")


class WebhookReceiver:
    """Collects what Alertmanager posts; ``alerts`` lists (received_at, alert) in arrival order,
    ``notifications`` (received_at, path, webhook body) with the receiver and groupKey.

    ``on_alert`` (if given) is called with each alert as it arrives, e.g. to print it.
    """

    def __init__(self, on_alert: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.alerts: list[tuple[float, dict[str, Any]]] = []
        self.notifications: list[tuple[float, str, dict[str, Any]]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with receiver.lock:
                    receiver.alerts += [(time.time(), alert) for alert in body["alerts"]]
                    receiver.notifications.append((time.time(), self.path, body))
                if on_alert is not None:
                    for alert in body["alerts"]:
                        on_alert(alert)
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def received(self, alertname: str, status: str | None = None) -> list[tuple[float, dict[str, Any]]]:
        with self.lock:
            return [
                (at, alert) for at, alert in self.alerts
                if alert["labels"].get("alertname") == alertname and (status is None or alert["status"] == status)
            ]  # fmt: skip

    def stop(self) -> None:
        self.server.shutdown()
