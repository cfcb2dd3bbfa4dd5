"""The immediate path's delivery: buffering, retries, HA pairs and the counters, against a
real HTTP server that plays Alertmanager (the real one is in test_integration_alerts.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CollectorRegistry

from frictionwatch.alerts.immediate import AlertSettings, AlertTracker
from frictionwatch.alerts.sender import AlertSender
from frictionwatch.detectors.bank import Finding
from frictionwatch.detectors.base import Verdict


class FakeAlertmanager:
    """Answers POST /api/v2/alerts with the next status of ``statuses`` (then 200)."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.received: list[dict[str, Any]] = []
        self.calls = 0
        self.got = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        self.calls += 1
        status = self.statuses.pop(0) if self.statuses else 200
        if status == 200:
            self.received += orjson.loads(await request.read())
            self.got.set()
        return web.Response(status=status, text="ok" if status == 200 else "nope")

    async def start(self) -> tuple[web.AppRunner, str]:
        app = web.Application()
        app.router.add_post("/api/v2/alerts", self.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return runner, f"http://127.0.0.1:{port}"


def alert(name: str) -> dict[str, Any]:
    return {"labels": {"alertname": name}, "annotations": {}, "startsAt": "2026-11-24T10:00:00Z"}


async def until(condition: Any, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)  # polling the sender's progress in the same loop


def value(registry: CollectorRegistry, name: str, url: str) -> float:
    return registry.get_sample_value(name, {"alertmanager": url}) or 0.0


async def test_alerts_wait_out_an_outage_and_are_counted() -> None:
    manager = FakeAlertmanager([503, 503])
    runner, url = await manager.start()
    registry = CollectorRegistry()
    sender = AlertSender([url], registry, backoff=(0.01, 0.05))
    task = asyncio.create_task(sender.run())
    try:
        sender.enqueue([alert("A"), alert("B")])
        await until(lambda: len(manager.received) == 2)
        assert manager.calls == 3
        assert value(registry, "frictionwatch_alerts_sent_total", url) == 2
        assert value(registry, "frictionwatch_alerts_failed_total", url) == 4  # two alerts, two failed attempts
        assert value(registry, "frictionwatch_alerts_retried_total", url) == 4
        assert value(registry, "frictionwatch_alerts_buffered", url) == 0
    finally:
        task.cancel()
        await runner.cleanup()


async def test_the_buffer_bound_holds_and_overflow_is_counted() -> None:
    registry = CollectorRegistry()
    url = "http://127.0.0.1:9"  # nothing listens: the alerts stay buffered
    sender = AlertSender([url], registry, buffer_size=3)
    sender.enqueue([alert(str(n)) for n in range(5)])
    assert [a["labels"]["alertname"] for a in sender.buffers[url]] == ["2", "3", "4"]  # the newest kept
    assert value(registry, "frictionwatch_alerts_dropped_total", url) == 2
    assert value(registry, "frictionwatch_alerts_buffered", url) == 3


async def test_every_member_of_an_ha_pair_gets_every_alert_and_malformed_batches_are_dropped() -> None:
    first, second = FakeAlertmanager([]), FakeAlertmanager([400])
    (runner_a, url_a), (runner_b, url_b) = await first.start(), await second.start()
    registry = CollectorRegistry()
    sender = AlertSender([url_a, url_b], registry, backoff=(0.01, 0.05))
    task = asyncio.create_task(sender.run())
    try:
        sender.enqueue([alert("A")])
        await until(lambda: len(first.received) == 1 and second.calls == 1)
        sender.enqueue([alert("B")])
        await until(lambda: len(first.received) == 2 and len(second.received) == 1)
        assert value(registry, "frictionwatch_alerts_dropped_total", url_b) == 1  # rejected as malformed
        assert [a["labels"]["alertname"] for a in second.received] == ["B"]
    finally:
        task.cancel()
        await runner_a.cleanup()
        await runner_b.cleanup()


def test_alert_lifecycle_fire_resend_resolve() -> None:
    # no hold time: the hold and incidents are tested in test_alert_incidents.py
    tracker = AlertTracker(AlertSettings(resend_seconds=60, expiry_seconds=300, hold_seconds=0))
    place = ("", "", "phone", "billing", "")

    def finding(anomaly: bool) -> Finding:
        verdict = Verdict(0, 0.4, 0.1, 0.05, 0.15, 9.0, 120, anomaly, "critical" if anomaly else "none")
        return Finding(place, "abandonment_ratio", verdict, 4.0)

    (fired,) = tracker.update([finding(True)], window_start=1000, now=1065, stages={}, examples={place: ["k-1"]})
    assert fired["labels"] == {
        "alertname": "ContactAbandonmentHigh", "severity": "critical", "channel": "phone", "queue": "billing",
        "metric": "abandonment_ratio", "source": "detector", "job": "frictionwatch",
    }  # fmt: skip
    assert fired["annotations"]["examples"] == "k-1" and fired["endsAt"] == "1970-01-01T00:22:45Z"
    assert tracker.due(now=1100) == []
    (again,) = tracker.due(now=1130)  # re-sent before Alertmanager lets it expire
    assert again["endsAt"] == "1970-01-01T00:23:50Z" and again["startsAt"] == fired["startsAt"]
    (still,) = tracker.update([finding(True)], window_start=1060, now=1125, stages={})
    assert still["startsAt"] == "1970-01-01T00:16:40Z"  # the deviation began with the first window
    (resolved,) = tracker.update([finding(False)], window_start=1120, now=1185, stages={})
    assert resolved["endsAt"] == "1970-01-01T00:19:45Z" and not tracker.incidents
