"""One incident pages once, through Debian's real Alertmanager with the shipped routing.

The worker's alert state machine (AlertTracker) and sender (AlertSender) post, as a worker
would, the alerts of one incident at purchase/payment on web, window by window: the early
flow signal first, then the flow ratio and errors, flickering between anomalous and normal
windows; a Prometheus rule alert for the same step; the session-end drop-off and conversion
half an hour in; then the evidence is normal again, and ten minutes after the incident
resolved the drop-off deviates once more (a late echo). Midway, the touchpoint's group is
handed to another worker's tracker through the checkpoint. Alertmanager runs the shipped
alerts/alertmanager.yml with every group_wait and group_interval compressed to 1 s and its
receivers pointed at a webhook receiver on loopback.

On-call must get one notification group for the touchpoint, in which no alert resolves and
fires again and nothing resolves before the incident does; ops gets nothing; the product
teams get one group for the journey, and the echo, which on-call never sees.

Simulated time runs two hours behind the wall clock, so Alertmanager reads a resolved
alert's endsAt as past and a firing one's (4 h expiry) as future. After every window a
marker alert joins the touchpoint's group: Alertmanager must then notify the group, and
that notification shows every alert of the group as Alertmanager holds it after the window
(a resolve sent in between would show). The test waits for those notifications.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from prometheus_client import CollectorRegistry
from servers import WebhookReceiver, start_alertmanager

from frictionwatch.alerting_stack import Server
from frictionwatch.alerts.immediate import AlertSettings, AlertTracker, _time
from frictionwatch.alerts.sender import AlertSender
from frictionwatch.detectors.bank import Finding, SeriesPlace
from frictionwatch.detectors.base import Severity, Verdict

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[1]
PAYMENT: SeriesPlace = ("purchase", "payment", "web", "", "")
TOUCHPOINT = {"journey": "purchase", "step": "payment", "channel": "web"}
STAGES = {("purchase", "payment"): "purchase"}
WINDOW, HOLD, ECHO = 120.0, 300.0, 2400.0
SEVERITY: dict[str, Severity] = {
    "early_flow_ratio": "critical", "flow_ratio": "critical", "errors_per_visit": "warning",
    "dropoff_ratio": "warning", "step_conversion": "warning",
}  # fmt: skip
FLOW = {"early_flow_ratio": True, "flow_ratio": True}
#: the incident's windows (metric -> anomalous); the rule alert fires from the fourth
WINDOWS: list[dict[str, bool]] = [
    {"early_flow_ratio": True},  # the page
    {**FLOW, "errors_per_visit": True},
    {"early_flow_ratio": False, "flow_ratio": True, "errors_per_visit": False},  # flickers
    {**FLOW, "errors_per_visit": True},
    {"early_flow_ratio": False, "flow_ratio": False, "errors_per_visit": False},  # all normal for a window
    *({**FLOW, "errors_per_visit": n % 2 == 0} for n in range(9)),
    {**FLOW, "errors_per_visit": True, "dropoff_ratio": True, "step_conversion": True},  # sessions end
    {**FLOW, "errors_per_visit": False, "dropoff_ratio": True, "step_conversion": False},
]
RULE_FROM = 3
#: before this window the touchpoint's group is handed to another worker (a rebalance, a restart):
#: its incident goes on from the checkpoint, with no resolve and no second page
HANDOVER = 8
NORMAL = dict.fromkeys(SEVERITY, False)


@pytest.fixture()
def shipped_alertmanager(tmp_path: Path, receiver: WebhookReceiver) -> Iterator[Server]:
    """Debian's Alertmanager running alerts/alertmanager.yml, compressed, delivering to ``receiver`` (conftest)."""
    running = start_alertmanager(tmp_path, receiver.url, config=compressed_config(receiver))
    yield running
    running.stop()


def compressed_config(receiver: WebhookReceiver) -> dict[str, Any]:
    """The shipped config with 1-s group waits and intervals, its webhooks on the test's receiver."""
    config: dict[str, Any] = yaml.safe_load((ROOT / "alerts" / "alertmanager.yml").read_text())
    routes = [config["route"]]
    while routes:
        route = routes.pop()
        route.update({key: "1s" for key in ("group_wait", "group_interval") if key in route})
        routes += route.get("routes", [])
    base = receiver.url.removesuffix("/alerts")
    for entry in config["receivers"]:
        for hook in entry.get("webhook_configs", []):
            hook["url"] = hook["url"].replace("http://127.0.0.1:9099", base)
    return config


def finding(metric: str, anomalous: bool) -> Finding:
    verdict = Verdict(0, 0.1, 0.4, 0.3, 0.5, 9.0 if anomalous else 0.5, 120, anomalous, SEVERITY[metric])
    return Finding(PAYMENT, metric, verdict, 4.0)


def rule_alert(began: float, ends: float) -> dict[str, Any]:
    """JourneyStepFlowDrop as Prometheus sends it: the rule's labels and its expression's `by` labels."""
    rules = yaml.safe_load((ROOT / "alerts" / "rules" / "friction.yml").read_text())["groups"]
    (rule,) = [rule for group in rules for rule in group["rules"] if rule.get("alert") == "JourneyStepFlowDrop"]
    labels = {"alertname": rule["alert"], **rule["labels"], **TOUCHPOINT, "stage": "purchase"}
    return {"labels": labels, "annotations": {"summary": "rule"}, "startsAt": _time(began), "endsAt": _time(ends)}


def marker(number: int, now: float, firing: bool) -> dict[str, Any]:
    labels = {"alertname": "TestFlush", "severity": "critical", "source": "test", "flush": str(number), **TOUCHPOINT}
    return {"labels": labels, "startsAt": _time(now - 1), "endsAt": _time(now + (4 * 3600 if firing else 0))}


async def until(condition: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, f"waited {timeout:.0f} s for {what}"
        await asyncio.sleep(0.05)  # polling the receiver thread
    return found


def sent_to(receiver: WebhookReceiver, path: str) -> list[dict[str, Any]]:
    with receiver.lock:
        return [body for _, at, body in receiver.notifications if at == path]


def incident_alerts(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [alert for alert in body["alerts"] if alert["labels"]["alertname"] != "TestFlush"]


async def test_one_incident_at_a_touchpoint_pages_once(receiver: WebhookReceiver, shipped_alertmanager: Server) -> None:
    sender = AlertSender([shipped_alertmanager.url], CollectorRegistry(), backoff=(0.05, 0.5))
    delivering = asyncio.create_task(sender.run())
    settings = AlertSettings(resend_seconds=3600, expiry_seconds=4 * 3600, hold_seconds=HOLD, echo_seconds=ECHO)
    tracker = AlertTracker(settings)
    now = time.time() - 2 * 3600
    flushes = 0

    async def flush(alerts: list[dict[str, Any]]) -> dict[str, Any]:
        """Send ``alerts``, then a marker; the on-call notification that shows the marker."""
        nonlocal flushes
        flushes += 1
        previous = [marker(flushes - 1, now, firing=False)] if flushes > 1 else []
        sender.enqueue([*alerts, *previous, marker(flushes, now, firing=True)])

        def shown() -> dict[str, Any] | None:
            for body in sent_to(receiver, "/alerts/oncall"):
                for alert in body["alerts"]:
                    if alert["labels"].get("flush") == str(flushes) and alert["status"] == "firing":
                        return body
            return None

        found: dict[str, Any] = await until(shown, f"the on-call notification after window {flushes}")
        return found

    try:
        began = now
        for number, window in enumerate(WINDOWS):
            if number == HANDOVER:  # another worker takes the group over, from the checkpoint
                members = tracker.incidents[PAYMENT[:4]].members
                onsets = {metric: member.alert["startsAt"] for (_, metric), member in members.items()}
                successor = AlertTracker(settings)
                successor.restore(orjson.loads(orjson.dumps(tracker.state("purchase"))))
                tracker.forget("purchase")
                assert not tracker.incidents and not tracker.due(now + 2 * 3600)  # it sends nothing more
                tracker = successor
            now += WINDOW
            alerts = tracker.update([finding(m, bad) for m, bad in window.items()], now - WINDOW, now, STAGES)
            if number == HANDOVER:  # its alerts go on as the same incident, each since its metric's onset
                sent = {alert["labels"]["metric"]: alert["startsAt"] for alert in alerts}
                assert sent and sent == {metric: onsets[metric] for metric in sent}, (sent, onsets)
            if number >= RULE_FROM:
                alerts.append(rule_alert(began + RULE_FROM * WINDOW, now + 4 * 3600))
            await flush(alerts)
        for _ in range(2):  # the outage is over: normal windows, shorter than the hold time together
            now += WINDOW
            alerts = tracker.update([finding(m, bad) for m, bad in NORMAL.items()], now - WINDOW, now, STAGES)
            assert all(alert["endsAt"] > _time(now) for alert in alerts), "resolved before the hold time ran out"
            await flush(alerts)
        before_resolve = len(sent_to(receiver, "/alerts/oncall"))
        now += HOLD - WINDOW  # normal since the first normal window for the hold time: resolves as a whole
        resolved = tracker.due(now)
        assert {alert["labels"]["metric"] for alert in resolved} == set(SEVERITY), resolved
        last = await flush([*resolved, rule_alert(began + RULE_FROM * WINDOW, now)])
        # ten minutes later the sessions of the outage's last minutes time out: a late echo
        now += 600
        echo = tracker.update([finding("dropoff_ratio", True)], now - WINDOW, now, STAGES)
        assert [alert["labels"]["severity"] for alert in echo] == ["info"]

        def echo_arrived() -> bool:
            return any(
                alert["labels"].get("metric") == "dropoff_ratio" and alert["labels"]["severity"] == "info"
                for body in sent_to(receiver, "/alerts/product")
                for alert in body["alerts"]
            )

        await flush(echo)
        await until(echo_arrived, "the echo at the product teams' receiver")
    finally:
        delivering.cancel()

    oncall = sent_to(receiver, "/alerts/oncall")
    assert len({body["groupKey"] for body in oncall}) == 1, [body["groupKey"] for body in oncall]
    first = incident_alerts(oncall[0])
    assert [alert["labels"]["metric"] for alert in first] == ["early_flow_ratio"]  # the page
    seen = {(alert["labels"]["alertname"], alert["labels"]["source"]) for body in oncall for alert in body["alerts"]}
    assert {
        ("JourneyStepFlowDrop", "detector"), ("JourneyStepFlowDrop", "rule"), ("JourneyStepErrors", "detector"),
        ("JourneyStepDropOff", "detector"),
    } <= seen, seen  # fmt: skip
    early = [alert for body in oncall[:before_resolve] for alert in incident_alerts(body)]
    assert all(alert["status"] == "firing" for alert in early), [a["labels"] for a in early if a["status"] != "firing"]
    statuses: dict[str, list[str]] = {}
    for body in oncall:
        for alert in incident_alerts(body):
            statuses.setdefault(alert["fingerprint"], []).append(alert["status"])
    flapped = {
        fp: seq for fp, seq in statuses.items() if "resolved" in seq and "firing" in seq[seq.index("resolved") :]
    }
    assert not flapped, flapped  # resolved, then firing again
    assert {alert["status"] for alert in incident_alerts(last)} == {"resolved"}, incident_alerts(last)
    assert not [alert for body in oncall for alert in body["alerts"] if alert["labels"]["severity"] == "info"]
    assert sent_to(receiver, "/alerts/ops") == [], "ops got part of a critical incident"
    product = sent_to(receiver, "/alerts/product")
    copies = {body["groupKey"] for body in product if all(a["labels"]["severity"] != "info" for a in body["alerts"])}
    assert len(copies) == 1, copies  # the product teams' copy: one group for the journey, not one per metric
