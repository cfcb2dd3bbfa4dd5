"""The immediate alert path: detector verdicts turned into Alertmanager alerts (no I/O).

When a final window makes a detector fire, on-call staff should hear within seconds,
not after a scrape and a rule evaluation, and hear of one incident per touchpoint once.
:class:`AlertTracker` keeps one :class:`Incident` per touchpoint and in it one alert per
metric: an alert starts when its detector fires (``startsAt`` = the start of the first
anomalous window: when the deviation began), carries the incident's severity (so all of
a touchpoint's alerts share one Alertmanager group), is re-sent before Alertmanager would
let it expire, and resolves (``endsAt`` = now) with the whole incident once every metric
has been normal for ``hold_seconds``. Late evidence after that is an echo (severity info).
A step judged on all its channels (``channel="all"``) that starts alarming while one of its
channels already has an open incident is part of that incident (severity info: on-call
heard of it); the other order is Alertmanager's inhibition (alerts/alertmanager.yml).
``now`` is passed in: the clock is the caller's. The payloads follow Alertmanager's API v2
(``POST /api/v2/alerts``).

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
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from frictionwatch.detectors.bank import ALL_CHANNELS, Finding, SeriesPlace
from frictionwatch.detectors.base import SEVERITY_RANK

if TYPE_CHECKING:
    from frictionwatch.settings import Settings

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
    # the evidence path (detectors/evidence.py): counts against what the learned hazards expected
    "step_progress": "JourneyStepFlowDrop",
    "step_errors": "JourneyStepErrors",
    "queue_answers": "ContactWaitHigh",
    "queue_abandons": "ContactAbandonmentHigh",
}
UNITS = {"average_speed_of_answer": "s"}


#: metrics whose evidence arrives long after the customer's moment: session-end metrics are
#: final only when sessions time out (about 30 min), survey answers come minutes to hours later
LATE_METRICS = frozenset({"step_conversion", "dropoff_ratio", "csat", "nps", "ces"})
#: (journey, step, channel, queue): the labels Alertmanager groups by (alerts/alertmanager.yml)
IncidentPlace = tuple[str, str, str, str]


@dataclass(frozen=True, slots=True)
class AlertSettings:
    """How alerts are kept alive, held and grouped into incidents, and where their links point.

    ``resend_seconds``: how often an active alert is sent again; ``expiry_seconds``: the
    ``endsAt`` given to a firing alert, after which Alertmanager resolves it by itself (so
    an alert from a worker that died does not fire forever); it must exceed resend_seconds.
    ``hold_seconds``: an incident resolves once every metric of its touchpoint has been back
    to normal this long; ``echo_seconds``: for this long after an incident resolved, late
    evidence of it (:data:`LATE_METRICS`) is an echo: severity info, it pages no one.
    """

    resend_seconds: float = 60.0
    expiry_seconds: float = 300.0
    hold_seconds: float = 300.0
    echo_seconds: float = 2400.0
    runbook_base_url: str = "https://github.com/frictionwatch/frictionwatch/blob/main/docs/runbooks"
    dashboard_base_url: str = "http://127.0.0.1:3000"

    @classmethod
    def from_settings(cls, settings: Settings) -> AlertSettings:
        """The alert settings of a worker (or a backtest) run with ``settings``."""
        return cls(
            resend_seconds=settings.alert_resend_seconds,
            expiry_seconds=settings.alert_expiry_seconds,
            hold_seconds=settings.alert_hold_seconds,
            echo_seconds=settings.alert_echo_seconds,
            runbook_base_url=settings.runbook_base_url,
            dashboard_base_url=settings.dashboard_base_url,
        )


@dataclass(slots=True)
class _Member:
    """One metric's alert within an incident."""

    alert: dict[str, Any]
    sent_at: float
    normal_since: float | None = None  # when its evidence came back to normal; None while it deviates


@dataclass(slots=True)
class Incident:
    """Everything that deviated at one touchpoint, from the first alert until all is normal for the hold time.

    Every member alert carries the incident's severity (the highest any member reached), so
    all of them take the same Alertmanager route and land in one group. An echo incident is
    late evidence of one that already resolved: severity info until a metric that is not late
    fires too (then the problem is back, and it pages).
    """

    severity: str
    started: str  # startsAt of its first alert
    echo: bool = False
    echo_of: str = ""  # startsAt of the resolved incident an echo belongs to
    #: a step's pooled incident (channel all) opened while one of its channels' was open: that
    #: channel and when its incident began (severity info: on-call heard of it there)
    part_of: str = ""
    members: dict[tuple[SeriesPlace, str], _Member] = field(default_factory=dict)

    def normal_since(self) -> float | None:
        """Since when every member's evidence has been normal; None while one deviates."""
        times = [member.normal_since for member in self.members.values()]
        if not times or any(time is None for time in times):
            return None
        return max(time for time in times if time is not None)


@dataclass
class AlertTracker:
    """One incident per touchpoint, one Alertmanager alert per (touchpoint, metric) within it."""

    settings: AlertSettings = field(default_factory=AlertSettings)
    incidents: dict[IncidentPlace, Incident] = field(default_factory=dict)
    #: touchpoint -> (when its last incident began, when it resolved): late evidence within echo_seconds is an echo
    resolved: dict[IncidentPlace, tuple[str, float]] = field(default_factory=dict)
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
        """The alerts to send for one final window's findings: new, still firing, re-labelled or resolved."""
        out: list[dict[str, Any]] = []
        # a step's pooled finding first: when it and a channel's start in the same window, the
        # pooled alert pages and Alertmanager inhibits the channel's (alerts/alertmanager.yml)
        for finding in sorted(findings, key=lambda finding: finding.place[2] != ALL_CHANNELS):
            place: IncidentPlace = finding.place[:4]
            key = (finding.place, finding.metric)
            incident = self.incidents.get(place)
            if finding.verdict.anomaly:
                severity = _severity(finding)
                if incident is None:
                    incident = self.incidents[place] = self._open(place, finding, severity, _time(window_start), now)
                elif incident.echo and finding.metric not in LATE_METRICS:
                    incident.echo, incident.echo_of = False, ""  # the problem is back: it pages again
                if (
                    not (incident.echo or incident.part_of)
                    and SEVERITY_RANK[severity] > SEVERITY_RANK[incident.severity]
                ):
                    out += self._relabel(incident, severity, now)
                member = incident.members.get(key)
                starts = member.alert["startsAt"] if member else _time(window_start)
                ids = _examples_of(finding.place, examples or {})[:5]
                if self.pseudonymise is not None:
                    ids = [_pseudonymised(self.pseudonymise, example) for example in ids]
                alert = self._alert(finding, starts, now, stages, ids, incident)
                incident.members[key] = _Member(alert, now)
                out.append(alert)
            elif incident is not None and key in incident.members:
                member = incident.members[key]
                if member.normal_since is None:
                    member.normal_since = now
                    annotations = {**member.alert["annotations"], "normal_since": _time(now)}
                    member.alert = {**member.alert, "annotations": annotations}
        return out + self._resolve_held(now)

    def due(self, now: float) -> list[dict[str, Any]]:
        """Incidents whose hold time ran out (resolved), and active alerts not sent for ``resend_seconds``
        with a new ``endsAt`` (call every few seconds)."""
        out = self._resolve_held(now)
        for incident in self.incidents.values():
            for member in incident.members.values():
                if now - member.sent_at >= self.settings.resend_seconds:
                    member.alert = {**member.alert, "endsAt": _time(now + self.settings.expiry_seconds)}
                    member.sent_at = now
                    out.append(member.alert)
        return out

    def state(self, group: str) -> dict[str, Any]:
        """The open incidents and recent resolutions of one group (a journey, or a contact
        channel for its queues), JSON-able: checkpointed with its detectors, so that the worker
        that reduces the group next carries its incidents on (keeps them firing, resolves them
        after the hold time, knows their echoes) instead of letting them expire."""
        return {
            "incidents": [
                {
                    "place": list(place),
                    "severity": incident.severity,
                    "started": incident.started,
                    "echo_of": incident.echo_of if incident.echo else None,
                    "part_of": incident.part_of,
                    "members": [
                        [list(series), metric, member.alert, member.sent_at, member.normal_since]
                        for (series, metric), member in incident.members.items()
                    ],
                }
                for place, incident in self.incidents.items()
                if _group(place) == group
            ],
            "resolved": [
                [*place, started, at] for place, (started, at) in self.resolved.items() if _group(place) == group
            ],
        }

    def restore(self, state: dict[str, Any]) -> int:
        """Take back a group's incidents from :meth:`state`; how many were open."""
        restored = 0
        for saved in state.get("incidents", []):
            place = _incident_place(saved["place"])
            echo_of = saved.get("echo_of")
            incident = Incident(
                str(saved["severity"]),
                str(saved["started"]),
                echo=echo_of is not None,
                echo_of=str(echo_of or ""),
                part_of=str(saved.get("part_of", "")),
            )
            for series, metric, alert, sent_at, normal_since in saved["members"]:
                key = ((*_incident_place(series[:4]), str(series[4])), str(metric))
                incident.members[key] = _Member(
                    dict(alert), float(sent_at), None if normal_since is None else float(normal_since)
                )
            opened_meanwhile = self.incidents.get(place)  # e.g. by evidence that came before the group's first window
            if opened_meanwhile is not None:
                for key, member in opened_meanwhile.members.items():
                    incident.members.setdefault(key, member)
            self.incidents[place] = incident
            restored += 1
        for *place, started, at in state.get("resolved", []):
            self.resolved[_incident_place(place)] = (str(started), float(at))
        return restored

    def forget(self, group: str) -> None:
        """Drop one group's incidents without resolving them: another worker reduces the group now,
        and carries them on from the checkpoint (this one would otherwise keep them firing)."""
        for kept in (self.incidents, self.resolved):
            for place in [place for place in kept if _group(place) == group]:
                del kept[place]

    def _open(self, place: IncidentPlace, finding: Finding, severity: str, starts: str, now: float) -> Incident:
        previous = self.resolved.get(place)
        if previous is not None and finding.metric in LATE_METRICS and now - previous[1] <= self.settings.echo_seconds:
            return Incident("info", starts, echo=True, echo_of=previous[0])
        if place[2] == ALL_CHANNELS:
            for (journey, step, channel, _), open_incident in self.incidents.items():
                if (journey, step) == place[:2] and channel != ALL_CHANNELS and not open_incident.echo:
                    return Incident("info", starts, part_of=f"{channel} (since {open_incident.started})")
        return Incident(severity, starts)

    def _relabel(self, incident: Incident, severity: str, now: float) -> list[dict[str, Any]]:
        """Raise the incident's severity: its alerts under the old labels resolve, and come back under the new."""
        incident.severity = severity
        out = []
        for member in incident.members.values():
            out.append({**member.alert, "endsAt": _time(now)})
            labels = {**member.alert["labels"], "severity": severity}
            annotations = {key: value for key, value in member.alert["annotations"].items() if key != "echo_of"}
            member.alert = {
                **member.alert, "labels": labels, "annotations": annotations,
                "endsAt": _time(now + self.settings.expiry_seconds),
            }  # fmt: skip
            member.sent_at = now
            out.append(member.alert)
        return out

    def _resolve_held(self, now: float) -> list[dict[str, Any]]:
        """Resolve the incidents whose evidence has been normal for the hold time, all their alerts at once."""
        out = []
        for place, incident in list(self.incidents.items()):
            normal_since = incident.normal_since()
            if normal_since is not None and now - normal_since >= self.settings.hold_seconds:
                del self.incidents[place]
                out += [{**member.alert, "endsAt": _time(now)} for member in incident.members.values()]
                self.resolved[place] = (incident.echo_of if incident.echo else incident.started, now)
        horizon = now - self.settings.echo_seconds
        for place in [place for place, (_, at) in self.resolved.items() if at < horizon]:
            del self.resolved[place]
        return out

    def _alert(
        self,
        finding: Finding,
        starts: str,
        now: float,
        stages: Mapping[tuple[str, str], str],
        examples: list[str],
        incident: Incident,
    ) -> dict[str, Any]:
        journey, step, channel, queue, survey = finding.place
        verdict = finding.verdict
        name = ALERT_NAMES.get(finding.metric, "FrictionAnomaly")
        on = "all its channels" if channel == ALL_CHANNELS else channel
        where = f"{journey}/{step} on {on}" if journey else f"{channel} queue {queue}"
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
            "severity": incident.severity,
            "journey": journey,
            "step": step,
            "stage": stages.get((journey, step), ""),
            "channel": channel,
            "queue": queue,
            "metric": finding.metric,
            "source": "detector",
            # the Prometheus job of the workers (alerts/rules: up{job="frictionwatch"}): while one is
            # down, FrictionwatchWorkerDown (same job) inhibits these (alerts/alertmanager.yml)
            "job": "frictionwatch",
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
            "incident": _incident_text(incident, finding.metric),
            "echo_of": (
                f"late evidence of the incident here that began {incident.echo_of} and has resolved: info, pages no one"
                if incident.echo
                else ""
            ),
            "part_of": (
                f"the step on all its channels, while its incident on {incident.part_of} is open: info,"
                " on-call heard of it there"
                if incident.part_of
                else ""
            ),
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


def _group(place: IncidentPlace) -> str:
    """The group a touchpoint's windows are reduced in: its journey, or a queue's contact channel."""
    return place[0] or place[2]


def _incident_place(parts: Sequence[Any]) -> IncidentPlace:
    journey, step, channel, queue = (str(part) for part in parts)
    return (journey, step, channel, queue)


def _examples_of(place: SeriesPlace, examples: Mapping[Any, Sequence[str]]) -> list[str]:
    """Example session or contact ids of a touchpoint; of a step on all its channels, its channels'."""
    if place[2] != ALL_CHANNELS:
        return list(examples.get(place, ()))
    same_step = (
        ids for other, ids in examples.items() if tuple(other[:2]) == place[:2] and not other[3] and not other[4]
    )
    return [example for ids in same_step for example in ids]


def _severity(finding: Finding) -> str:
    return finding.verdict.severity if finding.verdict.severity != "none" else "warning"


def _incident_text(incident: Incident, metric: str) -> str:
    """The metrics deviating at the touchpoint, for on-call reading one alert of the group."""
    metrics = dict.fromkeys([*(key[1] for key in incident.members), metric])
    return f"{len(metrics)} metric(s) at this touchpoint: " + ", ".join(name.replace("_", " ") for name in metrics)


#: What streams/sessions.py appends to an example session whose times were corrected for its device's clock.
DEVICE_CLOCK_NOTE = re.compile(r"(.*)( \(device ts \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ, clock [+-]\d+ s\))", re.DOTALL)


def _pseudonymised(pseudonymise: Callable[[str], str], example: str) -> str:
    """An example's id pseudonymised; a device-clock note after it (streams/sessions.py) kept.

    >>> _pseudonymised(lambda text: "p-" + text.upper(), "s-9 (device ts 2026-11-24T10:00:00Z, clock +600 s)")
    'p-S-9 (device ts 2026-11-24T10:00:00Z, clock +600 s)'
    >>> _pseudonymised(lambda text: "p-" + text.upper(), "s-9 (anything else)")
    'p-S-9 (ANYTHING ELSE)'
    """
    note = DEVICE_CLOCK_NOTE.fullmatch(example)
    if note is None:
        return pseudonymise(example)
    return pseudonymise(note.group(1)) + note.group(2)


def _time(epoch: float) -> str:
    """RFC 3339 in UTC, as Alertmanager wants it."""
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + (f".{moment.microsecond // 1000:03d}Z" if moment.microsecond else "Z")


def _num(value: float) -> str:
    if not math.isfinite(value):
        return "n/a"
    return f"{value:.2f}" if abs(value) < 100 else f"{value:,.0f}"
