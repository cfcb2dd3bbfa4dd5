"""The backtest's scoring (frictionwatch/backtest/scoring.py) on hand-made verdicts: which
false alerts the worker would have paged for, and which it sends as info."""

from __future__ import annotations

from frictionwatch.alerts.immediate import AlertSettings
from frictionwatch.backtest.replay import ReplayResult, SeriesTrace
from frictionwatch.backtest.scoring import TruthIncident, score_replay
from frictionwatch.detectors.bank import Finding, SeriesPlace
from frictionwatch.detectors.base import Severity, Verdict

WINDOW = 60.0
PAYMENT: SeriesPlace = ("purchase", "payment", "web", "", "")
CART: SeriesPlace = ("purchase", "cart", "web", "", "")


def trace(place: SeriesPlace, metric: str, flagged: range, windows: int = 120) -> SeriesTrace:
    """A series with a verdict every window; ``flagged`` windows (indexes) fire, critical."""
    verdicts = [
        Verdict((i + 1) * WINDOW, 0.1, 0.4, 0.3, 0.5, 9.0 if i in flagged else 0.2, 100.0, i in flagged,
                "critical" if i in flagged else "none")
        for i in range(windows)
    ]  # fmt: skip
    return SeriesTrace(place, metric, 4.0, verdicts)


def test_a_late_echo_is_a_false_alert_sent_as_info_and_another_touchpoint_pages() -> None:
    result = ReplayResult("<hand-made>", WINDOW, first_ts=0.0, last_ts=120 * WINDOW)
    for item in (
        trace(PAYMENT, "errors_per_visit", range(10, 15)),  # the incident: windows 10-14
        trace(PAYMENT, "step_conversion", range(40, 43)),  # sessions ending 25 min after it resolved: an echo
        trace(CART, "flow_ratio", range(80, 82)),  # nothing happened at the cart: a page for nothing
    ):
        result.series[(item.place, item.metric)] = item
    outage = TruthIncident(
        "payment_outage", "step_outage", 10 * WINDOW, 15 * WINDOW, [("purchase", "payment", None, None)]
    )
    score = score_replay(result, [outage], alert_settings=AlertSettings(hold_seconds=300, echo_seconds=2400))
    sent = {alert.series: (alert.incident, alert.sent_as) for alert in score.alerts}
    assert sent == {
        "purchase/payment/web errors_per_visit": ("payment_outage", "critical"),
        "purchase/payment/web step_conversion": (None, "info"),
        "purchase/cart/web flow_ratio": (None, "critical"),
    }
    assert [alert.series for alert in score.false_pages] == ["purchase/cart/web flow_ratio"]
    totals = score.totals()
    assert (totals["false_alerts"], totals["false_pages"]) == (2, 1)
    # with no echo time the same late alert is a new incident: it pages
    again = score_replay(result, [outage], alert_settings=AlertSettings(hold_seconds=300, echo_seconds=0))
    assert len(again.false_pages) == 2


def evidence_finding(place: SeriesPlace, metric: str, ts: float, anomaly: bool) -> Finding:
    severity: Severity = "critical" if anomaly else "none"
    return Finding(place, metric, Verdict(ts, 9.0, 1.0, 0.0, 0.0, 2.0 if anomaly else 0.0, 9.0, anomaly, severity), 1.0)


def test_evidence_alarms_are_alerts_and_a_late_one_that_joins_the_open_incident_is_the_incidents() -> None:
    result = ReplayResult("<hand-made>", WINDOW, first_ts=0.0, last_ts=120 * WINDOW)
    errors = trace(PAYMENT, "errors_per_visit", range(10, 30))  # windows 10-29: the incident open all along
    result.series[(errors.place, errors.metric)] = errors
    result.evidence = [
        (600.0, evidence_finding(PAYMENT, "step_errors", 10.5 * WINDOW, True)),  # before the first window alert
        (600.0, evidence_finding(PAYMENT, "step_errors", 25 * WINDOW, False)),
        (1200.0, evidence_finding(PAYMENT, "step_progress", 20.5 * WINDOW, True)),  # after the end, incident open
        (1200.0, evidence_finding(PAYMENT, "step_progress", 40 * WINDOW, False)),
        (3000.0, evidence_finding(CART, "step_progress", 50.5 * WINDOW, True)),  # nothing at the cart: false
    ]
    outage = TruthIncident(
        "payment_outage", "step_outage", 10 * WINDOW, 15 * WINDOW, [("purchase", "payment", None, None)]
    )
    score = score_replay(result, [outage], alert_settings=AlertSettings(hold_seconds=300, echo_seconds=2400))
    alerts = {alert.series: alert for alert in score.alerts}
    assert {series: alert.path for series, alert in alerts.items()} == {
        "purchase/payment/web errors_per_visit": "windows",
        "purchase/payment/web step_errors": "evidence",
        "purchase/payment/web step_progress": "evidence",
        "purchase/cart/web step_progress": "evidence",
    }
    assert (alerts["purchase/payment/web step_errors"].start, alerts["purchase/payment/web step_errors"].end) == (
        10.5 * WINDOW, 25 * WINDOW,
    )  # fmt: skip
    (detection,) = score.detections
    assert detection.alert is alerts["purchase/payment/web step_errors"]  # the evidence path paged first
    late = alerts["purchase/payment/web step_progress"]
    assert late.joined and late.incident == "payment_outage"  # 5 min after the end, while the incident is open
    assert [alert.series for alert in score.false_alerts] == ["purchase/cart/web step_progress"]
    assert alerts["purchase/cart/web step_progress"].end == 120 * WINDOW  # never back to normal: to the end
