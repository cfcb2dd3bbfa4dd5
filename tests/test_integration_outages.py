"""Outages: the broker not up when a worker starts, the broker's network lost mid-run, and
Alertmanager down. Nothing produced may be lost; alerts wait in their bounded buffer.

Each runs on both brokers. The embedded broker keeps its data in memory, so it can't be
restarted without losing it; connection loss is played by a TCP proxy in front of the broker
(the broker advertises the proxy, so every client goes through it) that drops every
connection and refuses new ones for a while.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer
from processes import Broker, Worker, total, wait_until
from prometheus_client import CollectorRegistry
from servers import WebhookReceiver, start_alertmanager
from tcp_proxy import TcpProxy

from frictionwatch.alerts.sender import AlertSender
from frictionwatch.broker import free_port, local_broker
from frictionwatch.kafka import committed_offsets, producer_config
from frictionwatch.settings import Settings
from frictionwatch.streams.loop import ingest_group

pytestmark = pytest.mark.integration
CLICKS = "journey.clicks"


def produce_clicks(bootstrap: str, first: int, count: int) -> dict[int, int]:
    """``count`` valid click events (one per record, keyed by session); the next offset of each partition."""
    settings = Settings.load(env={}, cli={"bootstrap_servers": bootstrap})
    producer = Producer(producer_config(settings, **{"message.timeout.ms": 120_000}))
    ends: dict[int, int] = {}
    errors: list[object] = []

    def delivered(error: Any, message: Any) -> None:
        if error is not None:
            errors.append(error)
        else:
            ends[message.partition()] = max(ends.get(message.partition(), 0), message.offset() + 1)

    now = time.time()
    for n in range(first, first + count):
        event: dict[str, Any] = {
            "schema": 1, "event_id": f"o-{n}", "ts": now - 5, "session_id": f"os-{n % 500}",
            "journey": "purchase", "step": ("landing", "search", "product")[n % 3], "channel": "web", "type": "step",
        }  # fmt: skip
        producer.produce(CLICKS, key=event["session_id"].encode(), value=orjson.dumps(event), on_delivery=delivered)
        producer.poll(0)
    assert producer.flush(150) == 0 and not errors, errors
    return ends


def processed(worker: Worker) -> float:
    samples = worker.samples()
    return total(samples, "frictionwatch_events_processed_total", topic=CLICKS) + total(
        samples, "frictionwatch_events_deadlettered_total", topic=CLICKS
    )


def committed(bootstrap: str, partitions: dict[int, int]) -> dict[int, int]:
    """The committed offsets of the clicks partitions (-1 where none), by the default worker's group for them."""
    settings = Settings.load(env={}, cli={"bootstrap_servers": bootstrap})
    group = ingest_group(settings) if settings.ingest == "direct" else settings.group_id
    found = committed_offsets(settings, group, [(CLICKS, p) for p in partitions])
    return {partition: -1 if offset is None else offset for (_, partition), offset in found.items()}


@pytest.mark.usefixtures("broker_quirks")
def test_a_worker_started_before_the_broker_waits_for_it(broker_engine: str, tmp_path: Path) -> None:
    port = free_port()
    worker = Worker(f"127.0.0.1:{port}", tmp_path, "--broker-wait", "180")
    try:
        # the worker is up, retrying: nothing listens on its bootstrap address yet
        wait_until(lambda: "retrying in" in worker.tail(200), 60, "the worker to retry the unreachable broker")
        assert worker.process.poll() is None
        began = time.monotonic()
        with local_broker(broker_engine, port=port, log_path=tmp_path / "broker.log"):
            ends = produce_clicks(f"127.0.0.1:{port}", 0, 2000)
            assert sum(ends.values()) == 2000
            wait_until(lambda: processed(worker) >= 2000, 400, "the worker to process everything", poll=1)
            print(f"\nbroker up to all 2,000 events processed: {time.monotonic() - began:.1f} s")
            assert processed(worker) == 2000
            code = worker.stop()  # while the broker is there to commit to
    finally:
        if worker.process.poll() is None:
            worker.process.kill()
            worker.process.wait()
    assert code == 0, worker.tail()


@pytest.fixture()
def proxied(broker_engine: str, broker_quirks: str, tmp_path: Path) -> Iterator[tuple[Broker, TcpProxy]]:
    broker_port = free_port()
    proxy = TcpProxy("127.0.0.1", broker_port)
    try:
        log = tmp_path / "broker.log"
        with local_broker(broker_engine, port=broker_port, advertised=proxy.address, log_path=log) as broker:
            yield broker, proxy
    finally:
        proxy.close()


def test_a_worker_resumes_after_losing_the_broker_connection(proxied: tuple[Broker, TcpProxy], tmp_path: Path) -> None:
    _, proxy = proxied
    bootstrap = proxy.address
    # a 6-s group session timeout on both brokers, so the outage outlasts it
    worker = Worker(bootstrap, tmp_path, "--kafka-session-timeout", "6")
    try:
        produce_clicks(bootstrap, 0, 1500)
        wait_until(lambda: processed(worker) >= 1500, 300, "the first 1,500 events", poll=1)
        connections_before = proxy.accepted
        proxy.cut()
        cut_at = time.monotonic()
        # down for longer than the group session timeout (6 s): the broker drops the member
        wait_until(lambda: time.monotonic() - cut_at > 20 and proxy.refused > 0, 60, "20 s of outage", poll=1)
        assert worker.process.poll() is None, "the worker died during the outage:\n" + worker.tail()
        proxy.restore()
        # aiokafka logs ~65 errors a second without the broker; the worker shows each kind once and a
        # summary line every 30 s (streams/outage_log.py): 1,300 ERROR lines in 20 s before, 6-8 now
        errors = [line for line in worker.log_path.read_text(errors="replace").splitlines() if "[ERROR]" in line]
        assert len(errors) <= 25, "\n".join(errors[:40])
        restored_at = time.monotonic()
        ends = produce_clicks(bootstrap, 1500, 1500)
        wait_until(lambda: processed(worker) >= 3000, 400, "all 3,000 events after the outage", poll=1)
        resumed = time.monotonic() - restored_at
        count = processed(worker)
        print(f"\nnetwork back to all events processed: {resumed:.1f} s; processed {count:.0f} of 3,000"
              f" ({count - 3000:.0f} re-delivered); reconnections {proxy.accepted - connections_before}")  # fmt: skip
        assert proxy.accepted > connections_before  # it reconnected
        # at-least-once: nothing lost; re-deliveries (until dedup) are possible
        assert count >= 3000

        # and it consumed and committed everything the partitions hold
        def behind() -> dict[int, tuple[int, int]]:
            found = committed(bootstrap, ends)
            return {p: (found.get(p, -1), end) for p, end in ends.items() if found.get(p, -1) < end}

        try:
            wait_until(lambda: not behind(), 180, "the group to commit every offset", poll=1)
        except AssertionError as error:
            kept = ("group's offset", "skipped", "Revoking", "assigned", "Commit", "rebuilt")
            lines = [line for line in worker.tail(5000).splitlines() if any(word in line for word in kept)]
            raise AssertionError(f"{error}; (committed, end) of the partitions behind: {behind()}; the worker's"
                                 " commit and rebalance log:\n" + "\n".join(lines[-60:])) from None  # fmt: skip
    finally:
        code = worker.stop()
    assert code == 0, worker.tail()


def _alert(name: str) -> dict[str, Any]:
    return {
        "labels": {"alertname": name, "severity": "warning", "source": "detector"},
        "annotations": {"summary": name},
        "startsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "endsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600)),
    }


def _active(url: str) -> set[str]:
    with urllib.request.urlopen(f"{url}/api/v2/alerts", timeout=5) as response:
        return {alert["labels"]["alertname"] for alert in json.loads(response.read())}


async def test_alerts_wait_out_an_alertmanager_outage(tmp_path: Path) -> None:
    """Alertmanager down for "minutes", scaled to 30 s for CI, with the sender's default back-off.

    Alertmanager (Debian's) is stopped and started again on the same port. Alerts raised
    meanwhile wait in the buffer (bound 5 here: the 3 oldest of 8 are dropped and counted)
    and reach Alertmanager, and through it the webhook, once it is back.
    """
    receiver = WebhookReceiver()
    alertmanager = await asyncio.to_thread(start_alertmanager, tmp_path, receiver.url)
    port, url = alertmanager.port, alertmanager.url
    registry = CollectorRegistry()
    sender = AlertSender([url], registry, buffer_size=5)

    def value(name: str) -> float:
        return registry.get_sample_value(name, {"alertmanager": url}) or 0.0

    task = asyncio.create_task(sender.run())
    try:
        sender.enqueue([_alert("Before")])
        await _until(lambda: value("frictionwatch_alerts_sent_total") == 1, 30)
        await asyncio.to_thread(alertmanager.stop)
        down_at = time.monotonic()
        sender.enqueue([_alert(f"During{n}") for n in range(8)])
        await _until(lambda: value("frictionwatch_alerts_failed_total") >= 5, 30)
        assert value("frictionwatch_alerts_buffered") == 5  # the bound holds
        assert value("frictionwatch_alerts_dropped_total") == 3  # overflow is counted
        assert [a["labels"]["alertname"] for a in sender.buffers[url]] == [f"During{n}" for n in range(3, 8)]
        await asyncio.sleep(max(0.0, 30 - (time.monotonic() - down_at)))  # the outage itself: nothing to wait on
        alertmanager = await asyncio.to_thread(start_alertmanager, tmp_path, receiver.url, port)
        back_at = time.monotonic()
        await _until(lambda: value("frictionwatch_alerts_sent_total") == 6, 60)
        delay = time.monotonic() - back_at
        failed, retried = value("frictionwatch_alerts_failed_total"), value("frictionwatch_alerts_retried_total")
        print(f"\nAlertmanager back to the buffer delivered: {delay:.1f} s; failed {failed:.0f}, retried {retried:.0f}")
        assert value("frictionwatch_alerts_buffered") == 0
        assert {f"During{n}" for n in range(3, 8)} <= await asyncio.to_thread(_active, alertmanager.url)
        await _until(lambda: {f"During{n}" for n in range(3, 8)} <= _received(receiver), 30)
        assert not {f"During{n}" for n in range(3)} & _received(receiver)
    finally:
        task.cancel()
        await asyncio.to_thread(alertmanager.stop)
        receiver.stop()


def _received(receiver: WebhookReceiver) -> set[str]:
    with receiver.lock:
        return {alert["labels"]["alertname"] for _, alert in receiver.alerts}


async def _until(condition: Any, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.1)  # polling the sender's counters in the same loop
