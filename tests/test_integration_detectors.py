"""Detector state survives a worker restart: a new worker restores it from the checkpoint."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from processes import Broker, Worker, frictionwatch, total, wait_until
from test_integration_metrics import closing_events, produce

pytestmark = pytest.mark.integration


@pytest.mark.engines("tansu")  # where table recovery is at risk (ListOffsets); CI time on Kafka goes elsewhere
def test_a_restarted_worker_restores_its_detectors(broker: Broker, tmp_path: Path) -> None:
    path = tmp_path / "two-hours.jsonl"
    start = time.time() - 4 * 3600
    frictionwatch("generate", "--output", str(path), "--start", str(start), "--duration", "2h", "--rate", "10",
                  "--seed", "8", "--quiet")  # fmt: skip
    lines: list[dict[str, Any]] = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    middle = start + 3600
    first = [line for line in lines if line["value"]["ts"] < middle] + closing_events(middle + 300)
    second = [line for line in lines if line["value"]["ts"] >= middle + 300]

    worker = Worker(broker.bootstrap_servers, tmp_path, name="first")
    try:
        produce(broker.bootstrap_servers, first)
        wait_until(
            lambda: total(worker.samples(), "frictionwatch_windows_final_total", source="journey.clicks") >= 50,
            600, "the first worker to reduce an hour of windows",
        )  # fmt: skip
        assert total(worker.samples(), "frictionwatch_detectors_restored_total") == 0
    finally:
        assert worker.stop() == 0, worker.tail()

    worker = Worker(broker.bootstrap_servers, tmp_path, name="second")
    try:
        produce(broker.bootstrap_servers, second)
        # Each group (a journey, a contact channel) is restored when its first window arrives:
        # wait for all of them, every step and queue series the first worker had learned.
        wait_until(
            lambda: total(worker.samples(), "frictionwatch_detectors_restored_total") >= 20, 600,
            "the second worker to restore the detectors of every group from the checkpoint",
        )  # fmt: skip
    finally:
        assert worker.stop() == 0, worker.tail()
