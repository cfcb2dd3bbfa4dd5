"""The journey map: journeys, their ordered steps, contact queues and detector tuning.

Everything frictionwatch labels a metric with comes from this file, so the number of
Prometheus series is bounded by it. Events naming a journey, step, channel or queue
that is not here are rejected, never invented as new labels.

The file is YAML (see docs/journey-map.md). :func:`load_journey_map` reports every
problem at once, each with the file, line and field it concerns:

>>> import textwrap, tempfile, pathlib
>>> text = textwrap.dedent('''
...     version: 1
...     journeys:
...       purchase:
...         steps:
...           - {name: cart, stage: purchase, channels: [web]}
...           - {name: paid, stage: shopping, channels: [web], goal: true}
... ''')
>>> path = pathlib.Path(tempfile.mkdtemp()) / "map.yml"
>>> _ = path.write_text(text)
>>> try:
...     load_journey_map(path)
... except JourneyMapError as error:
...     print(error.problems[0].field, error.problems[0].line)
journeys.purchase.steps[1].stage 7
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from frictionwatch.detectors.budget import FalseAlarmBudget

STAGES = ("awareness", "consideration", "purchase", "retention", "advocacy")
SURVEYS = ("csat", "nps", "ces")
DIRECTIONS = ("up", "down", "both", "auto")
DETECTOR_KINDS = ("auto", "sequential", "window", "ratio", "mean")
DEFAULT_SESSION_TIMEOUT = 30 * 60.0
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a journey: a touchpoint when combined with one of its channels."""

    name: str
    index: int
    stage: str
    channels: tuple[str, ...]
    goal: bool = False
    surveys: tuple[str, ...] = ()
    progress_timeout: float | None = None


@dataclass(frozen=True, slots=True)
class Journey:
    """An ordered funnel of steps, ended by inactivity after ``session_timeout`` seconds."""

    name: str
    steps: tuple[Step, ...]
    session_timeout: float = DEFAULT_SESSION_TIMEOUT
    description: str = ""
    steps_by_name: Mapping[str, Step] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps_by_name", {step.name: step for step in self.steps})

    @property
    def goal_steps(self) -> tuple[Step, ...]:
        return tuple(step for step in self.steps if step.goal)


@dataclass(frozen=True, slots=True)
class ContactChannel:
    """A contact-centre channel (phone, chat, email, callback, ...) and its queues."""

    name: str
    queues: tuple[str, ...]
    surveys: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DetectorSettings:
    """Tuning of the anomaly detector behind one touchpoint metric (see docs/detectors.md).

    ``None`` means "inherit": overrides only carry what they change.
    """

    enabled: bool | None = None
    kind: str | None = None
    sensitivity: float | None = None
    min_volume: int | None = None
    warmup: int | None = None
    direction: str | None = None
    consecutive: int | None = None
    params: Mapping[str, Any] | None = None  # a river detector's parameters (kind: river.<Name>)
    false_alarms: FalseAlarmBudget | None = None  # sequential detectors: e.g. 1 per 30d per series


@dataclass(frozen=True, slots=True)
class DetectorOverride:
    """Detector settings applied where every given ``match`` label equals the touchpoint's."""

    match: Mapping[str, str]
    settings: DetectorSettings
    line: int = 0


@dataclass(frozen=True, slots=True)
class JourneyMap:
    """The validated journey map. Build it with :func:`load_journey_map`."""

    journeys: Mapping[str, Journey]
    contact_channels: Mapping[str, ContactChannel]
    detector_defaults: DetectorSettings = DetectorSettings()
    detector_overrides: tuple[DetectorOverride, ...] = ()
    source: str = "<memory>"
    #: false alarms for the whole map, split evenly over its sequential series (their defaults' budget)
    map_false_alarms: FalseAlarmBudget | None = None

    def step(self, journey: str, step: str) -> Step | None:
        """The step named ``step`` of ``journey``, or None when the map has no such step."""
        found = self.journeys.get(journey)
        return None if found is None else found.steps_by_name.get(step)

    def has_queue(self, channel: str, queue: str) -> bool:
        found = self.contact_channels.get(channel)
        return found is not None and queue in found.queues

    def touchpoints(self) -> Iterator[tuple[str, Step, str]]:
        """Every (journey, step, channel) touchpoint of the clickstream, in map order."""
        for journey in self.journeys.values():
            for step in journey.steps:
                for channel in step.channels:
                    yield journey.name, step, channel

    def queues(self) -> Iterator[tuple[str, str]]:
        """Every (channel, queue) of the contact centre, in map order."""
        for channel in self.contact_channels.values():
            for queue in channel.queues:
                yield channel.name, queue


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a journey map file."""

    path: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.field}: {self.message}"


class JourneyMapError(ValueError):
    """The journey map file is invalid; ``problems`` lists every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(problem) for problem in problems))


def example_path() -> Path:
    """The example journey map shipped with the package (e-commerce and support)."""
    return Path(str(resources.files("frictionwatch") / "examples" / "journey-map.yml"))


def load_journey_map(path: str | Path | None = None) -> JourneyMap:
    """Read and validate a journey map file; the shipped example when ``path`` is None.

    Raises :class:`JourneyMapError` listing every problem with its line and field.
    """
    source = Path(path) if path is not None else example_path()
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as error:
        raise JourneyMapError([Problem(str(source), 0, "<file>", f"cannot read: {error.strerror}")]) from None
    return parse_journey_map(text, str(source))


def parse_journey_map(text: str, source: str = "<memory>") -> JourneyMap:
    """Validate journey map YAML ``text``; ``source`` names it in error messages."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        raise JourneyMapError([Problem(source, line, "<yaml>", f"not valid YAML: {error}")]) from None
    parser = _Parser(source)
    journey_map = parser.journey_map(root)
    if parser.problems:
        raise JourneyMapError(parser.problems)
    assert journey_map is not None
    return journey_map


class _Parser:
    """Walks the YAML node tree (which keeps line numbers) and collects problems."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[Problem] = []

    def problem(self, node: yaml.Node | None, path: str, message: str) -> None:
        line = node.start_mark.line + 1 if node is not None else 0
        self.problems.append(Problem(self.source, line, path, message))

    # -- node helpers ---------------------------------------------------------------

    def mapping(self, node: yaml.Node | None, path: str, allowed: tuple[str, ...]) -> dict[str, yaml.Node]:
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, path, "expected a mapping (key: value lines)")
            return {}
        result: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if allowed and key not in allowed:
                self.problem(key_node, f"{path}.{key}", f"unknown field; expected one of: {', '.join(allowed)}")
            elif key in result:
                self.problem(key_node, f"{path}.{key}", "given twice")
            else:
                result[key] = value_node
        return result

    def sequence(self, node: yaml.Node, path: str) -> list[yaml.Node]:
        if not isinstance(node, yaml.SequenceNode):
            self.problem(node, path, "expected a list")
            return []
        return list(node.value)

    def scalar(self, node: yaml.Node, path: str) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            self.problem(node, path, "expected a single value")
            return None
        return yaml.safe_load(yaml.serialize(node))

    def name(self, node: yaml.Node, path: str) -> str | None:
        value = self.scalar(node, path) if isinstance(node, yaml.ScalarNode) else None
        if not isinstance(node, yaml.ScalarNode):
            self.problem(node, path, "expected a name")
            return None
        if not isinstance(value, str) or not NAME_PATTERN.match(value):
            self.problem(node, path, f"{value!r} is not a valid name (lower case letters, digits, _; up to 63)")
            return None
        return value

    def names(self, node: yaml.Node, path: str, choices: tuple[str, ...] = ()) -> tuple[str, ...]:
        result: list[str] = []
        for index, item in enumerate(self.sequence(node, path)):
            value = self.name(item, f"{path}[{index}]")
            if value is None:
                continue
            if choices and value not in choices:
                self.problem(item, f"{path}[{index}]", f"{value!r} is not one of: {', '.join(choices)}")
            elif value in result:
                self.problem(item, f"{path}[{index}]", f"{value!r} is listed twice")
            else:
                result.append(value)
        return tuple(result)

    def boolean(self, node: yaml.Node, path: str) -> bool | None:
        value = self.scalar(node, path)
        if not isinstance(value, bool):
            self.problem(node, path, f"expected true or false, got {value!r}")
            return None
        return value

    def duration(self, node: yaml.Node, path: str) -> float | None:
        value = self.scalar(node, path)
        try:
            seconds = parse_duration(value)
        except ValueError as error:
            self.problem(node, path, str(error))
            return None
        return seconds

    def number(self, node: yaml.Node, path: str, *, integer: bool, minimum: float) -> float | None:
        value = self.scalar(node, path)
        wanted = int if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, wanted):
            self.problem(node, path, f"expected {'a whole number' if integer else 'a number'}, got {value!r}")
            return None
        if value < minimum:
            self.problem(node, path, f"must be at least {minimum:g}, got {value!r}")
            return None
        return float(value)

    # -- sections -------------------------------------------------------------------

    def journey_map(self, root: yaml.Node | None) -> JourneyMap | None:
        top = self.mapping(root, "<top>", ("version", "journeys", "contact_centre", "detectors"))
        if "version" not in top:
            self.problem(root, "version", "missing; write `version: 1` at the top")
        elif self.scalar(top["version"], "version") != 1:
            self.problem(top["version"], "version", "only version 1 is supported")
        journeys: dict[str, Journey] = {}
        if "journeys" not in top:
            self.problem(root, "journeys", "missing; a map needs at least one journey")
        else:
            for key_node, node in self.mapping_items(top["journeys"], "journeys"):
                name = self.name(key_node, f"journeys.{key_node.value}")
                journey = self.journey(node, f"journeys.{key_node.value}", name or "")
                if name and journey:
                    journeys[name] = journey
        channels: dict[str, ContactChannel] = {}
        if "contact_centre" in top:
            for key_node, node in self.mapping_items(top["contact_centre"], "contact_centre"):
                name = self.name(key_node, f"contact_centre.{key_node.value}")
                channel = self.contact_channel(node, f"contact_centre.{key_node.value}", name or "")
                if name and channel:
                    channels[name] = channel
        defaults: DetectorSettings = DetectorSettings()
        overrides: tuple[DetectorOverride, ...] = ()
        map_budget: FalseAlarmBudget | None = None
        if "detectors" in top:
            defaults, overrides, map_budget = self.detectors(top["detectors"], journeys, channels)
        if self.problems:
            return None
        journey_map = JourneyMap(journeys, channels, defaults, overrides, self.source)
        return journey_map if map_budget is None else split_map_budget(journey_map, map_budget)

    def mapping_items(self, node: yaml.Node, path: str) -> list[tuple[yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode) or not node.value:
            self.problem(node, path, "expected a non-empty mapping of names")
            return []
        return list(node.value)

    def journey(self, node: yaml.Node, path: str, name: str) -> Journey | None:
        fields = self.mapping(node, path, ("description", "session_timeout", "steps"))
        timeout = DEFAULT_SESSION_TIMEOUT
        if "session_timeout" in fields:
            timeout = self.duration(fields["session_timeout"], f"{path}.session_timeout") or timeout
        description = str(self.scalar(fields["description"], f"{path}.description")) if "description" in fields else ""
        if "steps" not in fields:
            self.problem(node, f"{path}.steps", "missing; a journey needs its ordered steps")
            return None
        steps: list[Step] = []
        for index, step_node in enumerate(self.sequence(fields["steps"], f"{path}.steps")):
            step = self.step(step_node, f"{path}.steps[{index}]", len(steps))
            if step is None:
                continue
            if step.name in {existing.name for existing in steps}:
                self.problem(step_node, f"{path}.steps[{index}].name", f"step {step.name!r} is listed twice")
                continue
            steps.append(step)
        if steps and not any(step.goal for step in steps):
            self.problem(fields["steps"], f"{path}.steps", "no step has `goal: true`; mark the conversion step")
        return Journey(name, tuple(steps), timeout, description) if steps else None

    def step(self, node: yaml.Node, path: str, index: int) -> Step | None:
        fields = self.mapping(node, path, ("name", "stage", "channels", "goal", "surveys", "progress_timeout"))
        for required in ("name", "stage", "channels"):
            if required not in fields:
                self.problem(node, f"{path}.{required}", "missing")
        if any(required not in fields for required in ("name", "stage", "channels")):
            return None
        name = self.name(fields["name"], f"{path}.name")
        stage = self.scalar(fields["stage"], f"{path}.stage")
        if stage not in STAGES:
            self.problem(fields["stage"], f"{path}.stage", f"{stage!r} is not one of: {', '.join(STAGES)}")
        channels = self.names(fields["channels"], f"{path}.channels")
        if not channels:
            self.problem(fields["channels"], f"{path}.channels", "a step needs at least one channel")
        if "all" in channels:  # detectors.bank.ALL_CHANNELS: the step's series pooled over its channels
            self.problem(
                fields["channels"], f"{path}.channels", "'all' names the step on all its channels; pick another name"
            )
        goal = self.boolean(fields["goal"], f"{path}.goal") if "goal" in fields else False
        surveys = self.names(fields["surveys"], f"{path}.surveys", SURVEYS) if "surveys" in fields else ()
        progress = None
        if "progress_timeout" in fields:
            progress = self.duration(fields["progress_timeout"], f"{path}.progress_timeout")
        if name is None or stage not in STAGES or not channels:
            return None
        return Step(name, index, str(stage), channels, bool(goal), surveys, progress)

    def contact_channel(self, node: yaml.Node, path: str, name: str) -> ContactChannel | None:
        fields = self.mapping(node, path, ("queues", "surveys"))
        if "queues" not in fields:
            self.problem(node, f"{path}.queues", "missing; list the channel's queues")
            return None
        queues = self.names(fields["queues"], f"{path}.queues")
        surveys = self.names(fields["surveys"], f"{path}.surveys", SURVEYS) if "surveys" in fields else ()
        return ContactChannel(name, queues, surveys) if queues else None

    def detectors(
        self, node: yaml.Node, journeys: Mapping[str, Journey], channels: Mapping[str, ContactChannel]
    ) -> tuple[DetectorSettings, tuple[DetectorOverride, ...], FalseAlarmBudget | None]:
        fields = self.mapping(node, "detectors", ("map_false_alarms", "defaults", "overrides"))
        defaults = self.detector_settings(fields["defaults"], "detectors.defaults") if "defaults" in fields else None
        map_budget = None
        if "map_false_alarms" in fields:
            map_budget = self.false_alarm_budget(fields["map_false_alarms"], "detectors.map_false_alarms")
            if defaults is not None and defaults.false_alarms is not None:
                self.problem(
                    fields["map_false_alarms"],
                    "detectors.map_false_alarms",
                    "give the budget for the whole map or detectors.defaults.false_alarms per series, not both",
                )
        if defaults is not None:
            self.river_outcomes_need_a_ratio(defaults, {}, fields["defaults"], "detectors.defaults")
        overrides: list[DetectorOverride] = []
        if "overrides" in fields:
            for index, item in enumerate(self.sequence(fields["overrides"], "detectors.overrides")):
                path = f"detectors.overrides[{index}]"
                item_fields = self.mapping(item, path, ("match", *DetectorSettings.__slots__))
                if "match" not in item_fields:
                    self.problem(item, f"{path}.match", "missing; say which touchpoints this applies to")
                    continue
                match = self.override_match(item_fields.pop("match"), f"{path}.match", journeys, channels)
                settings = self.detector_settings_from(item_fields, path)
                if match is not None and settings is not None:
                    self.river_outcomes_need_a_ratio(settings, match, item, path)
                    overrides.append(DetectorOverride(match, settings, item.start_mark.line + 1))
        return defaults or DetectorSettings(), tuple(overrides), map_budget

    def override_match(
        self, node: yaml.Node, path: str, journeys: Mapping[str, Journey], channels: Mapping[str, ContactChannel]
    ) -> dict[str, str] | None:
        fields = self.mapping(node, path, ("journey", "step", "channel", "queue", "metric"))
        match = {key: str(self.scalar(value, f"{path}.{key}")) for key, value in fields.items()}
        journey = match.get("journey")
        if journey is not None and journey not in journeys:
            self.problem(fields["journey"], f"{path}.journey", f"no journey {journey!r} in this map")
            return None
        if "step" in match:
            candidates = [journeys[journey]] if journey else list(journeys.values())
            if not any(match["step"] in candidate.steps_by_name for candidate in candidates):
                self.problem(fields["step"], f"{path}.step", f"no step {match['step']!r} in this map")
                return None
        if "queue" in match and not any(match["queue"] in channel.queues for channel in channels.values()):
            self.problem(fields["queue"], f"{path}.queue", f"no queue {match['queue']!r} in this map")
            return None
        return match

    def detector_settings(self, node: yaml.Node, path: str) -> DetectorSettings | None:
        return self.detector_settings_from(self.mapping(node, path, DetectorSettings.__slots__), path)

    def detector_settings_from(self, fields: dict[str, yaml.Node], path: str) -> DetectorSettings | None:
        values: dict[str, Any] = {}
        for key, node in fields.items():
            where = f"{path}.{key}"
            if key == "enabled":
                values[key] = self.boolean(node, where)
            elif key == "kind":
                kind = self.scalar(node, where)
                known = kind in DETECTOR_KINDS or (isinstance(kind, str) and kind.startswith("river."))
                if not known:
                    self.problem(node, where, f"{kind!r} is not one of: {', '.join(DETECTOR_KINDS)}, river.<Name>")
                values[key] = kind if known else None
            elif key == "params":
                if not isinstance(node, yaml.MappingNode):
                    self.problem(node, where, "expected a mapping of the river detector's parameters")
                values[key] = yaml.safe_load(yaml.serialize(node)) if isinstance(node, yaml.MappingNode) else None
            elif key == "direction":
                value = self.scalar(node, where)
                if value not in DIRECTIONS:
                    self.problem(node, where, f"{value!r} is not one of: {', '.join(DIRECTIONS)}")
                values[key] = value if value in DIRECTIONS else None
            elif key == "sensitivity":
                values[key] = self.number(node, where, integer=False, minimum=0.0)
            elif key == "false_alarms":
                values[key] = self.false_alarm_budget(node, where)
            else:
                minimum = 1.0 if key == "consecutive" else 0.0
                number = self.number(node, where, integer=True, minimum=minimum)
                values[key] = None if number is None else int(number)
        if "params" in fields or str(values.get("kind")).startswith("river."):
            self.river_detector(fields, values, path)
        return DetectorSettings(**values)

    def false_alarm_budget(self, node: yaml.Node, path: str) -> FalseAlarmBudget | None:
        try:
            return FalseAlarmBudget.parse(str(self.scalar(node, path)))
        except ValueError as error:
            self.problem(node, path, str(error))
            return None

    def river_detector(self, fields: dict[str, yaml.Node], values: dict[str, Any], path: str) -> None:
        """Build a river detector once, so an unknown class or parameter is reported at load time."""
        kind = values.get("kind")
        if not (isinstance(kind, str) and kind.startswith("river.")):
            if "kind" not in fields or kind is not None:  # (an unknown kind is reported already)
                self.problem(
                    fields["params"],
                    f"{path}.params",
                    "params belong to a river detector: give its kind: river.<Name> here",
                )
            values["params"] = None
            return
        from frictionwatch.detectors.river_adapter import RiverConfigError, RiverDetector

        try:
            RiverDetector(kind, values.get("params") or {})
        except RiverConfigError as error:
            if error.field and "params" in fields:
                node = fields["params"]
                for part in error.field.split("."):  # the line of the parameter at fault, as deep as it goes
                    found = [value for key, value in getattr(node, "value", ()) if getattr(key, "value", None) == part]
                    node = found[0] if found and isinstance(node, yaml.MappingNode) else node
                self.problem(node, f"{path}.params.{error.field}", error.message)
            else:
                self.problem(fields["kind"], f"{path}.kind", error.message)
            values["kind"] = values["params"] = None

    def river_outcomes_need_a_ratio(
        self, settings: DetectorSettings, match: Mapping[str, str], node: yaml.Node, path: str
    ) -> None:
        """River's binary drift detectors judge per-session outcomes, which only ratio metrics have."""
        if not (settings.kind or "").startswith("river."):
            return
        from frictionwatch.detectors.river_adapter import RiverDetector
        from frictionwatch.streams.series import MONITORED

        if RiverDetector(settings.kind or "", settings.params).family != "outcomes":
            return
        ratios = [metric.name for metric in MONITORED if metric.kind == "ratio"]
        if match.get("metric") not in ratios:
            self.problem(
                next((value for key, value in node.value if key.value == "kind"), node),
                f"{path}.kind",
                f"{settings.kind} judges per-session outcomes of a ratio: match a ratio metric ({', '.join(ratios)})",
            )


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: object) -> float:
    """Seconds from a number of seconds or a string such as ``"90s"``, ``"30m"``, ``"1.5h"``.

    >>> parse_duration("30m"), parse_duration(45), parse_duration("250ms")
    (1800.0, 45.0, 0.25)
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as 30s, 5m or 1h, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        found = _DURATION.match(str(value)) if isinstance(value, str) else None
        if found is None:
            raise ValueError(f"expected a duration such as 30s, 5m or 1h, got {value!r}")
        seconds = float(found.group(1)) * _UNIT_SECONDS[found.group(2) or "s"]
    if not seconds > 0:
        raise ValueError(f"a duration must be positive, got {value!r}")
    return seconds


class JourneyMapWatcher:
    """Notices changes to a journey map file, for reloading it without a restart.

    :meth:`poll` returns the newly loaded map when the file's modification time or size
    changed since the last load (or when a reload was :meth:`request`-ed, e.g. on SIGHUP),
    None when nothing changed; it raises :class:`JourneyMapError` for an invalid new file,
    and the caller keeps the map it has.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.seen = self._stamp()
        self.requested = False

    def _stamp(self) -> tuple[float, int] | None:
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return (stat.st_mtime, stat.st_size)

    def request(self) -> None:
        """Ask for a reload at the next poll, changed or not (safe to call from a signal handler)."""
        self.requested = True

    def poll(self) -> JourneyMap | None:
        stamp = self._stamp()
        if stamp == self.seen and not self.requested:
            return None
        self.seen, self.requested = stamp, False
        return load_journey_map(self.path)


def split_map_budget(journey_map: JourneyMap, budget: FalseAlarmBudget) -> JourneyMap:
    """The map with ``budget`` (false alarms for the whole map) split evenly over its sequential
    series: each gets ``budget.alarms`` per ``budget`` period times their number, as its default
    budget. Overrides that give a series its own ``false_alarms`` or ``sensitivity`` still win."""
    from frictionwatch.detectors.explain import sequential_series

    series = sequential_series(replace(journey_map, map_false_alarms=budget))
    defaults = replace(journey_map.detector_defaults, false_alarms=budget.split(series))
    return replace(journey_map, detector_defaults=defaults, map_false_alarms=budget)
