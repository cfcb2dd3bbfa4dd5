"""While a worker is down, the alerts the workers push are inhibited: Debian's Alertmanager with
the shipped alerts/alertmanager.yml, a detector alert built by the worker's own AlertTracker,
and FrictionwatchWorkerDown as Prometheus sends it (the labels of alerts/rules/pipeline.yml
plus the job and instance of the scraped target)."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from processes import wait_until
from servers import WebhookReceiver, start_alertmanager

from frictionwatch.alerting_stack import Server
from frictionwatch.alerts.immediate import AlertSettings, AlertTracker, _time
from frictionwatch.detectors.bank import Finding
from frictionwatch.detectors.base import Verdict

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def alertmanager(tmp_path: Path) -> Iterator[Server]:
    receiver = WebhookReceiver()
    config: dict[str, Any] = yaml.safe_load((ROOT / "alerts" / "alertmanager.yml").read_text())
    for entry in config["receivers"]:  # the shipped routes and inhibitions; webhooks to the test's receiver
        for hook in entry.get("webhook_configs", []):
            hook["url"] = receiver.url
    running = start_alertmanager(tmp_path, receiver.url, config=config)
    yield running
    running.stop()
    receiver.stop()


def post(alertmanager: Server, alerts: list[dict[str, Any]]) -> None:
    request = urllib.request.Request(
        f"{alertmanager.url}/api/v2/alerts", json.dumps(alerts).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5):
        pass


def states(alertmanager: Server) -> dict[str, str]:
    """Alert name -> Alertmanager's state of it (active, suppressed, unprocessed)."""
    return {alert["labels"]["alertname"]: alert["status"]["state"] for alert in alertmanager.get("/api/v2/alerts")}


def worker_down(now: float) -> dict[str, Any]:
    rule = yaml.safe_load((ROOT / "alerts" / "rules" / "pipeline.yml").read_text())
    (spec,) = [r for group in rule["groups"] for r in group["rules"] if r.get("alert") == "FrictionwatchWorkerDown"]
    assert 'job="frictionwatch"' in spec["expr"]  # Prometheus adds the series' job and instance labels
    labels = {"alertname": "FrictionwatchWorkerDown", **spec["labels"], "job": "frictionwatch", "instance": "w1:9477"}
    return {"labels": labels, "annotations": {"summary": "down"}, "startsAt": _time(now), "endsAt": _time(now + 300)}


def test_worker_down_inhibits_the_alerts_the_workers_push(alertmanager: Server) -> None:
    now = time.time()
    tracker = AlertTracker(AlertSettings(resend_seconds=60, expiry_seconds=300, hold_seconds=0, echo_seconds=0))
    verdict = Verdict(0, 0.1, 0.4, 0.3, 0.5, 9.0, 120, True, "critical")
    pushed = tracker.update(
        [Finding(("purchase", "payment", "web", "", ""), "flow_ratio", verdict, 4.0)],
        now - 120, now, {("purchase", "payment"): "purchase"},
    )  # fmt: skip
    assert [alert["labels"]["source"] for alert in pushed] == ["detector"]
    name = pushed[0]["labels"]["alertname"]

    post(alertmanager, pushed)
    wait_until(lambda: states(alertmanager).get(name) == "active", 30, "the detector alert, active")

    post(alertmanager, [worker_down(now)])
    wait_until(
        lambda: states(alertmanager) == {name: "suppressed", "FrictionwatchWorkerDown": "active"},
        30, "the detector alert inhibited by FrictionwatchWorkerDown",
    )  # fmt: skip
    (inhibited,) = [a for a in alertmanager.get("/api/v2/alerts") if a["labels"]["alertname"] == name]
    assert inhibited["status"]["inhibitedBy"], inhibited["status"]


def test_a_step_judged_on_all_its_channels_inhibits_its_alerts_per_channel(alertmanager: Server) -> None:
    """An outage on every channel of a step: the pooled series (channel "all") and the web
    series both alarm; on-call hears of the step once. Another step's alert is not touched."""
    now = time.time()
    tracker = AlertTracker(AlertSettings(resend_seconds=60, expiry_seconds=300, hold_seconds=0, echo_seconds=0))
    verdict = Verdict(0, 0.1, 0.4, 0.3, 0.5, 9.0, 120, True, "critical")
    places = [
        ("purchase", "payment", "web", "", ""),
        ("purchase", "payment", "all", "", ""),
        ("purchase", "cart", "web", "", ""),
    ]
    pushed = tracker.update(
        [Finding(place, "flow_ratio", verdict, 4.0) for place in places], now - 120, now, {}
    )  # fmt: skip
    post(alertmanager, pushed)

    def by_place() -> dict[tuple[str, str], str]:
        return {
            (alert["labels"]["step"], alert["labels"]["channel"]): alert["status"]["state"]
            for alert in alertmanager.get("/api/v2/alerts")
        }

    wanted = {("payment", "web"): "suppressed", ("payment", "all"): "active", ("cart", "web"): "active"}
    wait_until(lambda: by_place() == wanted, 30, "payment/web inhibited by payment on all channels, cart/web not")
    (pooled,) = [a for a in pushed if a["labels"]["channel"] == "all"]
    assert "purchase/payment on all its channels" in pooled["annotations"]["description"]


def test_a_step_on_all_its_channels_alarming_after_one_channel_does_not_mute_the_alert_that_paged(
    alertmanager: Server,
) -> None:
    """Web paged a window before the pooled series (channel "all") crossed: the pooled alert is
    part of the web incident (info) and the web alert stays active: no second page, no mute."""
    now = time.time()
    tracker = AlertTracker(AlertSettings(resend_seconds=60, expiry_seconds=300, hold_seconds=0, echo_seconds=0))
    verdict = Verdict(0, 0.1, 0.4, 0.3, 0.5, 9.0, 120, True, "critical")
    web, pooled = ("purchase", "payment", "web", "", ""), ("purchase", "payment", "all", "", "")
    post(alertmanager, tracker.update([Finding(web, "flow_ratio", verdict, 4.0)], now - 180, now - 60, {}))
    later = [Finding(place, "flow_ratio", verdict, 4.0) for place in (web, pooled)]
    post(alertmanager, tracker.update(later, now - 120, now, {}))

    def by_place() -> dict[tuple[str, str], str]:
        return {
            (alert["labels"]["channel"], alert["labels"]["severity"]): alert["status"]["state"]
            for alert in alertmanager.get("/api/v2/alerts")
        }

    wanted = {("web", "critical"): "active", ("all", "info"): "active"}
    wait_until(lambda: by_place() == wanted, 30, "payment/web still active, payment on all channels as info")
