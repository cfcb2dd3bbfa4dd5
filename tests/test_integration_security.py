"""Security of a running worker: loopback-only listeners, no identifier or free text in any
label value of /metrics (labels bounded by the journey map), and secrets never printed.

One worker runs with its Faust web server on (``--web-port``), debug logging, and a SASL
password and pseudonym key in its environment (unused on the plaintext local broker,
but loaded like any other setting). Generated traffic plus hand-made records carrying
customer ids, free-text comments and ids in unknown journey names go through it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Consumer, Producer
from processes import Broker, Worker, total, wait_until
from prometheus_client.parser import text_string_to_metric_families

from frictionwatch.broker import free_port
from frictionwatch.contract import Reason
from frictionwatch.detectors.bank import ALL_CHANNELS
from frictionwatch.journeymap import load_journey_map
from frictionwatch.kafka import consumer_config, producer_config
from frictionwatch.settings import Settings

pytestmark = pytest.mark.integration
INPUTS = ("journey.clicks", "journey.contacts", "journey.feedback")
SASL_SECRET = "sasl-Pa55word-never-print-7f3a"
PSEUDONYM_SECRET = "pseudonym-key-never-print-91c2"
LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}


def listening(pid: int) -> list[tuple[str, int]]:
    """(address, port) of every TCP socket process ``pid`` listens on, from /proc."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table, v6 in (("tcp", False), ("tcp6", True)):
        lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and inode in inodes:  # 0A: LISTEN
                address, port = local.split(":")
                found.append((_address(address, v6), int(port, 16)))
    return found


def _address(hex_address: str, v6: bool) -> str:
    import ipaddress

    raw = bytes.fromhex(hex_address)
    # /proc prints each 32-bit word in host (little-endian) order
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.IPv6Address(words) if v6 else ipaddress.IPv4Address(words))


def hand_made_records(now: float) -> list[tuple[str, bytes | None, bytes]]:
    """Events carrying customer ids, free text and ids where names belong; some rejected."""
    records: list[tuple[str, bytes | None, bytes]] = []
    for n in range(60):
        session = f"sess-PRIVATE-{n:03d}"
        click = {
            "schema": 1, "event_id": f"ev-PRIVATE-{n:03d}", "ts": now - 30 + n * 0.1, "session_id": session,
            "customer_id": f"cust-PRIVATE-{n:03d}", "journey": "purchase", "step": "cart", "channel": "web",
            "type": "step", "device": f"Jane's iPhone {n}",
        }  # fmt: skip
        records.append(("journey.clicks", session.encode(), orjson.dumps(click)))
        bad = {**click, "event_id": f"ev-PRIVATE-bad-{n:03d}", "journey": f"cust-PRIVATE-{n:03d}"}
        records.append(("journey.clicks", session.encode(), orjson.dumps(bad)))  # unknown_journey
        answer = {
            "schema": 1, "event_id": f"fb-PRIVATE-{n:03d}", "ts": now - 20, "survey": "csat", "score": 1 + n % 5,
            "journey": "purchase", "step": "confirmation", "customer_id": f"cust-PRIVATE-{n:03d}",
            "comment": f"Jane Doe here, jane.doe{n}@example.com, the payment page ate my card {n}",
        }  # fmt: skip
        records.append(("journey.feedback", f"cust-PRIVATE-{n:03d}".encode(), orjson.dumps(answer)))
    return records


def identifiers(settings: Settings) -> set[str]:
    """Every id and free-text value in the input topics (read back from Kafka)."""
    consumer = Consumer(consumer_config(settings, "security-reader", **{"enable.auto.commit": False}))
    consumer.subscribe(list(INPUTS))
    found: set[str] = set()
    idle, deadline = 0, time.monotonic() + 120
    try:
        while (not found or idle < 6) and time.monotonic() < deadline:  # until the topics are read to the end
            messages = [m for m in consumer.consume(5000, timeout=0.5) if m.error() is None]
            idle = 0 if messages else idle + 1
            for message in messages:
                try:
                    doc = orjson.loads(message.value() or b"")
                except orjson.JSONDecodeError:
                    continue
                for event in doc if isinstance(doc, list) else [doc]:
                    if not isinstance(event, dict):
                        continue
                    for name in ("event_id", "session_id", "contact_id", "customer_id", "device", "target", "comment"):
                        value = event.get(name)
                        if isinstance(value, str) and len(value) >= 4:
                            found.add(value)
    finally:
        consumer.close()
    return found


@pytest.mark.engines("tansu")  # listeners, labels and logs don't depend on the broker: CI time goes elsewhere
def test_a_worker_exposes_no_identifiers_and_no_secrets(
    broker: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FRICTIONWATCH_SASL_PASSWORD", SASL_SECRET)
    monkeypatch.setenv("FRICTIONWATCH_PSEUDONYM_KEY", PSEUDONYM_SECRET)
    settings = Settings.load(env={}, cli={"bootstrap_servers": broker.bootstrap_servers})
    web_port = free_port()
    worker = Worker(broker.bootstrap_servers, tmp_path, "--web-port", str(web_port), "--log-level", "debug")
    outputs: list[str] = []
    try:
        generated = subprocess.run(
            [sys.executable, "-m", "frictionwatch", "generate", "--output", "kafka", "--bootstrap-servers",
             broker.bootstrap_servers, "--count", "20000", "--batch", "20", "--malformed-rate", "0.02",
             "--seed", "4", "--duration", "2h"],
            capture_output=True, text=True, timeout=300, check=True,
        )  # fmt: skip
        outputs += [generated.stdout, generated.stderr]
        producer = Producer(producer_config(settings))
        extra = hand_made_records(time.time())
        for topic, key, value in extra:
            producer.produce(topic, key=key, value=value)
        assert producer.flush(30) == 0
        expected = 20000 + len(extra)

        def settled() -> bool:
            samples = worker.samples()
            done = sum(
                total(samples, f"frictionwatch_events_{what}_total", topic=topic)
                for what in ("processed", "deadlettered")
                for topic in INPUTS
            )
            return done >= expected

        wait_until(settled, 240, "the worker to account for every event")

        # (a) every listener on loopback: /metrics and Faust's web server
        sockets = wait_until(lambda: listening(worker.process.pid), 30, "the worker's listening sockets")
        ports = {port for _, port in sockets}
        assert {worker.port, web_port} <= ports, sockets
        assert all(address in LOOPBACK for address, _ in sockets), f"non-loopback listeners: {sockets}"

        # (c) no id or free text in any label value; label values bounded by the journey map
        text = Path(tmp_path / "metrics.txt")
        with urllib.request.urlopen(worker.url, timeout=10) as response:
            text.write_bytes(response.read())
        check_labels(text.read_text(), identifiers(settings))

        checked = subprocess.run(
            [sys.executable, "-m", "frictionwatch", "check-config", "--show-settings"],
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        outputs += [checked.stdout, checked.stderr]
        assert "sasl_password" in checked.stdout and "***" in checked.stdout
    finally:
        code = worker.stop()
    assert code == 0, worker.tail()

    # (e) the secrets appear in no output and no log
    everything = "\n".join([*outputs, worker.log_path.read_text(errors="replace")])
    assert len(everything) > 10_000  # debug logging did log
    for secret in (SASL_SECRET, PSEUDONYM_SECRET):
        assert secret not in everything


def check_labels(page: str, ids: set[str]) -> None:
    journey_map = load_journey_map()
    vocabulary = {
        "journey": set(journey_map.journeys),
        "step": {s.name for j in journey_map.journeys.values() for s in j.steps},
        "stage": {s.stage for j in journey_map.journeys.values() for s in j.steps},
        # ... and "all": the detectors' gauges of a step judged on all its channels together
        "channel": {c for _, _, c in journey_map.touchpoints()} | set(journey_map.contact_channels) | {ALL_CHANNELS},
        "queue": {q for _, q in journey_map.queues()},
        "survey": {"csat", "nps", "ces"},
        "topic": {*INPUTS, "journey.deadletter", "frictionwatch.windows", "frictionwatch.customer-touches"},
        "reason": {reason.value for reason in Reason},
        "partition": {str(p) for p in range(4)},
    }
    values: dict[str, set[str]] = defaultdict(set)
    for family in text_string_to_metric_families(page):
        for sample in family.samples:
            for name, value in sample.labels.items():
                values[name].add(value)
    assert values["journey"] and values["queue"] and values["reason"]
    for name, known in vocabulary.items():
        unexpected = values.get(name, set()) - known - {""}
        assert not unexpected, f"label {name} has values outside the journey map: {sorted(unexpected)[:5]}"
    for name, found in values.items():
        assert len(found) <= 64, f"label {name} has {len(found)} values"
        assert all(len(value) <= 64 for value in found), name
    assert len(ids) > 5000 and any("PRIVATE" in i for i in ids) and any("@example.com" in i for i in ids)
    every_value = "\n".join(value for found in values.values() for value in found)
    names = set().union(*vocabulary.values())  # a device may be called "kiosk", like the channel
    leaked = [identifier for identifier in ids - names if identifier in every_value]
    assert not leaked, f"identifiers in label values: {leaked[:5]}"
