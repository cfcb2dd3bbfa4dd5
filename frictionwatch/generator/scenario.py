"""Scenario files: incidents and controls to inject into the generated traffic, and baseline tuning.

A scenario is a YAML file checked against the journey map; every problem is reported
at once with the file, line and field it concerns (:class:`ScenarioError`)::

    version: 1
    baseline:                        # optional: tune the normal traffic
      feedback_delay: [10m, 60m]     # survey answers arrive 10-60 min after the visit or contact
      journeys:                      #   (uniform; one duration = lognormal median; default 2m)
        purchase:
          weight: 3                  # relative share of sessions (default 4 for purchase-like names, else 1)
          continuation:              # chance that a session on a step moves on to the next step
            landing: 0.7
            payment: 0.9
    incidents:
      - name: payment_gateway_down   # unique; names the incident in the ground truth (default: kind-N)
        kind: step_outage
        journey: purchase
        step: payment
        channel: app                 # optional: only this channel of the step
        device: ios                  # optional: only sessions on this device (implies its channel)
        start: 2h                    # offset from the run start (0, 90s, 30m, 2h, 1d) or RFC 3339 time
        duration: 30m
        shape: linear_ramp           # optional: step (default) | linear_ramp | triangular_ramp
        continuation: 0.1            # optional parameters of the kind, see below

Incident kinds (faults), what they target, their optional parameters (default) and the
metrics they move; ``magnitude`` is what the ground truth reports for each metric:

=================  =====================  ===========================  ===================  ==========================
kind               target                 parameters (default)         ground-truth metrics magnitude
=================  =====================  ===========================  ===================  ==========================
step_outage        journey, step          continuation (0.1),          step_conversion,     continuation / normal;
                   [, channel][, device]  error_rate (0.3)             errors               error_rate / normal
dropoff            journey, step          factor (0.5): continuation   step_conversion      factor
                   [, channel][, device]  x factor, no errors
slow_page          journey, step          factor (3): dwell x factor   dwell_seconds        factor
                   [, channel][, device]
error_burst        journey, step          error_rate (0.25), harmless  errors               error_rate / normal
                   [, channel][, device]  errors: the flow unchanged
understaffed       channel [, queue]      factor (3): agents / factor  wait_seconds,        1 / factor (agents left)
                                                                       abandonment_ratio
abandonment_spike  channel [, queue]      factor (4): patience /       abandonment_ratio    factor
                                          factor, the same waits
feedback_collapse  journey, step          severity (0.5), survey (all  the touchpoint's     (0.82 - severity) / 0.82
                   [, channel][, device]  of the touchpoint's),        surveys (csat, nps,  (satisfaction of a smooth
                   or channel [, queue]   feedback_delay (baseline's)  ces)                 visit, after / before)
=================  =====================  ===========================  ===================  ==========================

``error_rate`` is the chance that a visit of the step hits an error; ``continuation``
replaces the step's chance of moving on. Errors of an ``error_burst`` are harmless to the
journey (a failing widget): the session moves on, contacts and rates as it would have, so
only the error count moves; a ``step_outage`` is the opposite (errors and people stuck).
``abandonment_spike`` divides callers' patience by its factor (more hang up at the same
wait; the waits of those answered stay as they were). ``severity`` (0-1) lowers the
satisfaction behind every score given about the touchpoint during the window (the visit
or contact time); those answers arrive ``feedback_delay`` later. A channel without a queue
means all its queues. Ramps grow the effect linearly from nothing at ``start`` to the full
parameter at the end (``linear_ramp``) or at mid-duration and back to nothing at the end
(``triangular_ramp``); the magnitude is the full one.

Controls must not raise a friction alert anywhere in the map (ground truth: ``"control":
true``, metric ``"*"``):

===============  ======================  ==============================================================  ==============
kind             target                  parameters (default): what happens                              magnitude
===============  ======================  ==============================================================  ==============
traffic_surge    (whole map)             factor (3): every arrival x factor; ratios normal, the contact  factor
                                         centre staffed for it (the forecast knew)
campaign_mix     journey, step           share (0.5): extra sessions (share x the journey's sessions)    1 + share
                 [, channel]             enter at the step (deep links from a campaign) and behave like
                                         everyone else from there: each step's ratios stay normal while
                                         the volume at each step, the entry mix and the journey's
                                         conversion change
late_batch       (whole map) [topic]     delay (3m): the events of the window (of one topic: clicks,     1
                                         contacts, feedback) arrive together ``delay`` after its end
slow_drift       journey, step           factor (0.8): continuation drifts linearly to x factor over     factor
                 [, channel]             the window (days) and stays there to the end of the run
holiday          (whole map)             volume (0.8), shift (2h): the day's curve runs ``shift`` later  volume
                                         (people sleep in) at ``volume`` x the level; ratios normal
===============  ======================  ==============================================================  ==============

Why ``campaign_mix`` brings visitors who behave normally per step rather than visitors who
bounce at the landing page: the events carry no campaign or segment label, so bouncing
campaign visitors lower the landing page's conversion in exactly the way a broken landing
page does, and no detector can (or should be asked to) tell them apart. What a detector
must not do is mistake a change of the *mix* (more sessions, entering elsewhere, a journey
converting better as a whole) for friction at a touchpoint; that is what this control tests.

The ground truth (:meth:`Incident.ground_truth`) has one JSON object per incident,
touchpoint and metric: ``{"incident", "kind", "journey", "step"[, "channel"][, "device"]
or "channel", "queue", "metric", "start", "end", "magnitude", "shape", "control"}`` with
start and end in epoch seconds, clipped to the span of the run (incidents entirely
outside it are left out); survey metrics add ``"survey"`` and ``"evidence_from"``/
``"evidence_until"``: when the affected answers arrive (window + the 5th/95th percentile
of the answer delay); controls have metric ``"*"`` and name a touchpoint only when they
concern one; ``late_batch`` adds ``"delay"`` (seconds) and maybe ``"topic"``.
docs/backtest.md documents the contract.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from random import Random
from typing import Any, Final

import yaml

from frictionwatch.generator.devices import DEVICES, channel_of
from frictionwatch.journeymap import JourneyMap, Problem, parse_duration

STEP_KINDS: Final = ("step_outage", "dropoff", "slow_page", "error_burst")
QUEUE_KINDS: Final = ("understaffed", "abandonment_spike")
FAULT_KINDS: Final = (*STEP_KINDS, *QUEUE_KINDS, "feedback_collapse")
CONTROL_KINDS: Final = ("traffic_surge", "campaign_mix", "late_batch", "slow_drift", "holiday")
INCIDENT_KINDS: Final = (*FAULT_KINDS, *CONTROL_KINDS)
SHAPES: Final = ("step", "linear_ramp", "triangular_ramp")
# Kinds without a ``shape``: a drift is a ramp by definition, a batch and a holiday have their own form.
UNSHAPED_KINDS: Final = ("late_batch", "slow_drift", "holiday")
LATE_TOPICS: Final = ("clicks", "contacts", "feedback")
SATISFIED: Final = 0.82  # feedback.SATISFIED: the satisfaction of a smooth visit (magnitude of a collapse)
SURVEY_DELAY_MEDIAN: Final = 120.0
# The 5th and 95th percentiles of a lognormal delay (sigma 1) relative to its median.
_LOW_QUANTILE, _HIGH_QUANTILE = math.exp(-1.645), math.exp(1.645)


@dataclass(frozen=True, slots=True)
class Parameter:
    """A numeric parameter of an incident kind, with its default and allowed range;
    ``duration`` parameters are written as durations (3m) and held in seconds."""

    default: float
    low: float
    high: float
    duration: bool = False


PARAMETERS: Final[dict[str, dict[str, Parameter]]] = {
    "step_outage": {"continuation": Parameter(0.1, 0.0, 1.0), "error_rate": Parameter(0.3, 0.0, 1.0)},
    "dropoff": {"factor": Parameter(0.5, 0.0, 1.0)},
    "slow_page": {"factor": Parameter(3.0, 0.01, 100.0)},
    "error_burst": {"error_rate": Parameter(0.25, 0.0, 1.0)},
    "understaffed": {"factor": Parameter(3.0, 0.01, 100.0)},
    "abandonment_spike": {"factor": Parameter(4.0, 1.0, 1000.0)},
    "feedback_collapse": {"severity": Parameter(0.5, 0.0, 1.0)},
    "traffic_surge": {"factor": Parameter(3.0, 0.05, 50.0)},
    "campaign_mix": {"share": Parameter(0.5, 0.0, 20.0)},
    "late_batch": {"delay": Parameter(180.0, 1.0, 86400.0, duration=True)},
    "slow_drift": {"factor": Parameter(0.8, 0.0, 2.0)},
    "holiday": {"volume": Parameter(0.8, 0.05, 5.0), "shift": Parameter(7200.0, 0.0, 43200.0, duration=True)},
}
METRICS: Final[dict[str, tuple[str, ...]]] = {
    "step_outage": ("step_conversion", "errors"),
    "dropoff": ("step_conversion",),
    "slow_page": ("dwell_seconds",),
    "error_burst": ("errors",),
    "understaffed": ("wait_seconds", "abandonment_ratio"),
    "abandonment_spike": ("abandonment_ratio",),
    **{kind: ("*",) for kind in CONTROL_KINDS},
}
# Extra fields a kind accepts besides its parameters and its target.
_EXTRA_FIELDS: Final[dict[str, tuple[str, ...]]] = {"feedback_collapse": ("survey", "feedback_delay")}
_STEP_TARGET: Final = ("journey", "step", "channel", "device")
_TARGETS: Final[dict[str, tuple[str, ...]]] = {
    **{kind: _STEP_TARGET for kind in STEP_KINDS},
    **{kind: ("channel", "queue") for kind in QUEUE_KINDS},
    "feedback_collapse": ("journey", "step", "channel", "device", "queue"),
    "traffic_surge": (),
    "campaign_mix": ("journey", "step", "channel"),
    "late_batch": ("topic",),
    "slow_drift": ("journey", "step", "channel"),
    "holiday": (),
}
_COMMON_FIELDS: Final = ("name", "kind", "start", "duration", "shape")


@dataclass(frozen=True, slots=True)
class FeedbackDelay:
    """How long after the visit or contact a survey answer arrives: uniform between ``low``
    and ``high`` seconds, or (``median`` set) lognormal around it with sigma 1."""

    median: float | None = SURVEY_DELAY_MEDIAN
    low: float = 0.0
    high: float = 0.0

    def sample(self, rng: Random) -> float:
        if self.median is not None:
            return self.median * math.exp(rng.gauss(0.0, 1.0))
        return rng.uniform(self.low, self.high)

    @property
    def bounds(self) -> tuple[float, float]:
        """The delays most answers arrive within: the range, or the lognormal's 5th-95th percentiles."""
        if self.median is not None:
            return self.median * _LOW_QUANTILE, self.median * _HIGH_QUANTILE
        return self.low, self.high


@dataclass(frozen=True, slots=True)
class Incident:
    """One incident (or control) with its effect window in epoch seconds.

    Step incidents name ``journey`` and ``step`` (and maybe ``channel`` and ``device``);
    queue incidents name ``channel`` and the affected ``queues``; whole-map controls name
    neither. ``metrics`` are the metrics it moves (``("*",)`` for controls);
    ``magnitudes`` the relative size per metric (filled in by :func:`measured`).
    """

    name: str
    kind: str
    start: float
    end: float
    metrics: tuple[str, ...]
    journey: str | None = None
    step: str | None = None
    channel: str | None = None
    queues: tuple[str, ...] = ()
    parameters: tuple[tuple[str, float], ...] = ()
    shape: str = "step"
    device: str | None = None
    topic: str | None = None
    feedback_delay: FeedbackDelay | None = None
    magnitudes: tuple[tuple[str, float], ...] = ()

    @property
    def control(self) -> bool:
        return self.kind in CONTROL_KINDS

    def active(self, t: float) -> bool:
        return self.start <= t < self.end

    def strength(self, t: float) -> float:
        """How much of the full effect applies at ``t``: 0 outside the window, 1 for a step;
        a ramp grows from 0 at the start; a slow drift stays at 1 after its end."""
        if t < self.start:
            return 0.0
        if t >= self.end:
            return 1.0 if self.kind == "slow_drift" else 0.0
        if self.shape == "step" and self.kind != "slow_drift":
            return 1.0
        progress = (t - self.start) / (self.end - self.start)
        if self.shape == "triangular_ramp":
            return 1.0 - abs(2.0 * progress - 1.0)
        return progress

    def scaled(self, name: str, normal: float, t: float) -> float:
        """Parameter ``name`` at ``t``: ``normal`` moved towards its full value by :meth:`strength`."""
        return normal + self.strength(t) * (self.parameter(name) - normal)

    def within(self, start: float, end: float) -> Incident | None:
        """This incident clipped to the span [start, end) of a run; None when outside it."""
        if self.end <= start or self.start >= end:
            return None
        return replace(self, start=max(self.start, start), end=min(self.end, end))

    def parameter(self, name: str) -> float:
        """The value of a kind parameter (its default when the scenario left it out)."""
        for key, value in self.parameters:
            if key == name:
                return value
        return PARAMETERS[self.kind][name].default

    def touches(self, channel: str, device: str | None) -> bool:
        """Whether a session on ``channel`` and ``device`` is affected (given the step matches)."""
        return self.channel in (None, channel) and self.device in (None, device)

    def ground_truth(self) -> list[dict[str, Any]]:
        """One object per touchpoint and metric this incident affects (see the module docstring)."""
        places: list[dict[str, Any]]
        if self.journey is not None:
            place: dict[str, Any] = {"journey": self.journey, "step": self.step}
            if self.channel is not None:
                place["channel"] = self.channel
            if self.device is not None:
                place["device"] = self.device
            places = [place]
        elif self.queues:
            places = [{"channel": self.channel, "queue": queue} for queue in self.queues]
        else:
            places = [{}]
        magnitudes = dict(self.magnitudes)
        lines = []
        for place in places:
            for metric in self.metrics:
                line: dict[str, Any] = {"incident": self.name, "kind": self.kind, **place, "metric": metric}
                line.update(start=self.start, end=self.end)
                if metric in magnitudes:
                    line["magnitude"] = magnitudes[metric]
                line.update(shape=self.shape, control=self.control)
                if self.kind == "feedback_collapse":
                    low, high = (self.feedback_delay or FeedbackDelay()).bounds
                    line.update(survey=metric, evidence_from=self.start + low, evidence_until=self.end + high)
                if self.kind == "late_batch":
                    line["delay"] = self.parameter("delay")
                    if self.topic is not None:
                        line["topic"] = self.topic
                lines.append(line)
        return lines


@dataclass(frozen=True, slots=True)
class IncidentSpec:
    """An incident as written, its window placed at time 0; it starts ``offset`` seconds
    after the run start, or at the absolute epoch time ``at``."""

    incident: Incident
    offset: float | None
    at: float | None

    def resolve(self, run_start: float) -> Incident:
        start = self.at if self.at is not None else run_start + (self.offset or 0.0)
        return replace(self.incident, start=start, end=start + self.incident.end)


@dataclass(frozen=True, slots=True)
class Baseline:
    """Tuning of the normal traffic: journey weights, step continuation probabilities and
    the delay of survey answers."""

    weights: tuple[tuple[str, float], ...] = ()
    continuation: tuple[tuple[str, str, float], ...] = ()
    feedback_delay: FeedbackDelay = FeedbackDelay()

    def weight(self, journey: str) -> float | None:
        return next((weight for name, weight in self.weights if name == journey), None)

    def continuation_for(self, journey: str, step: str) -> float | None:
        return next((p for name, step_name, p in self.continuation if (name, step_name) == (journey, step)), None)


@dataclass(frozen=True, slots=True)
class Scenario:
    """A parsed scenario file. ``resolve`` places its incidents relative to a run start."""

    baseline: Baseline = Baseline()
    specs: tuple[IncidentSpec, ...] = ()
    source: str = "<none>"

    def resolve(self, run_start: float) -> tuple[Incident, ...]:
        return tuple(spec.resolve(run_start) for spec in self.specs)


class ScenarioError(ValueError):
    """The scenario file is invalid; ``problems`` lists every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(problem) for problem in problems))


def load_scenario(path: str | Path, journey_map: JourneyMap) -> Scenario:
    """Read and validate a scenario file against ``journey_map``; raises :class:`ScenarioError`."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as error:
        raise ScenarioError([Problem(str(source), 0, "<file>", f"cannot read: {error.strerror}")]) from None
    except UnicodeDecodeError:
        raise ScenarioError([Problem(str(source), 0, "<file>", "not UTF-8 text")]) from None
    return parse_scenario(text, journey_map, str(source))


def parse_scenario(text: str, journey_map: JourneyMap, source: str = "<memory>") -> Scenario:
    """Validate scenario YAML ``text``; ``source`` names it in error messages."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        raise ScenarioError([Problem(source, line, "<yaml>", f"not valid YAML: {error}")]) from None
    reader = _Reader(source, journey_map)
    scenario = reader.scenario(root)
    if reader.problems:
        raise ScenarioError(reader.problems)
    return scenario


_ZERO = re.compile(r"^\s*0+(\.0+)?\s*(ms|s|m|h|d)?\s*$")


@dataclass
class _Reader:
    """Walks the YAML node tree (which keeps line numbers) and collects problems."""

    source: str
    journey_map: JourneyMap
    problems: list[Problem] = field(default_factory=list)

    def problem(self, node: yaml.Node | None, where: str, message: str) -> None:
        line = node.start_mark.line + 1 if node is not None else 0
        self.problems.append(Problem(self.source, line, where, message))

    # -- node helpers ---------------------------------------------------------------

    def mapping(self, node: yaml.Node | None, where: str, allowed: tuple[str, ...] = ()) -> dict[str, yaml.Node]:
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, where, "expected a mapping (key: value lines)")
            return {}
        result: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if allowed and key not in allowed:
                self.problem(key_node, f"{where}.{key}", f"unknown field; expected one of: {', '.join(allowed)}")
            elif key in result:
                self.problem(key_node, f"{where}.{key}", "given twice")
            else:
                result[key] = value_node
        return result

    def text(self, node: yaml.Node, where: str) -> str | None:
        if not isinstance(node, yaml.ScalarNode) or not str(node.value):
            self.problem(node, where, "expected a single value")
            return None
        return str(node.value)

    def number(self, node: yaml.Node, where: str, low: float, high: float) -> float | None:
        value: Any = yaml.safe_load(yaml.serialize(node)) if isinstance(node, yaml.ScalarNode) else None
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            self.problem(node, where, f"expected a number, got {value!r}")
            return None
        if not low <= value <= high:
            self.problem(node, where, f"must be between {low:g} and {high:g}, got {value!r}")
            return None
        return float(value)

    # -- sections -------------------------------------------------------------------

    def scenario(self, root: yaml.Node | None) -> Scenario:
        if root is None:
            self.problem(None, "<top>", "the file is empty; write `version: 1` and `incidents:`")
            return Scenario(source=self.source)
        top = self.mapping(root, "<top>", ("version", "baseline", "incidents"))
        if "version" not in top:
            self.problem(root, "version", "missing; write `version: 1` at the top")
        elif self.text(top["version"], "version") != "1":
            self.problem(top["version"], "version", "only version 1 is supported")
        baseline = self.baseline(top["baseline"]) if "baseline" in top else Baseline()
        specs: list[IncidentSpec] = []
        if "incidents" in top:
            node = top["incidents"]
            if not isinstance(node, yaml.SequenceNode):
                self.problem(node, "incidents", "expected a list of incidents (lines starting with -)")
            else:
                for index, item in enumerate(node.value):
                    spec = self.incident(item, f"incidents[{index}]", index)
                    if spec is None:
                        continue
                    if spec.incident.name in {known.incident.name for known in specs}:
                        self.problem(item, f"incidents[{index}].name", f"{spec.incident.name!r} is used twice")
                        continue
                    specs.append(spec)
        return Scenario(baseline, tuple(specs), self.source)

    def baseline(self, node: yaml.Node) -> Baseline:
        fields = self.mapping(node, "baseline", ("journeys", "feedback_delay"))
        delay = FeedbackDelay()
        if "feedback_delay" in fields:
            delay = self.feedback_delay(fields["feedback_delay"], "baseline.feedback_delay") or delay
        weights: list[tuple[str, float]] = []
        continuation: list[tuple[str, str, float]] = []
        journeys_node = fields.get("journeys")
        journeys = self.mapping(journeys_node, "baseline.journeys") if journeys_node is not None else {}
        for name, journey_node in journeys.items():
            where = f"baseline.journeys.{name}"
            journey = self.journey_map.journeys.get(name)
            if journey is None:
                self.problem(journey_node, where, f"no journey {name!r} in the journey map")
                continue
            settings = self.mapping(journey_node, where, ("weight", "continuation"))
            if "weight" in settings:
                weight = self.number(settings["weight"], f"{where}.weight", 0.0, 1e6)
                if weight is not None:
                    weights.append((name, weight))
            continuation_node = settings.get("continuation")
            steps = self.mapping(continuation_node, f"{where}.continuation") if continuation_node is not None else {}
            for step, step_node in steps.items():
                if step not in journey.steps_by_name:
                    self.problem(step_node, f"{where}.continuation.{step}", f"journey {name!r} has no step {step!r}")
                    continue
                probability = self.number(step_node, f"{where}.continuation.{step}", 0.0, 1.0)
                if probability is not None:
                    continuation.append((name, step, probability))
        return Baseline(tuple(weights), tuple(continuation), delay)

    def incident(self, node: yaml.Node, where: str, index: int) -> IncidentSpec | None:
        fields = self.mapping(node, where)
        if not fields:
            return None
        kind = self.text(fields["kind"], f"{where}.kind") if "kind" in fields else None
        if "kind" not in fields:
            self.problem(node, f"{where}.kind", f"missing; one of: {', '.join(INCIDENT_KINDS)}")
            return None
        if kind not in INCIDENT_KINDS:
            self.problem(fields["kind"], f"{where}.kind", f"{kind!r} is not one of: {', '.join(INCIDENT_KINDS)}")
            return None
        common = tuple(key for key in _COMMON_FIELDS if key != "shape" or kind not in UNSHAPED_KINDS)
        allowed = (*common, *_TARGETS[kind], *PARAMETERS[kind], *_EXTRA_FIELDS.get(kind, ()))
        for key, value_node in fields.items():
            if key not in allowed:
                expected = ", ".join(allowed)
                self.problem(value_node, f"{where}.{key}", f"not a field of {kind}; expected one of: {expected}")
        name = self.text(fields["name"], f"{where}.name") if "name" in fields else f"{kind}-{index + 1}"
        offset, at = self.start(fields.get("start"), node, f"{where}.start")
        duration = self.duration(fields.get("duration"), node, f"{where}.duration")
        shape = self.shape(fields["shape"], f"{where}.shape") if "shape" in fields and "shape" in allowed else "step"
        target = self.target(kind, fields, node, where)
        parameters = tuple(
            (key, value)
            for key, spec in PARAMETERS[kind].items()
            if key in fields and (value := self.parameter(fields[key], f"{where}.{key}", spec)) is not None
        )
        delay = None
        if "feedback_delay" in fields and "feedback_delay" in allowed:
            delay = self.feedback_delay(fields["feedback_delay"], f"{where}.feedback_delay")
            if delay is None:
                return None
        if name is None or (offset is None and at is None) or duration is None or target is None or shape is None:
            return None
        incident = replace(target, name=name, end=duration, parameters=parameters, shape=shape, feedback_delay=delay)
        return IncidentSpec(incident, offset, at)

    def parameter(self, node: yaml.Node, where: str, spec: Parameter) -> float | None:
        if not spec.duration:
            return self.number(node, where, spec.low, spec.high)
        seconds = self.duration(node, node, where)
        if seconds is not None and not spec.low <= seconds <= spec.high:
            self.problem(node, where, f"must be between {spec.low:g} s and {spec.high:g} s, got {seconds:g} s")
            return None
        return seconds

    def shape(self, node: yaml.Node, where: str) -> str | None:
        shape = self.text(node, where)
        if shape not in SHAPES:
            self.problem(node, where, f"{shape!r} is not one of: {', '.join(SHAPES)}")
            return None
        return shape

    def feedback_delay(self, node: yaml.Node, where: str) -> FeedbackDelay | None:
        """One duration (the lognormal median) or ``[low, high]`` (uniform)."""
        if isinstance(node, yaml.SequenceNode):
            if len(node.value) != 2:
                self.problem(node, where, "expected one duration (a median) or a range [low, high] such as [10m, 60m]")
                return None
            low, high = (self.duration(item, node, f"{where}[{i}]") for i, item in enumerate(node.value))
            if low is None or high is None:
                return None
            if high < low:
                self.problem(node, where, f"the range is backwards: {low:g} s > {high:g} s")
                return None
            return FeedbackDelay(None, low, high)
        median = self.duration(node, node, where)
        return FeedbackDelay(median) if median is not None else None

    def start(self, node: yaml.Node | None, parent: yaml.Node, where: str) -> tuple[float | None, float | None]:
        if node is None:
            self.problem(parent, where, "missing; an offset from the run start (2h) or an RFC 3339 time")
            return None, None
        text = self.text(node, where)
        if text is None:
            return None, None
        if _ZERO.match(text):
            return 0.0, None
        try:
            return parse_duration(text), None
        except ValueError:
            pass
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            self.problem(node, where, f"{text!r} is neither an offset such as 90s, 30m, 2h nor an RFC 3339 time")
            return None, None
        if moment.tzinfo is None:
            self.problem(node, where, f"{text!r} has no UTC offset (add Z or +hh:mm)")
            return None, None
        return None, moment.timestamp()

    def duration(self, node: yaml.Node | None, parent: yaml.Node, where: str) -> float | None:
        if node is None:
            self.problem(parent, where, "missing; how long the incident lasts, such as 30m")
            return None
        text = self.text(node, where)
        try:
            return parse_duration(text) if text is not None else None
        except ValueError as error:
            self.problem(node, where, str(error))
            return None

    def target(self, kind: str, fields: dict[str, yaml.Node], node: yaml.Node, where: str) -> Incident | None:
        """An incident of ``kind`` with its target and metrics checked against the map
        (name, window and parameters still to be filled in)."""
        names: dict[str, str | None] = {
            key: self.text(fields[key], f"{where}.{key}") for key in _TARGETS[kind] if key in fields
        }
        blank = Incident("", kind, 0.0, 0.0, METRICS.get(kind, ()))
        if kind in ("traffic_surge", "holiday"):
            return blank
        if kind == "late_batch":
            topic = names.get("topic")
            if "topic" in names and topic not in LATE_TOPICS:
                self.problem(fields["topic"], f"{where}.topic", f"{topic!r} is not one of: {', '.join(LATE_TOPICS)}")
                return None
            return replace(blank, topic=topic)
        on_step = kind not in (*QUEUE_KINDS, "feedback_collapse") or "journey" in names or "step" in names
        if on_step:
            if "queue" in names:
                self.problem(fields["queue"], f"{where}.queue", f"{kind} on a journey step takes no queue")
                return None
            found = self.step_target(names, fields, node, where)
            if found is None:
                return None
            journey, step, channel, device, surveys = found
            metrics = METRICS.get(kind) or self.surveys(kind, fields, surveys, node, where)
            if not metrics:
                return None
            return replace(blank, journey=journey, step=step, channel=channel, device=device, metrics=metrics)
        found_queues = self.queue_target(kind, names, fields, node, where)
        if found_queues is None:
            return None
        channel, queues, surveys = found_queues
        metrics = METRICS.get(kind) or self.surveys(kind, fields, surveys, node, where)
        return replace(blank, channel=channel, queues=queues, metrics=metrics) if metrics else None

    def step_target(
        self, names: dict[str, str | None], fields: dict[str, yaml.Node], node: yaml.Node, where: str
    ) -> tuple[str, str, str | None, str | None, tuple[str, ...]] | None:
        """(journey, step, channel, device, surveys) of a step target; a device implies its channel."""
        journey_name, step_name, channel = names.get("journey"), names.get("step"), names.get("channel")
        for key in ("journey", "step"):
            if key not in names:
                self.problem(node, f"{where}.{key}", "missing; a step incident names its journey and step")
        if journey_name is None or step_name is None:
            return None
        journey = self.journey_map.journeys.get(journey_name)
        if journey is None:
            self.problem(fields["journey"], f"{where}.journey", f"no journey {journey_name!r} in the journey map")
            return None
        step = journey.steps_by_name.get(step_name)
        if step is None:
            self.problem(fields["step"], f"{where}.step", f"journey {journey_name!r} has no step {step_name!r}")
            return None
        if "channel" in names and channel not in step.channels:
            self.problem(
                fields["channel"], f"{where}.channel", f"step {journey_name}/{step_name} has no channel {channel!r}"
            )
            return None
        device = names.get("device")
        if "device" in names:
            home = channel_of(device or "")
            known = sorted({d for c in step.channels if c in DEVICES for d in DEVICES[c][0]})
            if home is None or home not in step.channels or channel not in (None, home):
                where_device = f"step {journey_name}/{step_name}" + (f" on {channel}" if channel else "")
                self.problem(
                    fields["device"],
                    f"{where}.device",
                    f"{where_device} has no device {device!r}; known: {', '.join(known) or 'none'}",
                )
                return None
            channel = home
        return journey_name, step_name, channel, device, step.surveys

    def queue_target(
        self, kind: str, names: dict[str, str | None], fields: dict[str, yaml.Node], node: yaml.Node, where: str
    ) -> tuple[str, tuple[str, ...], tuple[str, ...]] | None:
        if "channel" not in names:
            wanted = "journey and step, or channel" if kind == "feedback_collapse" else "channel"
            self.problem(node, f"{where}.channel", f"missing; {kind} names its {wanted} (and maybe queue)")
            return None
        channel_name = names["channel"]
        channel = self.journey_map.contact_channels.get(channel_name or "")
        if channel is None:
            message = f"no contact channel {channel_name!r} in the journey map"
            self.problem(fields["channel"], f"{where}.channel", message)
            return None
        if "queue" not in names:
            return channel.name, channel.queues, channel.surveys
        queue = names["queue"]
        if queue not in channel.queues:
            self.problem(fields["queue"], f"{where}.queue", f"channel {channel.name!r} has no queue {queue!r}")
            return None
        return channel.name, (str(queue),), channel.surveys

    def surveys(
        self, kind: str, fields: dict[str, yaml.Node], surveys: tuple[str, ...], node: yaml.Node, where: str
    ) -> tuple[str, ...]:
        """The surveys a feedback_collapse lowers: the touchpoint's, or the one named."""
        if not surveys:
            self.problem(node, where, f"{kind}: this touchpoint has no surveys in the journey map")
            return ()
        if "survey" not in fields:
            return surveys
        survey = self.text(fields["survey"], f"{where}.survey")
        if survey not in surveys:
            self.problem(
                fields["survey"],
                f"{where}.survey",
                f"{survey!r} is not one of this touchpoint's surveys: {', '.join(surveys)}",
            )
            return ()
        return (str(survey),)


def incident_lines(incidents: tuple[Incident, ...] | list[Incident]) -> Iterator[dict[str, Any]]:
    """The ground truth of ``incidents``, one object per incident, touchpoint and metric."""
    for incident in incidents:
        yield from incident.ground_truth()
