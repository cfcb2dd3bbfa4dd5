"""The series the detectors watch: one value and volume per final window, touchpoint and metric.

>>> from frictionwatch.streams.reduce import FinalWindow
>>> window = FinalWindow("journey.contacts", "phone", 0.0, 60.0, 1, 1)
>>> window.counts[Touchpoint(channel="phone", queue="billing")].update(answered=30.0, abandoned=10.0)
>>> [(metric, obs.value, obs.volume) for _, metric, obs in observations("contacts", window)][:1]
[('abandonment_ratio', 0.25, 40.0)]
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

from frictionwatch.detectors.base import Direction, Observation
from frictionwatch.detectors.sequential import Model
from frictionwatch.streams.reduce import FinalWindow
from frictionwatch.streams.windows import Touchpoint

Fields = Mapping[str, float]
Kind = Literal["ratio", "mean"]


@dataclass(frozen=True, slots=True)
class MonitoredMetric:
    """A metric detectors watch: how to read (value, volume) from a window's fields."""

    name: str
    source: str  # clicks, contacts, feedback
    kind: Kind
    direction: Direction  # the bad direction
    read: Callable[[Touchpoint, Fields], tuple[float, float] | None]
    description: str
    model: Model = "normal"  # how a window's value varies (sequential detectors): see detectors/sequential.py

    def __post_init__(self) -> None:
        if self.kind == "ratio" and self.model == "normal":
            object.__setattr__(self, "model", "binomial")


def _ratio(numerator: str, *denominator: str) -> Callable[[Touchpoint, Fields], tuple[float, float] | None]:
    def read(place: Touchpoint, fields: Fields) -> tuple[float, float] | None:
        volume = sum(fields.get(name, 0.0) for name in denominator)
        return (fields.get(numerator, 0.0) / volume, volume) if volume > 0 else None

    return read


def _per(numerator: str, denominator: str) -> Callable[[Touchpoint, Fields], tuple[float, float] | None]:
    def read(place: Touchpoint, fields: Fields) -> tuple[float, float] | None:
        volume = fields.get(denominator, 0.0)
        return (fields.get(numerator, 0.0) / volume, volume) if volume > 0 else None

    return read


def _survey(survey: str, read: Callable[[Fields], float]) -> Callable[[Touchpoint, Fields], tuple[float, float] | None]:
    def reader(place: Touchpoint, fields: Fields) -> tuple[float, float] | None:
        responses = fields.get("responses", 0.0)
        return (read(fields) / responses, responses) if place.survey == survey and responses > 0 else None

    return reader


def _answered_wait(place: Touchpoint, fields: Fields) -> tuple[float, float] | None:
    known = fields.get("answered", 0.0) - fields.get("answered_wait_unknown", 0.0)
    return (fields.get("answered_wait_seconds_sum", 0.0) / known, known) if known > 0 else None


def _service_level(place: Touchpoint, fields: Fields) -> tuple[float, float] | None:
    judged = fields.get("answered", 0.0) + fields.get("abandoned", 0.0) - fields.get("wait_unknown", 0.0)
    return (fields.get("answered_within_service_level", 0.0) / judged, judged) if judged > 0 else None


MONITORED: tuple[MonitoredMetric, ...] = (
    MonitoredMetric(
        "early_flow_ratio",
        "clicks",
        "ratio",
        "down",
        _ratio("early_progressed", "early_progressed", "early_waiting"),
        "step visits past the step at the early check",
    ),
    MonitoredMetric(
        "flow_ratio",
        "clicks",
        "ratio",
        "down",
        _ratio("flow_progressed", "flow_progressed", "flow_stalled"),
        "step visits that moved on within the progress timeout",
    ),
    MonitoredMetric(
        "step_conversion",
        "clicks",
        "ratio",
        "down",
        _ratio("ended_reached_next", "ended_reached"),
        "ended sessions at the step that reached the next step",
    ),
    MonitoredMetric(
        "dropoff_ratio",
        "clicks",
        "ratio",
        "up",
        _ratio("dropoffs", "ended_reached"),
        "ended sessions that reached the step and ended there",
    ),
    MonitoredMetric(
        "errors_per_visit", "clicks", "mean", "up", _per("errors", "step_visits"), "errors per step visit", "poisson"
    ),
    MonitoredMetric(
        "rage_clicks_per_visit",
        "clicks",
        "mean",
        "up",
        _per("rage_clicks", "step_visits"),
        "rage clicks per step visit",
        "poisson",
    ),
    MonitoredMetric(
        "abandonment_ratio",
        "contacts",
        "ratio",
        "up",
        _ratio("abandoned", "answered", "abandoned"),
        "abandoned / (answered + abandoned)",
    ),
    MonitoredMetric(
        "average_speed_of_answer",
        "contacts",
        "mean",
        "up",
        _answered_wait,
        "mean wait of answered contacts, seconds",
        "log_normal",
    ),
    MonitoredMetric(
        "service_level",
        "contacts",
        "ratio",
        "down",
        _service_level,
        "answered within the service level / (answered + abandoned)",
    ),
    MonitoredMetric(
        "csat",
        "feedback",
        "ratio",
        "down",
        _survey("csat", lambda f: f.get("csat_satisfied", 0.0)),
        "share of CSAT answers of 4-5",
    ),
    MonitoredMetric(
        "nps",
        "feedback",
        "mean",
        "down",
        _survey("nps", lambda f: f.get("nps_promoters", 0.0) - f.get("nps_detractors", 0.0)),
        "net promoter score / 100 (-1 to 1: a change of 1/n is one answer)",
    ),
    MonitoredMetric(
        "ces",
        "feedback",
        "mean",
        "up",
        _survey("ces", lambda f: f.get("score_sum", 0.0)),
        "mean customer effort score (1-7, higher is more effort)",
    ),
)
BY_NAME = {metric.name: metric for metric in MONITORED}


def observations(source: str, window: FinalWindow) -> Iterator[tuple[Touchpoint, str, Observation]]:
    """Every monitored (touchpoint, metric, observation) of one final window of ``source``."""
    metrics = [metric for metric in MONITORED if metric.source == source]
    for place, fields in window.counts.items():
        for metric in metrics:
            read = metric.read(place, fields)
            if read is not None:
                value, volume = read
                yield place, metric.name, Observation(window.end, value, volume)
