"""Replay an events file through the worker's metric and detector code, in one process.

The worker reads three topics, keeps one state per partition (stage 1), merges the
partitions' windows into final windows (stage 2) and feeds each final window's
observations to a :class:`~frictionwatch.detectors.bank.DetectorBank`. A replay does the
same with everything on one partition: one stage-1 state per topic kind, each closed
window turned into one :class:`~frictionwatch.streams.reduce.FinalWindow` per touchpoint
group (all partitions reported, since there is one), and one detector bank built from
the journey map. Customer touches (repeat contacts, channel switches) feed no detector
and are left out.

The worker's second path, the evidence path, runs too (unless ``evidence=False``): each
state's evidence, taken about every second of event time (streams/evidence.py), goes to an
evidence bank built from the same map (:func:`~frictionwatch.detectors.evidence.bank_for`)
as it comes, and what it finds is kept in ``ReplayResult.evidence``. So a backtest pages
where the worker would page, not only where the window detectors would.

Events are validated as the worker validates them, with the *replay clock* (the latest
valid event time so far) standing in for the wall clock, so an event that a live worker
would reject for its time (milliseconds instead of seconds) is rejected here too.

Event times are corrected for devices whose clocks are off exactly as the worker corrects
them (:class:`~frictionwatch.streams.eventtime.EventClock`), against each record's arrival:
a line's ``timestamp`` (the Kafka record timestamp, seconds; ``frictionwatch generate``
writes it), else the arrival of the line before it (files are in delivery order). A file
with no timestamps at all is replayed with the times its events give, uncorrected.
"""

from __future__ import annotations

import base64
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson

from frictionwatch.contract import Event, EventValidator, InvalidEvent
from frictionwatch.detectors.bank import DetectorBank, Finding, SeriesPlace
from frictionwatch.detectors.base import Observation, Verdict
from frictionwatch.detectors.budget import FalseAlarmBudget
from frictionwatch.detectors.evidence import EvidenceBank, bank_for
from frictionwatch.journeymap import DetectorSettings, JourneyMap, split_map_budget
from frictionwatch.settings import Settings
from frictionwatch.streams.eventtime import EventClock
from frictionwatch.streams.evidence import Hazard, split_evidence
from frictionwatch.streams.reduce import FinalWindow, group_of
from frictionwatch.streams.series import observations
from frictionwatch.streams.stage import ClickState, Output, PartitionState, SourceKind, StageSettings, new_state
from frictionwatch.streams.windows import Touchpoint, Window

TOPIC_KINDS: tuple[SourceKind, ...] = ("clicks", "contacts", "feedback")
VALIDATE = {"clicks": "click", "contacts": "contact", "feedback": "feedback"}
BATCH = 256  # events handed to a partition state at once
PROGRESS_SECONDS = 1.0

#: a series: (journey, step, channel, queue, survey) and the metric name
SeriesKey = tuple[SeriesPlace, str]


class BacktestInputError(ValueError):
    """An input file can't be used; the message names the file and, when known, the line."""


def stage_settings(settings: Settings) -> StageSettings:
    """The stage-1 settings of a worker run with ``settings``."""
    return StageSettings.from_settings(settings)


def tuned_map(
    journey_map: JourneyMap,
    *,
    threshold: float | None = None,
    min_volume: int | None = None,
    consecutive: int | None = None,
    map_false_alarms: FalseAlarmBudget | None = None,
) -> JourneyMap:
    """``journey_map`` with every detector's sensitivity, minimum volume or consecutive
    windows set to the given value: in the defaults, and cleared from every override; and with
    ``map_false_alarms``, that budget for the whole map split over its series (overrides'
    own budgets cleared)."""
    if map_false_alarms is not None:
        overrides = tuple(
            replace(override, settings=replace(override.settings, false_alarms=None))
            for override in journey_map.detector_overrides
        )
        journey_map = split_map_budget(replace(journey_map, detector_overrides=overrides), map_false_alarms)
    changes: dict[str, Any] = {}
    if threshold is not None:
        changes["sensitivity"] = threshold
    if min_volume is not None:
        changes["min_volume"] = min_volume
    if consecutive is not None:
        changes["consecutive"] = consecutive
    if not changes:
        return journey_map
    cleared = dict.fromkeys(changes)
    overrides = tuple(
        replace(override, settings=replace(override.settings, **cleared)) for override in journey_map.detector_overrides
    )
    defaults: DetectorSettings = replace(journey_map.detector_defaults, **changes)
    return replace(journey_map, detector_defaults=defaults, detector_overrides=overrides)


@dataclass(slots=True)
class SeriesTrace:
    """Every verdict of one series (touchpoint + metric), in window order."""

    place: SeriesPlace
    metric: str
    threshold: float
    verdicts: list[Verdict] = field(default_factory=list)


@dataclass(slots=True)
class ReplayResult:
    """What a replay saw and what the detectors said."""

    source: str
    window_size: float
    lines: int = 0
    events: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TOPIC_KINDS, 0))
    malformed: dict[str, int] = field(default_factory=dict)  # rejection reason -> records/elements
    late: int = 0
    clock_corrected: int = 0  # events whose time was corrected for their device's clock
    windows: int = 0  # final windows fed to the detectors (per group)
    first_ts: float | None = None
    last_ts: float | None = None
    series: dict[SeriesKey, SeriesTrace] = field(default_factory=dict)
    observed: list[list[tuple[Touchpoint, str, Observation]]] = field(default_factory=list, repr=False)
    #: what the evidence path found, in order, with when each one's evidence began (empty when it
    #: was not run); it judges with the map the replay was made with, not the one given to detect()
    evidence: list[tuple[float, Finding]] = field(default_factory=list, repr=False)
    evidence_path: bool = False  # whether the evidence path ran
    wall_seconds: float = 0.0

    def detect(self, journey_map: JourneyMap) -> None:
        """Run a fresh detector bank configured by ``journey_map`` over the observations."""
        self.series = detect(self.observed, journey_map)

    @property
    def malformed_total(self) -> int:
        return sum(self.malformed.values())

    @property
    def simulated_days(self) -> float:
        if self.first_ts is None or self.last_ts is None:
            return 0.0
        return (self.last_ts - self.first_ts) / 86400.0


@dataclass(slots=True)
class ReplayProgress:
    """How far a replay is: lines and events read, bytes of the file done."""

    lines: int
    events: int
    done_bytes: int
    total_bytes: int
    wall_seconds: float


class _Replay:
    def __init__(
        self, journey_map: JourneyMap, settings: StageSettings, result: ReplayResult, *, evidence: bool = True
    ) -> None:
        self.validator = EventValidator(journey_map)
        self.settings = settings
        self.result = result
        self.states: dict[str, PartitionState] = {}
        hazards: dict[tuple[Touchpoint, str], Hazard] = {}  # the evidence path's: shared, as in a worker
        self.evidence: EvidenceBank | None = bank_for(journey_map, DetectorBank(journey_map)) if evidence else None
        result.evidence_path = evidence
        for kind in TOPIC_KINDS:
            state = new_state(kind, journey_map, settings, hazards=hazards)
            assert isinstance(state, PartitionState)
            self.states[kind] = state
        self.pending: dict[str, list[Event]] = {kind: [] for kind in TOPIC_KINDS}
        self.validate: dict[str, Callable[[dict[str, Any], float | None], Event]] = {
            kind: getattr(self.validator, VALIDATE[kind]) for kind in TOPIC_KINDS
        }
        self.clock: float | None = None  # the replay clock: the latest valid event time (or arrival)
        self.arrival: float | None = None  # the arrival of the record being replayed (see the module docstring)
        self.event_clock = EventClock(settings.clock_tolerance)
        self.max_timeout = max((journey.session_timeout for journey in journey_map.journeys.values()), default=0.0)

    def arrive(self, arrival: float | None) -> None:
        """The next record arrived at ``arrival`` (None: with the record before it)."""
        if arrival is None:
            return
        self.arrival = arrival
        if self.clock is None or arrival > self.clock:
            self.clock = arrival

    def reject(self, reason: str) -> None:
        malformed = self.result.malformed
        malformed[reason] = malformed.get(reason, 0) + 1

    def element(self, kind: str, element: Any) -> None:
        if not isinstance(element, dict):
            self.reject("not_an_object")
            return
        try:
            event = self.validate[kind](element, self.clock)
        except InvalidEvent as error:
            self.reject(error.reason.value)
            return
        result = self.result
        if self.arrival is not None:
            event, _ = self.event_clock.correct_one(event, self.arrival)
            if event.device_ts is not None:
                result.clock_corrected += 1
        result.events[kind] += 1
        ts = event.ts
        if self.clock is None or ts > self.clock:
            self.clock = ts
        if result.first_ts is None or ts < result.first_ts:
            result.first_ts = ts
        if result.last_ts is None or ts > result.last_ts:
            result.last_ts = ts
        pending = self.pending[kind]
        pending.append(event)
        if len(pending) >= BATCH:
            self.flush(kind)

    def flush(self, kind: str) -> None:
        pending = self.pending[kind]
        if not pending:
            return
        out = Output()
        self.states[kind].add(pending, out)
        self.pending[kind] = []
        self.result.late += out.late
        self.close(kind, out.closed)
        bank = self.evidence
        if bank is not None and out.evidence:
            found = self.result.evidence
            for record in split_evidence(kind, 0, out.evidence_until, out.evidence, out.evidence_examples, group_of):
                found += ((bank.since(finding), finding) for finding in bank.add(record))

    def close(self, kind: str, closed: list[Window]) -> None:
        result = self.result
        for window in closed:
            finals: dict[str, FinalWindow] = {}
            for place, counts in window.counts.items():
                group = group_of(place)
                final = finals.get(group)
                if final is None:
                    final = finals[group] = FinalWindow(kind, group, window.start, window.end, 1, 1)
                final.counts[place] = counts
            for final in finals.values():
                result.windows += 1
                result.observed.append(list(observations(kind, final)))

    def finish(self) -> None:
        """Close every window still open: sessions time out, windows pass their lateness."""
        for kind in TOPIC_KINDS:
            self.flush(kind)
        last = self.result.last_ts
        if last is None:
            return
        size = self.settings.window_size
        horizon = last + self.max_timeout + self.settings.progress_timeout + 2 * size + self.settings.allowed_lateness
        horizon = max(horizon, last + self.settings.touch_lateness)
        for source, state in self.states.items():
            watermark = state.windows.watermark
            if not math.isfinite(watermark):
                continue
            while watermark < horizon:  # in steps, so no closed window is skipped as "empty"
                watermark = min(horizon, watermark + 100 * size)
                if isinstance(state, ClickState):
                    closed = state.tracker.advance(watermark)
                else:
                    closed = state.windows.advance(watermark)
                self.close(source, closed)


def detect(
    observed: list[list[tuple[Touchpoint, str, Observation]]], journey_map: JourneyMap
) -> dict[SeriesKey, SeriesTrace]:
    """The verdicts of a detector bank built from ``journey_map`` fed every final window's
    observations in order, as the worker's stage 2 feeds it."""
    bank = DetectorBank(journey_map)
    series: dict[SeriesKey, SeriesTrace] = {}
    for window in observed:
        for finding in bank.observe(window):
            found = finding.place
            place: SeriesPlace = (found[0], found[1], found[2], found[3], found[4])  # a plain tuple
            key = (place, finding.metric)
            trace = series.get(key)
            if trace is None:
                trace = series[key] = SeriesTrace(place, finding.metric, finding.threshold)
            trace.verdicts.append(finding.verdict)
    return series


class Replayer:
    """Replay pushed events: :meth:`add` decoded events ``(topic kind, event object)`` in
    event-time order, as :func:`replay_events` replays a file's lines (e.g. straight from
    the generator, with no file between), then :meth:`finish`. No detector is run:
    ``result.observed`` holds every final window's observations and
    ``result.detect(journey_map)`` runs a detector bank over them. The evidence path runs
    only when ``evidence`` is set (its findings judge with ``journey_map``)."""

    def __init__(
        self,
        journey_map: JourneyMap,
        settings: StageSettings | None = None,
        source: str = "<events>",
        *,
        evidence: bool = False,
    ) -> None:
        settings = settings or StageSettings()
        self.result = ReplayResult(source, settings.window_size)
        self._replay = _Replay(journey_map, settings, self.result, evidence=evidence)
        self._started = time.monotonic()

    def add(self, kind: str, value: Any, now: float | None = None) -> None:
        """One event (or one malformed value, counted by rejection reason) of topic ``kind``.

        ``now``, when known, is when it reaches the worker (e.g. the generator's delivery
        time): it moves the replay clock, so events held back by a late batch and the ones
        after the gap are judged as a live worker judges them, not as ``ts_in_future``; and
        it is the arrival event times are corrected against, as the worker does."""
        self._replay.arrive(now)
        self._replay.element(kind, value)

    def finish(self) -> ReplayResult:
        """Close every window still open; the result."""
        self._replay.finish()
        result = self.result
        result.lines = sum(result.events.values()) + result.malformed_total
        result.wall_seconds = time.monotonic() - self._started
        return result


def replay_events(
    path: str | Path,
    journey_map: JourneyMap,
    settings: StageSettings | None = None,
    progress: Callable[[ReplayProgress], None] | None = None,
    *,
    evidence: bool = True,
) -> ReplayResult:
    """Replay the JSON-lines events file at ``path`` (as written by ``frictionwatch generate``);
    ``evidence``: run the evidence path too, as the worker does.

    Raises :class:`BacktestInputError` naming the file and line when a line isn't a record
    (``{"topic": "clicks|contacts|feedback", "key": ..., "value": ...}`` or ``"value_b64"``).
    Malformed events inside records are skipped and counted by rejection reason.
    """
    source = Path(path)
    try:
        total = os.path.getsize(source)
        stream = open(source, "rb")  # noqa: SIM115 - closed below
    except OSError as error:
        raise BacktestInputError(f"{source}: cannot read: {error.strerror}") from None
    settings = settings or StageSettings()
    result = ReplayResult(str(source), settings.window_size)
    replay = _Replay(journey_map, settings, result, evidence=evidence)
    started = time.monotonic()
    next_report = started + PROGRESS_SECONDS
    done = 0
    with stream:
        for number, line in enumerate(stream, start=1):
            done += len(line)
            result.lines = number
            if not line.strip():
                continue
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError as error:
                raise BacktestInputError(f"{source}:{number}: not a JSON line ({error})") from None
            if not isinstance(record, dict) or record.get("topic") not in TOPIC_KINDS:
                raise BacktestInputError(
                    f"{source}:{number}: expected an object with topic clicks, contacts or feedback"
                    " (a line of `frictionwatch generate --output FILE.jsonl`)"
                )
            kind = record["topic"]
            timestamp = record.get("timestamp")
            if timestamp is not None and (isinstance(timestamp, bool) or not isinstance(timestamp, int | float)):
                raise BacktestInputError(f"{source}:{number}: timestamp must be epoch seconds, got {timestamp!r}")
            replay.arrive(timestamp)
            if "value" in record:
                value = record["value"]
                if isinstance(value, list):
                    if not value:
                        replay.reject("empty_batch")
                    for element in value:
                        replay.element(kind, element)
                else:
                    replay.element(kind, value)
            elif "value_b64" in record:
                try:
                    raw = base64.b64decode(record["value_b64"], validate=True)
                except (ValueError, TypeError):
                    raise BacktestInputError(f"{source}:{number}: value_b64 is not base64") from None
                try:
                    decoded = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    replay.reject("not_json")
                    continue
                for element in decoded if isinstance(decoded, list) else [decoded]:
                    replay.element(kind, element)
            else:
                raise BacktestInputError(f"{source}:{number}: the record has neither value nor value_b64")
            if progress is not None and number % 4096 == 0 and time.monotonic() >= next_report:
                next_report = time.monotonic() + PROGRESS_SECONDS
                events = sum(result.events.values())
                progress(ReplayProgress(number, events, done, total, time.monotonic() - started))
    replay.finish()
    result.detect(journey_map)
    result.wall_seconds = time.monotonic() - started
    if progress is not None:
        progress(ReplayProgress(result.lines, sum(result.events.values()), total, total, result.wall_seconds))
    return result
