"""The immediate alert path: detector verdicts turned into Alertmanager alerts (no I/O).

When a final window makes a detector fire, on-call staff should hear within seconds,
not after a scrape and a rule evaluation. :class:`AlertTracker` keeps one alert per
(touchpoint, metric): it starts when the detector fires (``startsAt`` = the start of the
first anomalous window: when the deviation began), is re-sent before Alertmanager would
let it expire, and is resolved (``endsAt`` = now) when the detector clears. The payloads
follow Alertmanager's API v2 (``POST /api/v2/alerts``).

>>> from frictionwatch.detectors.base import Verdict
>>> from frictionwatch.detectors.bank import Finding
>>> tracker = AlertTracker(AlertSettings(dashboard_base_url="http://grafana:3000"))
>>> verdict = Verdict(600.0, 0.05, 0.41, 0.30, 0.52, 12.5, 180.0, True, "critical")
>>> finding = Finding(("purchase", "payment", "web", "", ""), "early_flow_ratio", verdict, 4.0)
>>> [alert] = tracker.update([finding], window_start=540.0, now=605.0, stages={("purchase", "payment"): "purchase"})
>>> alert["labels"]["alertname"], alert["labels"]["severity"], alert["startsAt"]
('JourneyStepFlowDrop', 'critical', '1970-01-01T00:09:00Z')
>>> print(alert["annotations"]["description"][:80])
early flow ratio of purchase/payment on web is 0.05, expected 0.41 (band 0.30 to
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from frictionwatch.detectors.bank import Finding, SeriesPlace

#: metric -> alert name (docs/runbooks/<name>.md)
ALERT_NAMES: Mapping[str, str] = {
    "early_flow_ratio": "JourneyStepFlowDrop",
    "flow_ratio": "JourneyStepFlowDrop",
    "step_conversion": "JourneyStepDropOff",
    "dropoff_ratio": "JourneyStepDropOff",
    "errors_per_visit": "JourneyStepErrors",
    "rage_clicks_per_visit": "JourneyStepErrors",
    "abandonment_ratio": "ContactAbandonmentHigh",
    "average_speed_of_answer": "ContactWaitHigh",
    "service_level": "ContactServiceLevelLow",
    "csat": "FeedbackScoreDrop",
    "nps": "FeedbackScoreDrop",
    "ces": "FeedbackScoreDrop",
}
UNITS = {"average_speed_of_answer": "s"}


@dataclass(frozen=True, slots=True)
class AlertSettings:
    """How alerts are kept alive and where their links point.

    ``resend_seconds``: how often an active alert is sent again; ``expiry_seconds``: the
    ``endsAt`` given to a firing alert, after which Alertmanager resolves it by itself (so
    an alert from a worker that died does not fire forever); it must exceed resend_seconds.
    """

    resend_seconds: float = 60.0
    expiry_seconds: float = 300.0
    runbook_base_url: str = "https://github.com/frictionwatch/frictionwatch/blob/main/docs/runbooks"
    dashboard_base_url: str = "http://127.0.0.1:3000"


@dataclass(slots=True)
class _Active:
    alert: dict[str, Any]
    sent_at: float


@dataclass
class AlertTracker:
    """One Alertmanager alert per firing (touchpoint, metric), from detector findings."""

    settings: AlertSettings = field(default_factory=AlertSettings)
    active: dict[tuple[SeriesPlace, str], _Active] = field(default_factory=dict)
    #: applied to every example id before it goes into an alert (a keyed hash: frictionwatch.pseudonym)
    pseudonymise: Callable[[str], str] | None = None

    def update(
        self,
        findings: Iterable[Finding],
        window_start: float,
        now: float,
        stages: Mapping[tuple[str, str], str],
        examples: Mapping[Any, Sequence[str]] | None = None,  # by SeriesPlace (a Touchpoint is one)
    ) -> list[dict[str, Any]]:
        """The alerts to send for one final window's findings: new, still firing, or resolved."""
        out = []
        for finding in findings:
            key = (finding.place, finding.metric)
            current = self.active.get(key)
            if finding.verdict.anomaly:
                starts = current.alert["startsAt"] if current else _time(window_start)
                ids = list((examples or {}).get(finding.place, ()))[:5]
                if self.pseudonymise is not None:
                    ids = [self.pseudonymise(example) for example in ids]
                alert = self._alert(finding, starts, now, stages, ids)
                self.active[key] = _Active(alert, now)
                out.append(alert)
            elif current is not None:
                del self.active[key]
                out.append({**current.alert, "endsAt": _time(now)})
        return out

    def due(self, now: float) -> list[dict[str, Any]]:
        """Active alerts not sent for ``resend_seconds``, with a new ``endsAt`` (call every few seconds)."""
        out = []
        for active in self.active.values():
            if now - active.sent_at >= self.settings.resend_seconds:
                active.alert = {**active.alert, "endsAt": _time(now + self.settings.expiry_seconds)}
                active.sent_at = now
                out.append(active.alert)
        return out

    def _alert(
        self, finding: Finding, starts: str, now: float, stages: Mapping[tuple[str, str], str], examples: list[str]
    ) -> dict[str, Any]:
        journey, step, channel, queue, survey = finding.place
        verdict = finding.verdict
        name = ALERT_NAMES.get(finding.metric, "FrictionAnomaly")
        where = f"{journey}/{step} on {channel}" if journey else f"{channel} queue {queue}"
        if survey:
            where += f" ({survey} survey)"
        unit = UNITS.get(finding.metric, "")
        volume = (
            "" if verdict.volume is None else f", from {verdict.volume:,.0f} {'sessions' if journey else 'contacts'}"
        )
        description = (
            f"{finding.metric.replace('_', ' ')} of {where} is {_num(verdict.observed)}{unit}, "
            f"expected {_num(verdict.expected)}{unit} (band {_num(verdict.lower)} to {_num(verdict.upper)}{unit})"
            f"{volume}; deviating since {starts}."
        )
        labels = {
            "alertname": name,
            "severity": verdict.severity if verdict.severity != "none" else "warning",
            "journey": journey,
            "step": step,
            "stage": stages.get((journey, step), ""),
            "channel": channel,
            "queue": queue,
            "metric": finding.metric,
            "source": "detector",
        }
        # Grafana dashboard uids, the same the rules' links use (grafana/, the dashboards issue)
        if journey:
            dashboard = f"frictionwatch-journeys/journey-friction-overview?var-journey={journey}&var-step={step}"
        else:
            dashboard = f"frictionwatch-contact-centre/contact-centre?var-channel={channel}&var-queue={queue}"
        annotations = {
            "summary": f"{name}: {finding.metric.replace('_', ' ')} unusual at {where}",
            "description": description,
            "observed": _num(verdict.observed),
            "expected": _num(verdict.expected),
            "band": f"{_num(verdict.lower)} to {_num(verdict.upper)}",
            "score": f"{verdict.score:.1f} (threshold {finding.threshold:g})",
            "volume": "" if verdict.volume is None else f"{verdict.volume:.0f}",
            "started": starts,
            "examples": ", ".join(examples),
            "runbook_url": f"{self.settings.runbook_base_url}/{name}.md",
            "dashboard_url": f"{self.settings.dashboard_base_url}/d/{dashboard}",
        }
        return {
            "labels": {key: value for key, value in labels.items() if value},
            "annotations": {key: value for key, value in annotations.items() if value},
            "startsAt": starts,
            "endsAt": _time(now + self.settings.expiry_seconds),
            "generatorURL": f"{self.settings.dashboard_base_url}/d/frictionwatch-detectors/detector-tuning",
        }


def _time(epoch: float) -> str:
    """RFC 3339 in UTC, as Alertmanager wants it."""
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + (f".{moment.microsecond // 1000:03d}Z" if moment.microsecond else "Z")


def _num(value: float) -> str:
    if not math.isfinite(value):
        return "n/a"
    return f"{value:.2f}" if abs(value) < 100 else f"{value:,.0f}"
