"""Scenario files: incidents to inject into the generated traffic, and baseline tuning.

A scenario is a YAML file checked against the journey map; every problem is reported
at once with the file, line and field it concerns (:class:`ScenarioError`)::

    version: 1
    baseline:                        # optional: tune the normal traffic
      journeys:
        purchase:
          weight: 3                  # relative share of sessions (default 3 for purchase-like names, else 1)
          continuation:              # chance that a session on a step moves on to the next step
            landing: 0.7
            payment: 0.9
    incidents:
      - name: payment_gateway_down   # unique; names the incident in the ground truth (default: kind-N)
        kind: step_outage
        journey: purchase
        step: payment
        channel: app                 # optional: only this channel of the step
        start: 2h                    # offset from the run start (0, 90s, 30m, 2h, 1d) or RFC 3339 time
        duration: 30m
        continuation: 0.1            # optional parameters of the kind, see below

Kinds, what they target, their optional parameters (default) and the metrics they move:

===================  ==========================  ==========================  =====================================
kind                 target                      parameters                  metrics in the ground truth
===================  ==========================  ==========================  =====================================
step_outage          journey, step [, channel]   continuation (0.1),         step_conversion, errors
                                                 error_rate (0.3)
slow_page            journey, step [, channel]   factor (3): dwell x factor  dwell_seconds
error_burst          journey, step [, channel]   error_rate (0.25)           errors
understaffed         channel [, queue]           factor (3): agents / factor wait_seconds, abandonment_ratio
feedback_collapse    journey, step [, channel]   severity (0.5),             the touchpoint's surveys (csat, ...)
                     or channel [, queue]        survey (all of them)
===================  ==========================  ==========================  =====================================

``error_rate`` is the chance that a visit of the step hits an error; ``continuation``
replaces the step's chance of moving on; ``severity`` (0-1) lowers the satisfaction
behind every score given to the touchpoint. A channel without a queue means all its queues.

The ground truth (:meth:`Incident.ground_truth`) has one JSON object per incident,
touchpoint and metric: ``{"incident", "kind", "journey", "step"[, "channel"] or
"channel", "queue", "metric", "start", "end"}`` with start and end in epoch seconds,
clipped to the span of the run (incidents entirely outside it are left out).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import yaml

from frictionwatch.journeymap import JourneyMap, Problem, parse_duration

STEP_KINDS: Final = ("step_outage", "slow_page", "error_burst")
QUEUE_KINDS: Final = ("understaffed",)
INCIDENT_KINDS: Final = (*STEP_KINDS, *QUEUE_KINDS, "feedback_collapse")


@dataclass(frozen=True, slots=True)
class Parameter:
    """A numeric parameter of an incident kind, with its default and allowed range."""

    default: float
    low: float
    high: float


PARAMETERS: Final[dict[str, dict[str, Parameter]]] = {
    "step_outage": {"continuation": Parameter(0.1, 0.0, 1.0), "error_rate": Parameter(0.3, 0.0, 1.0)},
    "slow_page": {"factor": Parameter(3.0, 0.01, 100.0)},
    "error_burst": {"error_rate": Parameter(0.25, 0.0, 1.0)},
    "understaffed": {"factor": Parameter(3.0, 0.01, 100.0)},
    "feedback_collapse": {"severity": Parameter(0.5, 0.0, 1.0)},
}
METRICS: Final[dict[str, tuple[str, ...]]] = {
    "step_outage": ("step_conversion", "errors"),
    "slow_page": ("dwell_seconds",),
    "error_burst": ("errors",),
    "understaffed": ("wait_seconds", "abandonment_ratio"),
}
_TARGET_FIELDS: Final = ("journey", "step", "channel", "queue")
_COMMON_FIELDS: Final = ("name", "kind", "start", "duration")


@dataclass(frozen=True, slots=True)
class Incident:
    """One incident with its effect window in epoch seconds.

    Step incidents name ``journey`` and ``step`` (and maybe ``channel``); queue incidents
    name ``channel`` and the affected ``queues``. ``metrics`` are the metrics it moves.
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

    def active(self, t: float) -> bool:
        return self.start <= t < self.end

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

    def ground_truth(self) -> list[dict[str, Any]]:
        """One object per touchpoint and metric this incident affects."""
        places: list[dict[str, Any]]
        if self.journey is not None:
            place: dict[str, Any] = {"journey": self.journey, "step": self.step}
            if self.channel is not None:
                place["channel"] = self.channel
            places = [place]
        else:
            places = [{"channel": self.channel, "queue": queue} for queue in self.queues]
        return [
            {"incident": self.name, "kind": self.kind, **place, "metric": metric, "start": self.start, "end": self.end}
            for place in places
            for metric in self.metrics
        ]


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
    """Tuning of the normal traffic: journey weights and step continuation probabilities."""

    weights: tuple[tuple[str, float], ...] = ()
    continuation: tuple[tuple[str, str, float], ...] = ()

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
        fields = self.mapping(node, "baseline", ("journeys",))
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
        return Baseline(tuple(weights), tuple(continuation))

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
        extra = ("survey",) if kind == "feedback_collapse" else ()
        allowed = (*_COMMON_FIELDS, *_TARGET_FIELDS, *PARAMETERS[kind], *extra)
        for key, value_node in fields.items():
            if key not in allowed:
                expected = ", ".join(allowed)
                self.problem(value_node, f"{where}.{key}", f"not a field of {kind}; expected one of: {expected}")
        name = self.text(fields["name"], f"{where}.name") if "name" in fields else f"{kind}-{index + 1}"
        offset, at = self.start(fields.get("start"), node, f"{where}.start")
        duration = self.duration(fields.get("duration"), node, f"{where}.duration")
        target = self.target(kind, fields, node, where)
        parameters = tuple(
            (key, value)
            for key, spec in PARAMETERS[kind].items()
            if key in fields and (value := self.number(fields[key], f"{where}.{key}", spec.low, spec.high)) is not None
        )
        if name is None or (offset is None and at is None) or duration is None or target is None:
            return None
        journey, step, channel, queues, metrics = target
        incident = Incident(name, kind, 0.0, duration, metrics, journey, step, channel, queues, parameters)
        return IncidentSpec(incident, offset, at)

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

    def target(
        self, kind: str, fields: dict[str, yaml.Node], node: yaml.Node, where: str
    ) -> tuple[str | None, str | None, str | None, tuple[str, ...], tuple[str, ...]] | None:
        """(journey, step, channel, queues, metrics) of the incident, checked against the map."""
        names: dict[str, str | None] = {
            key: self.text(fields[key], f"{where}.{key}") for key in _TARGET_FIELDS if key in fields
        }
        on_step = kind in STEP_KINDS or (kind == "feedback_collapse" and ("journey" in names or "step" in names))
        if on_step:
            if "queue" in names:
                self.problem(fields["queue"], f"{where}.queue", f"{kind} on a journey step takes no queue")
                return None
            found = self.step_target(names, fields, node, where)
            if found is None:
                return None
            journey, step, channel, surveys = found
            metrics = METRICS.get(kind) or self.surveys(kind, fields, surveys, node, where)
            return (journey, step, channel, (), metrics) if metrics else None
        found_queues = self.queue_target(kind, names, fields, node, where)
        if found_queues is None:
            return None
        channel, queues, surveys = found_queues
        metrics = METRICS.get(kind) or self.surveys(kind, fields, surveys, node, where)
        return (None, None, channel, queues, metrics) if metrics else None

    def step_target(
        self, names: dict[str, str | None], fields: dict[str, yaml.Node], node: yaml.Node, where: str
    ) -> tuple[str, str, str | None, tuple[str, ...]] | None:
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
        return journey_name, step_name, channel, step.surveys

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
