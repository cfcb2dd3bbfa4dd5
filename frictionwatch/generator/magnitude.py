"""The size of each incident, for the ground truth: the incident's value of its kind's main
parameter over the normal value (see the table in :mod:`.scenario`).

``continuation: 0.45`` on a step that normally moves on with 0.9 gives 0.5; an
``error_rate`` of 0.25 on a step with 1% errors gives 25; a ``slow_page`` factor 3 gives 3.
"""

from __future__ import annotations

from dataclasses import replace

from frictionwatch.generator.model import StepModel, TrafficModel
from frictionwatch.generator.scenario import SATISFIED, Baseline, Incident


def measured(incident: Incident, model: TrafficModel, baseline: Baseline) -> Incident:
    """``incident`` with its magnitude per metric and (feedback collapses) the answer delay it uses."""
    magnitudes = tuple((metric, round(magnitude(incident, metric, model), 6)) for metric in incident.metrics)
    if incident.kind == "feedback_collapse" and incident.feedback_delay is None:
        incident = replace(incident, feedback_delay=baseline.feedback_delay)
    return replace(incident, magnitudes=magnitudes)


def magnitude(incident: Incident, metric: str, model: TrafficModel) -> float:
    kind, value = incident.kind, incident.parameter
    if kind in ("step_outage", "error_burst"):
        step = step_model(model, incident)
        if metric == "step_conversion":
            return _ratio(min(step.continuation, value("continuation")), step.continuation)
        return _ratio(max(step.error_rate, value("error_rate")), step.error_rate)
    if kind == "understaffed":
        return 1.0 / value("factor")
    if kind == "feedback_collapse":
        return (SATISFIED - value("severity")) / SATISFIED
    if kind == "campaign_mix":
        return 1.0 + value("share")
    if kind == "late_batch":
        return 1.0
    if kind == "holiday":
        return value("volume")
    return value("factor")  # dropoff, slow_page, abandonment_spike, traffic_surge, slow_drift


def step_model(model: TrafficModel, incident: Incident) -> StepModel:
    """The model of the step ``incident`` targets."""
    return next(step for step in model.steps if (step.journey, step.name) == (incident.journey, incident.step))


def _ratio(value: float, normal: float) -> float:
    return value / normal if normal > 0 else 1.0
