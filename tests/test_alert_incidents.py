"""The worker's alert state machine (alerts/immediate.py) on a fake clock: one incident per
touchpoint, a hold time before anything resolves, and late echoes that page no one.

The same behaviour through a real Alertmanager: test_integration_incidents.py.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from frictionwatch.alerts.immediate import AlertSettings, AlertTracker
from frictionwatch.detectors.bank import Finding, SeriesPlace
from frictionwatch.detectors.base import Severity, Verdict

PAYMENT: SeriesPlace = ("purchase", "payment", "web", "", "")
CART: SeriesPlace = ("purchase", "cart", "web", "", "")
STAGES = {("purchase", "payment"): "purchase", ("purchase", "cart"): "purchase"}
HOLD, ECHO = 300.0, 2400.0


def finding(
    metric: str, anomaly: bool = True, severity: Severity = "critical", place: SeriesPlace = PAYMENT
) -> Finding:
    verdict = Verdict(0, 0.1, 0.4, 0.3, 0.5, 9.0 if anomaly else 0.5, 120, anomaly, severity if anomaly else "none")
    return Finding(place, metric, verdict, 4.0)


class Clock:
    """Wall time the test moves by hand; each tick is one final window's findings."""

    def __init__(self, tracker: AlertTracker, now: float = 10_000.0) -> None:
        self.tracker, self.now = tracker, now

    def window(self, *findings: Finding, after: float = 60.0) -> list[dict[str, Any]]:
        self.now += after
        return self.tracker.update(list(findings), self.now - 90, self.now, STAGES)

    def wait(self, seconds: float) -> list[dict[str, Any]]:
        self.now += seconds
        return self.tracker.due(self.now)


def tracker(hold: float = HOLD) -> AlertTracker:
    return AlertTracker(AlertSettings(resend_seconds=60, expiry_seconds=300, hold_seconds=hold, echo_seconds=ECHO))


def ends(alert: dict[str, Any]) -> float:
    return datetime.fromisoformat(alert["endsAt"]).timestamp()


def resolved(alerts: list[dict[str, Any]], now: float) -> list[str]:
    """The metrics of the alerts that end by ``now`` (resolved: Alertmanager reads them so), in order."""
    return [alert["labels"]["metric"] for alert in alerts if ends(alert) <= now]


def test_an_alert_resolves_only_after_its_evidence_was_normal_for_the_hold_time() -> None:
    clock = Clock(tracker())
    (fired,) = clock.window(finding("errors_per_visit"))
    # the demo's case: errors look normal for one window while the outage goes on; nothing resolves
    assert clock.window(finding("errors_per_visit", anomaly=False), after=11) == []
    (again,) = clock.window(finding("errors_per_visit"))
    assert again["startsAt"] == fired["startsAt"] and again["labels"] == fired["labels"]
    assert clock.window(finding("errors_per_visit", anomaly=False)) == []  # normal from here on
    normal_from = clock.now
    for _ in range(4):
        assert resolved(clock.window(finding("errors_per_visit", anomaly=False)), clock.now) == []
    assert resolved(clock.wait(normal_from + HOLD - 1 - clock.now), clock.now) == []  # a second short of the hold
    (end,) = clock.wait(1)  # the hold ran out: resolved without waiting for another window
    assert ends(end) == clock.now and end["startsAt"] == fired["startsAt"] and not clock.tracker.incidents


def test_without_a_hold_time_the_same_evidence_flaps() -> None:
    """The control: what the hold time prevents (fired, resolved, fired again within two minutes)."""
    clock = Clock(tracker(hold=0))
    clock.window(finding("errors_per_visit"))
    assert resolved(clock.window(finding("errors_per_visit", anomaly=False)), clock.now) == ["errors_per_visit"]
    (again,) = clock.window(finding("errors_per_visit"))
    assert resolved([again], clock.now) == []  # firing again: on-call hears of it twice


def test_every_metric_of_a_touchpoint_joins_one_incident_with_one_severity() -> None:
    clock = Clock(tracker())
    (flow,) = clock.window(finding("early_flow_ratio"), finding("errors_per_visit", anomaly=False))
    (errors,) = clock.window(
        finding("early_flow_ratio", anomaly=False), finding("errors_per_visit", severity="warning")
    )
    (other,) = clock.window(finding("flow_ratio", severity="warning", place=CART))
    group = ("journey", "step", "channel", "queue", "severity")
    assert {key: flow["labels"].get(key) for key in group} == {key: errors["labels"].get(key) for key in group}
    assert errors["labels"]["severity"] == "critical"  # the incident's, though errors alone are a warning
    assert errors["annotations"]["incident"] == "2 metric(s) at this touchpoint: early flow ratio, errors per visit"
    assert other["labels"]["step"] == "cart" and other["labels"]["severity"] == "warning"  # its own incident
    assert set(clock.tracker.incidents) == {PAYMENT[:4], CART[:4]}


def test_an_incident_that_grows_worse_moves_all_its_alerts_to_the_higher_severity() -> None:
    clock = Clock(tracker())
    (errors,) = clock.window(finding("errors_per_visit", severity="warning"))
    out = clock.window(finding("early_flow_ratio"))
    old, new, flow = out
    assert old["labels"]["severity"] == "warning" and resolved([old], clock.now) == ["errors_per_visit"]
    assert new["labels"]["severity"] == "critical" and new["startsAt"] == errors["startsAt"]
    assert resolved([new, flow], clock.now) == [] and flow["labels"]["severity"] == "critical"
    # and it does not come down again while the incident lasts
    (still,) = clock.window(finding("errors_per_visit", severity="warning"))
    assert still["labels"]["severity"] == "critical"


def test_an_incident_resolves_as_a_whole_once_every_metric_is_normal() -> None:
    clock = Clock(tracker())
    clock.window(finding("early_flow_ratio"), finding("errors_per_visit"))
    clock.window(finding("early_flow_ratio", anomaly=False), finding("errors_per_visit"))
    for _ in range(10):  # flow normal for ten minutes, errors still high: nothing resolves
        assert resolved(clock.window(finding("early_flow_ratio", anomaly=False), finding("errors_per_visit")), 0) == []
    clock.window(finding("errors_per_visit", anomaly=False))
    assert resolved(clock.wait(HOLD - 1), clock.now) == []
    out = clock.wait(1)
    assert sorted(resolved(out, clock.now)) == ["early_flow_ratio", "errors_per_visit"]


def test_session_end_metrics_half_an_hour_later_join_the_open_incident() -> None:
    clock = Clock(tracker())
    clock.window(finding("early_flow_ratio"))
    for _ in range(30):
        clock.window(finding("early_flow_ratio"))
    (dropoff,) = clock.window(finding("early_flow_ratio", anomaly=False), finding("dropoff_ratio", severity="warning"))
    assert dropoff["labels"]["severity"] == "critical" and "echo_of" not in dropoff["annotations"]
    assert len(clock.tracker.incidents) == 1


def test_late_evidence_after_the_incident_resolved_is_an_echo_that_pages_no_one() -> None:
    clock = Clock(tracker())
    (flow,) = clock.window(finding("early_flow_ratio"))
    clock.window(finding("early_flow_ratio", anomaly=False))
    assert resolved(clock.wait(HOLD), clock.now) == ["early_flow_ratio"]
    # 20 minutes later the sessions of the outage time out: drop-off and conversion deviate
    (dropoff, conversion) = clock.window(finding("dropoff_ratio"), finding("step_conversion"), after=1200)
    for echo in (dropoff, conversion):
        assert echo["labels"]["severity"] == "info"  # routed to the product teams' digest, not on-call
        assert flow["startsAt"] in echo["annotations"]["echo_of"]
    # the echo keeps the hold time too, and an echo's echo is still an echo of the first incident
    clock.window(finding("dropoff_ratio", anomaly=False), finding("step_conversion", anomaly=False))
    assert sorted(resolved(clock.wait(HOLD), clock.now)) == ["dropoff_ratio", "step_conversion"]
    (again,) = clock.window(finding("dropoff_ratio"))
    assert again["labels"]["severity"] == "info" and flow["startsAt"] in again["annotations"]["echo_of"]


def test_an_echo_becomes_a_page_when_a_metric_that_is_not_late_fires_again() -> None:
    clock = Clock(tracker())
    clock.window(finding("early_flow_ratio"))
    clock.window(finding("early_flow_ratio", anomaly=False))
    clock.wait(HOLD)
    clock.window(finding("dropoff_ratio"), after=600)
    out = clock.window(finding("early_flow_ratio"))  # the outage is back
    assert [alert["labels"]["severity"] for alert in out] == ["info", "critical", "critical"]
    assert resolved(out, clock.now) == ["dropoff_ratio"]  # the info copy resolves; the critical one fires
    assert not any("echo_of" in alert["annotations"] for alert in out[1:])  # a page now, no longer an echo


def test_late_evidence_long_after_the_incident_is_its_own_incident() -> None:
    clock = Clock(tracker())
    clock.window(finding("early_flow_ratio"))
    clock.window(finding("early_flow_ratio", anomaly=False))
    clock.wait(HOLD)
    (dropoff,) = clock.window(finding("dropoff_ratio"), after=ECHO + 1)
    assert dropoff["labels"]["severity"] == "critical" and "echo_of" not in dropoff["annotations"]
    assert not clock.tracker.resolved  # forgotten after the echo horizon


def test_early_metrics_after_an_incident_resolved_page_again() -> None:
    clock = Clock(tracker())
    clock.window(finding("errors_per_visit"))
    clock.window(finding("errors_per_visit", anomaly=False))
    clock.wait(HOLD)
    (again,) = clock.window(finding("errors_per_visit"), after=60)
    assert again["labels"]["severity"] == "critical" and "echo_of" not in again["annotations"]


def test_quiet_members_are_kept_alive_until_the_incident_resolves() -> None:
    clock = Clock(tracker())
    clock.window(finding("early_flow_ratio"), finding("errors_per_visit"))
    clock.window(finding("early_flow_ratio"), finding("errors_per_visit", anomaly=False))
    kept = clock.wait(60)  # re-sent with a new endsAt: Alertmanager must not expire either
    assert sorted(alert["labels"]["metric"] for alert in kept) == ["early_flow_ratio", "errors_per_visit"]
    assert resolved(kept, clock.now) == []
    (quiet,) = [alert for alert in kept if alert["labels"]["metric"] == "errors_per_visit"]
    assert quiet["annotations"]["normal_since"]


def test_a_step_on_all_its_channels_shows_its_channels_example_sessions() -> None:
    tracker = AlertTracker(AlertSettings(hold_seconds=HOLD, echo_seconds=ECHO))
    pooled: SeriesPlace = ("purchase", "payment", "all", "", "")
    examples = {
        PAYMENT: ["s-web-1", "s-web-2"],
        ("purchase", "payment", "app", "", ""): ["s-app-1"],
        CART: ["s-cart-1"],
        ("purchase", "payment", "web", "", "csat"): ["s-survey-1"],
    }
    (alert,) = tracker.update([finding("flow_ratio", place=pooled)], 9_910.0, 10_000.0, STAGES, examples)
    assert alert["annotations"]["examples"] == "s-web-1, s-web-2, s-app-1"
    assert alert["labels"]["channel"] == "all"
    assert "purchase/payment on all its channels" in alert["annotations"]["description"]


def test_a_step_on_all_its_channels_alarming_after_one_channel_is_part_of_that_incident() -> None:
    """Web paged first; the pooled series (channel all) crosses a window later: it joins as
    info, so on-call is not paged a second time for the same step (Alertmanager's inhibition
    covers only the other order: the pooled alert first mutes the channels' ones)."""
    pooled: SeriesPlace = ("purchase", "payment", "all", "", "")
    clock = Clock(tracker())
    (web,) = clock.window(finding("flow_ratio"))
    assert web["labels"]["severity"] == "critical"
    alerts = clock.window(finding("flow_ratio"), finding("flow_ratio", place=pooled))
    (joined,) = [alert for alert in alerts if alert["labels"]["channel"] == "all"]
    assert joined["labels"]["severity"] == "info"  # the product teams' digest: it pages no one
    assert "incident on web (since" in joined["annotations"]["part_of"]
    # it stays info when its evidence grows: the page went out for the web incident
    (again,) = [a for a in clock.window(finding("flow_ratio", place=pooled)) if a["labels"]["channel"] == "all"]
    assert again["labels"]["severity"] == "info"
    # another step's pooled series is not part of the payment incident
    cart_pooled: SeriesPlace = ("purchase", "cart", "all", "", "")
    (cart,) = clock.window(finding("flow_ratio", place=cart_pooled))
    assert cart["labels"]["severity"] == "critical"


def test_a_step_on_all_its_channels_and_one_channel_in_the_same_window_page_as_the_step() -> None:
    pooled: SeriesPlace = ("purchase", "payment", "all", "", "")
    clock = Clock(tracker())
    alerts = clock.window(finding("flow_ratio"), finding("flow_ratio", place=pooled))
    assert {(a["labels"]["channel"], a["labels"]["severity"]) for a in alerts} == {
        ("all", "critical"),  # pages; Alertmanager inhibits the web alert with it
        ("web", "critical"),
    }


BILLING: SeriesPlace = ("", "", "phone", "billing", "")


def handed_over(clock: Clock, group: str) -> Clock:
    """The group's incidents as the next worker to reduce it restores them from the checkpoint."""
    successor = tracker()
    successor.restore(orjson.loads(orjson.dumps(clock.tracker.state(group))))
    clock.tracker.forget(group)
    return Clock(successor, clock.now)


def test_an_incident_handed_to_another_worker_keeps_firing_and_resolves_there_after_the_hold() -> None:
    clock = Clock(tracker())
    (fired,) = clock.window(finding("errors_per_visit"))
    clock.window(finding("queue_answers", place=BILLING))
    successor = handed_over(clock, "purchase")
    assert set(clock.tracker.incidents) == {BILLING[:4]}  # the phone group stays: it was not handed over
    assert [alert["labels"]["metric"] for alert in clock.wait(60)] == ["queue_answers"]  # no longer the step's
    assert set(successor.tracker.incidents) == {PAYMENT[:4]}
    (kept,) = successor.wait(60)  # re-sent before Alertmanager would let it expire
    assert kept["labels"] == fired["labels"] and kept["startsAt"] == fired["startsAt"]
    assert ends(kept) > successor.now
    assert successor.window(finding("errors_per_visit", anomaly=False)) == []
    (end,) = successor.wait(HOLD)
    assert ends(end) == successor.now and end["startsAt"] == fired["startsAt"]


def test_a_handed_over_group_knows_the_echoes_of_its_resolved_incidents() -> None:
    clock = Clock(tracker())
    (flow,) = clock.window(finding("early_flow_ratio"))
    clock.window(finding("early_flow_ratio", anomaly=False))
    assert resolved(clock.wait(HOLD), clock.now) == ["early_flow_ratio"]
    successor = handed_over(clock, "purchase")
    (dropoff,) = successor.window(finding("dropoff_ratio"), after=1200)
    assert dropoff["labels"]["severity"] == "info" and flow["startsAt"] in dropoff["annotations"]["echo_of"]


def test_a_restored_incident_keeps_its_members_state_and_severity() -> None:
    clock = Clock(tracker())
    clock.window(finding("errors_per_visit", severity="warning"), finding("early_flow_ratio", severity="warning"))
    clock.window(finding("errors_per_visit", anomaly=False))  # one member back to normal, the other not
    original = clock.tracker.incidents[PAYMENT[:4]]
    successor = handed_over(clock, "purchase")
    assert successor.tracker.incidents[PAYMENT[:4]] == original
    assert clock.tracker.state("purchase") == {"incidents": [], "resolved": []}


def test_an_alert_opened_before_the_group_was_restored_joins_the_restored_incident() -> None:
    clock = Clock(tracker())
    (fired,) = clock.window(finding("errors_per_visit"))
    checkpoint = orjson.loads(orjson.dumps(clock.tracker.state("purchase")))
    successor = Clock(tracker(), clock.now)
    successor.window(finding("step_progress"))  # the evidence path, before the group's first window here
    successor.tracker.restore(checkpoint)
    (incident,) = successor.tracker.incidents.values()
    assert incident.started == fired["startsAt"]
    assert sorted(metric for _, metric in incident.members) == ["errors_per_visit", "step_progress"]
