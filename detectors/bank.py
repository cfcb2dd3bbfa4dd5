"""One detector per (touchpoint, metric), configured from the journey map (no I/O).

Product teams tune detectors in the journey map's ``detectors:`` section: defaults, then
overrides matched on journey, step, channel, queue and metric (later overrides win).
:meth:`DetectorBank.reconfigure` applies a changed map without losing what the detectors
have learned: each detector is rebuilt with its new settings and given back its state.

>>> from frictionwatch.journeymap import load_journey_map
>>> bank = DetectorBank(load_journey_map())
>>> bank.settings_for(("support", "article", "web", "", ""), "early_flow_ratio").sensitivity
5.0
>>> bank.settings_for(("purchase", "payment", "web", "", ""), "flow_ratio").kind
'auto'
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, fields, replace
from typing import Any, cast

from frictionwatch.detectors.base import Detector, Direction, Observation, Verdict
from frictionwatch.detectors.budget import FalseAlarmBudget
from frictionwatch.detectors.handover import FirstDayHandover
from frictionwatch.detectors.sequential import Model, SequentialDetector
from frictionwatch.detectors.volume import MeanDetector, RatioDetector, Season
from frictionwatch.journeymap import DetectorSettings, JourneyMap

#: (journey, step, channel, queue, survey): the touchpoint, as the labels it is exported with
SeriesPlace = tuple[str, str, str, str, str]
DEFAULTS = DetectorSettings(
    enabled=True,
    kind="auto",
    false_alarms=FalseAlarmBudget.parse("1 per 180d"),
    min_volume=10,
    warmup=30,
    direction="auto",
    consecutive=2,
)
FLOW_METRICS = ("early_flow_ratio", "flow_ratio", "step_conversion")
STALL_METRICS = ("early_flow_ratio", "flow_ratio")  # judged as deadlines pass, with or without new clicks
VISITS_METRIC = "errors_per_visit"  # its volume is the visits of the window
SILENT_VISITS = 10.0  # visits a journey's window is expected to have before none at all means missing data
VISITS_RATE = 0.05  # the expected visits follow about the last 20 windows
#: the checkpoint key's metric part for a journey's expected visits a window (no detector's metric,
#: so a bank that doesn't know it passes over it)
EXPECTED_VISITS = "@expected_visits"
LATE_DATA_STEPS = 3  # flow falling at this many steps of a journey at once (and half of them) is late data
WINDOW_SENSITIVITY = 4.0  # window detectors' threshold (standard deviations) when the map gives none
ALL_CHANNELS = "all"  # the channel label of a step's series pooled over its channels
#: metric name -> (window detector kind, bad direction, sequential model); see streams/series.py
MetricKinds = dict[str, tuple[str, Direction, Model]]
MATCH_FIELDS = ("journey", "step", "channel", "queue")


@dataclass(frozen=True, slots=True)
class Finding:
    """A detector's verdict on one window of one series."""

    place: SeriesPlace
    metric: str
    verdict: Verdict
    threshold: float


def resolve(journey_map: JourneyMap, place: SeriesPlace, metric: str) -> DetectorSettings:
    """The settings of one series: built-in defaults, the map's defaults, then matching overrides.

    A sequential detector has one threshold: its ``false_alarms`` budget, or ``sensitivity`` as
    an advanced override; where both reach a ``kind: sequential`` series, the one given later
    (the more specific) wins. ``kind: auto`` uses both: ``sensitivity`` on the series' first
    day (window detectors), ``false_alarms`` after it.
    """
    labels = dict(zip(("journey", "step", "channel", "queue", "survey"), place, strict=True), metric=metric)
    settings = _merge(DEFAULTS, journey_map.detector_defaults)
    latest = _threshold_given(journey_map.detector_defaults)
    for override in journey_map.detector_overrides:
        if all(labels.get(key) == value for key, value in override.match.items()):
            settings = _merge(settings, override.settings)
            latest = _threshold_given(override.settings) or latest
    if settings.kind == "sequential" and latest is not None:
        settings = replace(settings, **{"sensitivity" if latest == "false_alarms" else "false_alarms": None})
    return settings


def _threshold_given(changes: DetectorSettings) -> str | None:
    """Which of the two thresholds ``changes`` gives alone, if one."""
    if changes.false_alarms is not None and changes.sensitivity is None:
        return "false_alarms"
    if changes.sensitivity is not None and changes.false_alarms is None:
        return "sensitivity"
    return None


def _merge(base: DetectorSettings, changes: DetectorSettings) -> DetectorSettings:
    given = {
        spec.name: getattr(changes, spec.name) for spec in fields(changes) if getattr(changes, spec.name) is not None
    }
    if changes.kind is not None and changes.params is None:
        given["params"] = None  # a river detector's params go with its kind, never to another one
    return replace(base, **given)


def build(settings: DetectorSettings, kind: str, direction: Direction, season: Season, model: Model) -> Detector:
    """A detector for a metric of window ``kind`` (ratio or mean), bad ``direction`` and ``model``.

    ``kind: window`` is the window detector of the metric's kind (``ratio`` or ``mean``);
    ``sequential`` a :class:`SequentialDetector`; ``auto`` the window detector on the series'
    first day and the sequential one from then on (:class:`FirstDayHandover`); ``river.<Name>``
    a river detector.
    """
    chosen = settings.kind or "auto"
    bad = direction if settings.direction in (None, "auto") else cast(Direction, settings.direction)
    if chosen in ("sequential", "auto"):
        budget: FalseAlarmBudget | float = settings.false_alarms or settings.sensitivity or WINDOW_SENSITIVITY
        sequential = SequentialDetector(model, direction=bad, false_alarms=budget, warmup=settings.warmup or 0)
        if chosen == "sequential":
            return sequential
        window = build(replace(settings, kind="window"), kind, direction, season, model)
        return FirstDayHandover(window, sequential)
    if chosen == "window":
        chosen = kind
    options: dict[str, Any] = {
        "direction": bad,
        "threshold": settings.sensitivity or WINDOW_SENSITIVITY,
        "min_volume": settings.min_volume,
        "warmup": settings.warmup,
        "consecutive": settings.consecutive,
        "season": season,
    }
    if chosen.startswith("river."):
        from frictionwatch.detectors.river_adapter import RiverDetector

        river_options = {name: options[name] for name in ("direction", "min_volume", "warmup", "consecutive")}
        detector = RiverDetector(chosen, settings.params, **river_options)
        if detector.family == "outcomes" and kind != "ratio":
            raise ValueError(f"{chosen} judges per-session outcomes: only ratio metrics have them")
        return detector
    if chosen == "ratio":
        return RatioDetector(**options)
    if chosen == "mean":
        return MeanDetector(**options)
    raise ValueError(f"unknown detector kind {chosen!r}; use auto, sequential, window, ratio, mean or river.<Name>")


class DetectorBank:
    """The detectors of every monitored series a worker reduces, created when first seen.

    Args:
        journey_map: where the settings come from.
        metric_kinds: metric name -> (window kind, default bad direction, model); see streams/series.py.
        season: the seasonal profile every detector learns ("daily" by default).
    """

    def __init__(
        self,
        journey_map: JourneyMap,
        metric_kinds: MetricKinds | None = None,
        season: Season = "daily",
    ) -> None:
        if metric_kinds is None:
            from frictionwatch.streams.series import MONITORED

            metric_kinds = {metric.name: (metric.kind, metric.direction, metric.model) for metric in MONITORED}
        self.journey_map = journey_map
        self.metric_kinds = metric_kinds
        self.season = season
        self.detectors: dict[tuple[SeriesPlace, str], Detector | None] = {}
        self.settings: dict[tuple[SeriesPlace, str], DetectorSettings] = {}
        self.expected_visits: dict[str, float] = {}  # per journey, visits a window (checkpointed with it)

    def settings_for(self, place: SeriesPlace, metric: str) -> DetectorSettings:
        key = (place, metric)
        settings = self.settings.get(key)
        if settings is None:
            settings = self.settings[key] = resolve(self.journey_map, place, metric)
        return settings

    def _detector(self, place: SeriesPlace, metric: str) -> Detector | None:
        key = (place, metric)
        if key not in self.detectors:
            settings = self.settings_for(place, metric)
            kind, direction, model = self.metric_kinds[metric]
            self.detectors[key] = build(settings, kind, direction, self.season, model) if settings.enabled else None
        return self.detectors[key]

    def observe(self, items: Iterable[tuple[SeriesPlace, str, Observation]]) -> list[Finding]:
        """Feed one final window's observations; the verdicts of the enabled detectors."""
        findings = []
        items = list(items)
        silent = self._silent_journeys(items)
        items += self._pooled(items)
        for place, metric, observation in items:
            detector = self._detector(place, metric)
            if detector is not None:
                threshold = getattr(detector, "threshold", None)  # a river scorer's is in its own units
                if threshold is None:
                    threshold = self.settings_for(place, metric).sensitivity or WINDOW_SENSITIVITY
                if place[0] in silent and metric in STALL_METRICS:
                    verdict = Verdict.quiet(observation, "no clicks arrived for the journey: late or missing data")
                else:
                    verdict = detector.update(observation)
                findings.append(Finding(place, metric, verdict, threshold))
        return self._late_data_is_not_friction(findings)

    def _pooled(self, items: list[tuple[SeriesPlace, str, Observation]]) -> list[tuple[SeriesPlace, str, Observation]]:
        """A step's click metrics pooled over its channels, as the touchpoint (journey, step, ``all``).

        An outage of a step on every channel shows in each channel's series, each holding a share
        of the step's visits and each spending its own share of the false-alarm budget; pooled,
        the evidence adds up in one series (a step with 2 sessions a minute on web and 1 on the
        app is judged on 3). A one-channel incident is still judged by its channel's series.
        Ratios and per-visit means pool exactly: sum of value x volume over sum of volume.
        Steps with one channel are not pooled (the pooled series would be the same series).
        """
        sums: dict[tuple[str, str, str], list[float]] = {}
        for place, metric, observation in items:
            journey, step, channel, queue, survey = place
            if not step or queue or survey or channel == ALL_CHANNELS or metric not in self.metric_kinds:
                continue
            if observation.volume is None or not observation.volume > 0 or not math.isfinite(observation.value):
                continue
            if len(self._channels(journey, step)) < 2:
                continue
            total = sums.setdefault((journey, step, metric), [0.0, 0.0, observation.ts])
            total[0] += observation.value * observation.volume
            total[1] += observation.volume
            total[2] = max(total[2], observation.ts)
        return [
            ((journey, step, ALL_CHANNELS, "", ""), metric, Observation(ts, amount / volume, volume))
            for (journey, step, metric), (amount, volume, ts) in sums.items()
        ]

    def _channels(self, journey: str, step: str) -> tuple[str, ...]:
        known = self.journey_map.journeys.get(journey)
        found = known.steps_by_name.get(step) if known is not None else None
        return found.channels if found is not None else ()

    def _silent_journeys(self, items: list[tuple[SeriesPlace, str, Observation]]) -> set[str]:
        """Journeys whose clicks stopped arriving in this window although dozens were due.

        When a collector holds a batch back, no visit of the journey reaches the worker for a
        while, yet the flow deadlines of the sessions already under way keep passing: every one
        of them looks stuck. A broken step still has visits (the broken page is visited), so a
        window without any visit where ``SILENT_VISITS`` were expected is missing data: its flow
        verdicts are not fed to the detectors, and say why.
        """
        visits: dict[str, float] = {}  # per journey with flow or visits in this window
        for place, metric, observation in items:
            if place[0] and metric in (*STALL_METRICS, VISITS_METRIC):
                seen = (observation.volume or 0.0) if metric == VISITS_METRIC else 0.0
                visits[place[0]] = visits.get(place[0], 0.0) + seen
        silent = set()
        for journey, seen in visits.items():
            expected = self.expected_visits.get(journey, 0.0)
            if seen == 0.0 and expected >= SILENT_VISITS:
                silent.add(journey)
            else:
                self.expected_visits[journey] = expected + VISITS_RATE * (seen - expected)
        return silent

    def _late_data_is_not_friction(self, findings: list[Finding]) -> list[Finding]:
        """Flow falling at most steps of a journey in the same window is late or missing data.

        A broken step stops the flow at that step; sessions whose next clicks arrive late (a
        collector's batch held back for minutes) stop it at every step at once. Such windows
        are not judged: their flow verdicts say why instead of paging anyone.
        """
        falling: dict[str, set[str]] = {}
        for finding in findings:
            if finding.verdict.anomaly and finding.metric in FLOW_METRICS:
                falling.setdefault(finding.place[0], set()).add(finding.place[1])
        late = set()
        for journey, steps in falling.items():
            known = self.journey_map.journeys.get(journey)
            if known is not None and len(steps) >= max(LATE_DATA_STEPS, math.ceil(len(known.steps) / 2)):
                late.add(journey)
        if not late:
            return findings
        reason = "flow fell at most steps at once: late or missing data, not friction"
        return [
            replace(finding, verdict=replace(finding.verdict, anomaly=False, severity="none", reason=reason))
            if finding.verdict.anomaly and finding.metric in FLOW_METRICS and finding.place[0] in late
            else finding
            for finding in findings
        ]

    def reconfigure(self, journey_map: JourneyMap) -> int:
        """Apply new detector settings, keeping what every detector has learned; how many changed."""
        previous = self.detectors
        self.journey_map = journey_map
        self.detectors, self.settings = {}, {}
        changed = 0
        for (place, metric), old in previous.items():
            new = self._detector(place, metric)
            if old is not None and new is not None:
                _carry_over(new, old.state())
            changed += repr(new) != repr(old)
        return changed

    def state(self, group: str) -> dict[str, Any]:
        """The learned state of the detectors of one group: a journey, or a contact channel; a
        journey's also holds the visits a window it expects (its silent-window guard)."""
        state: dict[str, Any] = {
            "/".join((*place, metric)): detector.state()
            for (place, metric), detector in self.detectors.items()
            if detector is not None and (place[0] or place[2]) == group
        }
        if group in self.expected_visits:
            state["/".join((group, "", "", "", "", EXPECTED_VISITS))] = self.expected_visits[group]
        return state

    def restore(self, state: dict[str, Any]) -> int:
        """Take back states from :meth:`state`; how many detectors were restored."""
        restored = 0
        for key, learned in state.items():
            *parts, metric = key.split("/")
            place: SeriesPlace = (parts[0], parts[1], parts[2], parts[3], parts[4])
            if metric == EXPECTED_VISITS and isinstance(learned, int | float) and math.isfinite(learned):
                self.expected_visits[place[0]] = float(learned)
            elif metric in self.metric_kinds:
                detector = self._detector(place, metric)
                if detector is not None and _carry_over(detector, learned):
                    restored += 1
        return restored


def _carry_over(detector: Detector, state: dict[str, Any]) -> bool:
    """Give ``detector`` a learned state; False when it is another kind's (the detector starts afresh)."""
    try:
        detector.restore(state)
    except (TypeError, ValueError, KeyError):  # e.g. a ratio detector's state offered to a river one
        return False
    return True
