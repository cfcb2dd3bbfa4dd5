"""Alerts from a replay's verdicts, scored against the incidents' ground truth (no I/O but reading).

* An **alert** is a maximal run of consecutive windows of one series (touchpoint +
  metric) that the detector flagged (``anomaly=True``); it starts at the end of its
  first flagged window (when a live worker would have fired). An alert of the **evidence
  path** (``path == "evidence"``) runs from the finding that starts it (the event time its
  evidence crossed the threshold: when the worker pages) to the finding that says its series
  is back to normal, or the end of the traffic.
* An incident is **detected** when an alert on a matching series starts within
  ``[incident start, incident end + grace]``. Matching: same journey and step (and channel
  when the incident names one) for step incidents, same channel and queue for queue
  incidents; any monitored metric counts. Delay = first such alert start - incident start.
* An alert is **true** when it matches an incident's touchpoint and starts within
  ``[start - grace, end + grace]`` of it, or later but within the echo time
  (``alert_echo_seconds``) of its end and while that touchpoint's incident is still open in
  the worker's alert tracker, so that it joins it (a queue's backlog still abandoning after
  the staffing came back: on-call sees the same incident, not a new one); else **false**
  (a late echo after the incident resolved too: it is sent as info, see below).
  Alerts that start after the last event of the file are **after the end**: the replay
  closes the open sessions then (every session still in flight ends as a drop-off), which
  live traffic never does; they are reported apart and not scored.
* Each alert is also **sent as** the worker's alert tracker (:mod:`frictionwatch.alerts.immediate`)
  would send it: ``info`` for late evidence of an incident at the touchpoint that already
  resolved (an echo) or for a step's pooled series joining its channel's open incident,
  which page no one; else the highest severity of its windows. **False pages** are the
  false alerts sent above info: what on-call and ops would have heard of.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from frictionwatch.alerts.immediate import AlertSettings, AlertTracker
from frictionwatch.backtest.replay import BacktestInputError, ReplayResult, SeriesKey, SeriesTrace
from frictionwatch.detectors.bank import Finding, SeriesPlace
from frictionwatch.detectors.base import SEVERITY_RANK


@dataclass(slots=True)
class TruthIncident:
    """One incident of the ground truth: its touchpoints and the metrics it moves."""

    name: str
    kind: str
    start: float
    end: float
    places: list[tuple[str | None, str | None, str | None, str | None]] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)

    def where(self) -> str:
        return ", ".join("/".join(part for part in place if part) for place in self.places)

    def matches(self, place: SeriesPlace) -> bool:
        """Whether a series at ``place`` (journey, step, channel, queue, survey) is this incident's."""
        journey, step, channel, queue, _ = place
        for want_journey, want_step, want_channel, want_queue in self.places:
            if want_journey is not None:
                if (journey, step) == (want_journey, want_step) and want_channel in (None, channel):
                    return True
            elif (channel, queue) == (want_channel, want_queue):
                return True
        return False


def load_incidents(path: str | Path) -> list[TruthIncident]:
    """Read a ground-truth file (``frictionwatch generate --incidents``); errors name file and line."""
    source = Path(path)
    try:
        text = source.read_bytes()
    except OSError as error:
        raise BacktestInputError(f"{source}: cannot read: {error.strerror}") from None
    incidents: dict[str, TruthIncident] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{source}:{number}"
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError as error:
            raise BacktestInputError(f"{where}: not a JSON line ({error})") from None
        if not isinstance(doc, dict):
            raise BacktestInputError(f"{where}: expected a JSON object")
        if doc.get("control") is True:
            continue  # a control (generator, metric "*"): nothing to find; alerts during it count as false
        for key in ("incident", "kind", "metric"):
            if not isinstance(doc.get(key), str) or not doc[key]:
                raise BacktestInputError(f"{where}: missing or empty {key!r}")
        for key in ("start", "end"):
            value = doc.get(key)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise BacktestInputError(f"{where}: {key!r} must be epoch seconds, got {value!r}")
        if doc["end"] < doc["start"]:
            raise BacktestInputError(f"{where}: end is before start")
        texts = {key: doc.get(key) for key in ("journey", "step", "channel", "queue")}
        for key, value in texts.items():
            if value is not None and not isinstance(value, str):
                raise BacktestInputError(f"{where}: {key!r} must be text, got {value!r}")
        if texts["journey"] is not None or texts["step"] is not None:
            if texts["journey"] is None or texts["step"] is None:
                raise BacktestInputError(f"{where}: a step incident names both 'journey' and 'step'")
        elif texts["channel"] is None or texts["queue"] is None:
            raise BacktestInputError(f"{where}: name 'journey' and 'step', or 'channel' and 'queue'")
        place = (texts["journey"], texts["step"], texts["channel"], texts["queue"])
        incident = incidents.get(doc["incident"])
        if incident is None:
            incident = incidents[doc["incident"]] = TruthIncident(
                doc["incident"], doc["kind"], float(doc["start"]), float(doc["end"])
            )
        elif (incident.start, incident.end) != (float(doc["start"]), float(doc["end"])):
            raise BacktestInputError(f"{where}: incident {doc['incident']!r} has another start or end above")
        if place not in incident.places:
            incident.places.append(place)
        if doc["metric"] not in incident.metrics:
            incident.metrics.append(doc["metric"])
    return sorted(incidents.values(), key=lambda incident: (incident.start, incident.name))


@dataclass(slots=True)
class Alert:
    """A run of consecutive flagged windows of one series."""

    place: SeriesPlace
    metric: str
    start: float  # end of the first flagged window
    end: float  # end of the last flagged window
    windows: int
    peak_score: float
    severity: str
    incident: str | None = None  # the incident it belongs to (true alerts)
    after_end: bool = False
    sent_as: str = ""  # the severity the worker's alert tracker sends it with (info pages no one)
    joined: bool = False  # the tracker had its touchpoint's incident open when it started (not a new one)
    path: str = "windows"  # or "evidence": which of the worker's paths raised it

    @property
    def pages(self) -> bool:
        """Whether the worker would have notified someone (sent it above info)."""
        return self.sent_as != "info"

    @property
    def series(self) -> str:
        return series_name(self.place, self.metric)


def series_name(place: SeriesPlace, metric: str) -> str:
    """``purchase/payment/web early_flow_ratio``: the touchpoint's non-empty labels and the metric."""
    return "/".join(part for part in place if part) + " " + metric


_RANK = {"none": 0, "info": 1, "warning": 2, "critical": 3}


def alerts_of(trace: SeriesTrace, window_size: float) -> list[Alert]:
    """The alerts of one series: runs of flagged windows, a missing window ending a run."""
    alerts: list[Alert] = []
    current: Alert | None = None
    for verdict in trace.verdicts:
        if not verdict.anomaly:
            current = None
            continue
        if current is not None and verdict.ts - current.end <= window_size * 1.001:
            current.end = verdict.ts
            current.windows += 1
            current.peak_score = max(current.peak_score, verdict.score)
            if _RANK.get(verdict.severity, 0) > _RANK.get(current.severity, 0):
                current.severity = verdict.severity
            continue
        current = Alert(trace.place, trace.metric, verdict.ts, verdict.ts, 1, verdict.score, verdict.severity)
        alerts.append(current)
    return alerts


def evidence_alerts(findings: Iterable[Finding], end: float) -> list[Alert]:
    """The evidence path's findings as alerts: from a finding that alarms while its series was
    normal to the next finding that says it is normal (or ``end``); the findings in between
    (getting worse) are counted in ``windows``.

    >>> from frictionwatch.detectors.base import Verdict
    >>> def found(ts, anomaly, score=1.0):
    ...     verdict = Verdict(ts, 0, 0, 0, 0, score, 0, anomaly, "warning" if anomaly else "none", "")
    ...     return Finding(("purchase", "payment", "web", "", ""), "step_errors", verdict, 1.0)
    >>> findings = [found(100, True), found(130, True, 2.0), found(400, False), found(900, True)]
    >>> for alert in evidence_alerts(findings, end=1000):
    ...     print(alert.metric, alert.start, alert.end, alert.windows, alert.peak_score, alert.path)
    step_errors 100 400 2 2.0 evidence
    step_errors 900 1000 1 1.0 evidence
    """
    alerts: list[Alert] = []
    open_: dict[tuple[SeriesPlace, str], Alert] = {}
    for finding in findings:
        key = (finding.place, finding.metric)
        alert, verdict = open_.get(key), finding.verdict
        if verdict.anomaly:
            if alert is None:
                alert = open_[key] = Alert(
                    finding.place, finding.metric, verdict.ts, verdict.ts, 1, verdict.score, verdict.severity,
                    path="evidence",
                )  # fmt: skip
                alerts.append(alert)
            else:
                alert.windows += 1
                alert.peak_score = max(alert.peak_score, verdict.score)
                if _RANK.get(verdict.severity, 0) > _RANK.get(alert.severity, 0):
                    alert.severity = verdict.severity
        elif alert is not None:
            alert.end = verdict.ts
            del open_[key]
    for alert in open_.values():
        alert.end = max(end, alert.start)
    return alerts


@dataclass(slots=True)
class Detection:
    """How an incident was found (or not)."""

    incident: TruthIncident
    alert: Alert | None = None

    @property
    def detected(self) -> bool:
        return self.alert is not None

    @property
    def delay(self) -> float | None:
        return None if self.alert is None else self.alert.start - self.incident.start


@dataclass(slots=True)
class Score:
    """The outcome of a backtest against the ground truth."""

    detections: list[Detection]
    alerts: list[Alert]  # every alert, sorted by start
    grace: float
    simulated_days: float

    @property
    def scored(self) -> list[Alert]:
        return [alert for alert in self.alerts if not alert.after_end]

    @property
    def true_alerts(self) -> int:
        return sum(1 for alert in self.scored if alert.incident is not None)

    @property
    def false_alerts(self) -> list[Alert]:
        return [alert for alert in self.scored if alert.incident is None]

    @property
    def false_pages(self) -> list[Alert]:
        """The false alerts the worker would have sent above info (to on-call or ops)."""
        return [alert for alert in self.false_alerts if alert.pages]

    @property
    def detected(self) -> int:
        return sum(1 for detection in self.detections if detection.detected)

    @property
    def false_alerts_per_day(self) -> float:
        return self._per_day(len(self.false_alerts))

    @property
    def false_pages_per_day(self) -> float:
        return self._per_day(len(self.false_pages))

    def _per_day(self, count: int) -> float:
        if self.simulated_days <= 0:
            return math.inf if count else 0.0
        return count / self.simulated_days

    @property
    def precision(self) -> float | None:
        scored = len(self.scored)
        return self.true_alerts / scored if scored else None

    @property
    def recall(self) -> float | None:
        return self.detected / len(self.detections) if self.detections else None

    def false_by_series(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for alert in self.false_alerts:
            counts[alert.series] = counts.get(alert.series, 0) + 1
        return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))

    def totals(self) -> dict[str, Any]:
        delays = [d.delay for d in self.detections if d.delay is not None]
        return {
            "incidents": len(self.detections),
            "detected": self.detected,
            "alerts": len(self.scored),
            "true_alerts": self.true_alerts,
            "false_alerts": len(self.false_alerts),
            "false_alerts_per_day": self.false_alerts_per_day,
            "false_pages": len(self.false_pages),
            "false_pages_per_day": self.false_pages_per_day,
            "alerts_after_end": len(self.alerts) - len(self.scored),
            "precision": self.precision,
            "recall": self.recall,
            "mean_delay_seconds": sum(delays) / len(delays) if delays else None,
            "max_delay_seconds": max(delays) if delays else None,
            "simulated_days": self.simulated_days,
            "grace_seconds": self.grace,
        }


def score_replay(
    result: ReplayResult,
    incidents: list[TruthIncident],
    grace_windows: float = 2.0,
    alert_settings: AlertSettings | None = None,
) -> Score:
    """Alerts of every series of ``result``, matched against ``incidents``, each with the
    severity the worker would send it with (``alert_settings``: its hold and echo times)."""
    grace = grace_windows * result.window_size
    last = result.last_ts if result.last_ts is not None else math.inf
    alerts: list[Alert] = []
    keys: list[SeriesKey] = sorted(result.series)
    for key in keys:
        alerts.extend(alerts_of(result.series[key], result.window_size))
    alerts += evidence_alerts((finding for _, finding in result.evidence), last if math.isfinite(last) else 0.0)
    alerts.sort(key=lambda alert: (alert.start, alert.series))
    settings = alert_settings or AlertSettings()
    _mark_sent_as(result, alerts, settings)
    detections = [Detection(incident) for incident in incidents]
    for alert in alerts:
        alert.after_end = alert.start > last + result.window_size
        for detection in detections:
            incident = detection.incident
            if not incident.matches(alert.place):
                continue
            if incident.start - grace <= alert.start <= incident.end + grace:
                alert.incident = alert.incident or incident.name
            elif alert.joined and incident.end < alert.start <= incident.end + settings.echo_seconds:
                alert.incident = alert.incident or incident.name  # its late part, in the same incident
            if incident.start <= alert.start <= incident.end + grace and detection.alert is None:
                detection.alert = alert  # alerts are sorted by start: the first one
    return Score(detections, alerts, grace, result.simulated_days)


def _mark_sent_as(result: ReplayResult, alerts: list[Alert], settings: AlertSettings) -> None:
    """Give each alert the severity the worker's :class:`AlertTracker` sends it with: the
    verdicts replayed window by window and the evidence path's findings as they came (event
    time as the clock, as the worker hands both to one tracker), and per flagged window or
    finding the severity of the touchpoint's incident; an alert takes the highest over them."""
    # event time -> [(when the findings' evidence began, findings)]: a final window's, or one evidence finding
    moments: dict[float, list[tuple[float, list[Finding]]]] = {}
    windows: dict[float, list[Finding]] = {}
    for trace in result.series.values():
        for verdict in trace.verdicts:
            windows.setdefault(verdict.ts, []).append(Finding(trace.place, trace.metric, verdict, trace.threshold))
    for ts, findings in windows.items():
        moments.setdefault(ts, []).append((ts - result.window_size, findings))
    for since, finding in result.evidence:
        moments.setdefault(finding.verdict.ts, []).append((since, [finding]))
    sent: dict[tuple[SeriesPlace, str], dict[float, str]] = {}
    joined: set[tuple[SeriesPlace, str, float]] = set()  # flagged while its touchpoint's incident was open
    tracker = AlertTracker(settings)
    for ts, began, findings in ((at, began, found) for at in sorted(moments) for began, found in moments[at]):
        open_before = {finding.place[:4] for finding in findings if finding.place[:4] in tracker.incidents}
        tracker.update(findings, began, ts, {})
        for finding in findings:
            if finding.verdict.anomaly and finding.place[:4] in open_before:
                joined.add((finding.place, finding.metric, ts))
            incident = tracker.incidents.get(finding.place[:4]) if finding.verdict.anomaly else None
            if incident is not None:
                sent.setdefault((finding.place, finding.metric), {})[ts] = incident.severity
    for alert in alerts:
        severities = [
            severity
            for ts, severity in sent.get((alert.place, alert.metric), {}).items()
            if alert.start <= ts <= alert.end
        ]
        alert.sent_as = max(severities, key=lambda severity: SEVERITY_RANK.get(severity, -1), default=alert.severity)
        alert.joined = (alert.place, alert.metric, alert.start) in joined
