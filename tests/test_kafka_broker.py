"""`frictionwatch broker --engine kafka`: Apache Kafka on loopback that confluent-kafka clients use,
and clear errors when Java or the broker's jars are missing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer

from frictionwatch.kafka_broker import cluster_id

pytestmark = pytest.mark.integration


def test_the_kafka_engine_serves_a_producer_and_a_consumer() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "frictionwatch", "broker", "--engine", "kafka"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        first = process.stdout.readline()  # blocks until Kafka answers metadata requests and the topics exist
        assert first.startswith("bootstrap servers: 127.0.0.1:"), (process.stderr or process.stdout).read()
        bootstrap = first.split(": ", 1)[1].strip()
        assert "journey.clicks (4 partitions)" in process.stdout.readline()
        producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
        sent = [f"record-{n}".encode() for n in range(50)]
        for value in sent:
            producer.produce("journey.clicks", key=value, value=value)
        assert producer.flush(60) == 0
        consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": f"test-{uuid.uuid4()}", "auto.offset.reset": "earliest"}
        )
        consumer.subscribe(["journey.clicks"])
        received: list[bytes] = []
        deadline = time.monotonic() + 120
        while len(received) < len(sent) and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is not None and message.error() is None:
                received.append(message.value() or b"")
        consumer.close()
        assert sorted(received) == sorted(sent)
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
        assert "broker stopped" in process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_missing_jars_say_how_to_fetch_them(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "frictionwatch", "broker", "--engine", "kafka", "--kafka-jars", str(tmp_path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert f"Apache Kafka's jars are not in {tmp_path}" in done.stderr and "scripts/fetch-kafka" in done.stderr


def test_missing_java_is_named(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "frictionwatch", "broker", "--engine", "kafka"],
        capture_output=True, text=True, timeout=60, check=False, env={**os.environ, "JAVA_HOME": str(tmp_path)},
    )  # fmt: skip
    assert done.returncode == 1
    assert "needs Java 17 or newer" in done.stderr


def test_cluster_ids_never_look_like_a_flag() -> None:
    ids = [cluster_id() for _ in range(2000)]  # about 1 in 64 random ids would start with "-"
    assert all(len(found) == 22 and not found.startswith("-") for found in ids)
    assert len(set(ids)) == len(ids)
