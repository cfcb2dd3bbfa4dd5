"""Stage 1: validated events of each partition turned into window amounts (no I/O).

One state per (input topic, partition): a session tracker for clicks, a contact centre
for contacts, feedback scores for feedback, customer continuity for the internal topic
of customer touches. Each holds its own watermark and windows. What the stage produces
goes back to the caller as :class:`Output`: closed windows (for the counters and, split by
group, for the reducing stage) and customer touches (to re-key by customer id).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import orjson

from frictionwatch.contract import ClickEvent, ContactEvent, Event, FeedbackEvent
from frictionwatch.journeymap import JourneyMap
from frictionwatch.settings import Settings
from frictionwatch.streams.contacts import ContactCentre
from frictionwatch.streams.customers import CustomerContinuity
from frictionwatch.streams.evidence import MAX_WAIT, EvidenceCounts, EvidenceMeter, Hazard, WaitingCallers
from frictionwatch.streams.feedback import FeedbackScores
from frictionwatch.streams.sessions import DwellQuantile, SessionTracker, StepObservation
from frictionwatch.streams.windows import Touchpoint, Window, WindowedCounts

SourceKind = Literal["clicks", "contacts", "feedback", "touches"]


@dataclass(frozen=True, slots=True)
class StageSettings:
    """The metric settings stage 1 needs (see :class:`frictionwatch.settings.Settings`)."""

    window_size: float = 60.0
    allowed_lateness: float = 5.0
    rage_clicks: int = 3
    rage_seconds: float = 1.0
    progress_timeout: float = 120.0
    early_age: float = 60.0
    cold_start: float = 300.0
    short_abandon_seconds: float = 5.0
    service_level_seconds: float = 20.0
    repeat_contact_horizon: float = 86400.0
    contact_timeout: float = 4 * 3600.0
    touch_lateness: float = 300.0  # touches come from several topics whose partitions progress unevenly
    dedup_horizon: float = 600.0
    dedup_max_ids: int = 200_000
    clock_tolerance: float = 5.0  # see streams/eventtime.py (the worker's decoders use it too)

    @classmethod
    def from_settings(cls, settings: Settings) -> StageSettings:
        """The stage-1 settings of a worker (or a backtest) run with ``settings``."""
        return cls(
            window_size=settings.window_size,
            allowed_lateness=settings.allowed_lateness,
            rage_clicks=settings.rage_clicks,
            rage_seconds=settings.rage_seconds,
            progress_timeout=settings.progress_timeout,
            early_age=settings.early_flow_age,
            cold_start=settings.flow_cold_start,
            short_abandon_seconds=settings.short_abandon_seconds,
            service_level_seconds=settings.service_level_seconds,
            repeat_contact_horizon=settings.repeat_contact_horizon,
            contact_timeout=settings.contact_timeout,
            touch_lateness=settings.touch_lateness,
            dedup_horizon=settings.dedup_horizon,
            dedup_max_ids=settings.dedup_max_ids,
            clock_tolerance=settings.clock_tolerance,
        )


@dataclass(frozen=True, slots=True)
class Touch:
    """A customer showed up on a channel: a session started, or a contact was queued."""

    customer_id: str
    ts: float
    channel: str
    kind: Literal["session", "contact"]
    touchpoint: Touchpoint

    def to_json(self) -> bytes:
        return orjson.dumps([self.customer_id, self.ts, self.channel, self.kind, list(self.touchpoint)])

    @classmethod
    def from_json(cls, data: bytes) -> Touch:
        return cls.from_value(orjson.loads(data))

    @classmethod
    def many_from_json(cls, data: bytes) -> list[Touch]:
        """The touches of a record holding one touch, or an array of them (packed per partition)."""
        value = orjson.loads(data)
        if isinstance(value, list) and value and isinstance(value[0], list):
            return [cls.from_value(item) for item in value]
        return [cls.from_value(value)]

    @classmethod
    def from_value(cls, value: Any) -> Touch:
        customer_id, ts, channel, kind, place = value
        if kind not in ("session", "contact"):
            raise ValueError(f"unknown touch kind {kind!r}")
        return cls(str(customer_id), float(ts), str(channel), kind, Touchpoint(*place))


@dataclass(slots=True)
class Output:
    """What one batch of events produced."""

    closed: list[Window] = field(default_factory=list)
    touches: list[Touch] = field(default_factory=list)
    step_times: list[StepObservation] = field(default_factory=list)
    waits: list[tuple[Touchpoint, str, float]] = field(default_factory=list)  # (queue, outcome, seconds)
    late: int = 0
    evidence: EvidenceCounts = field(default_factory=dict)  # the evidence path (streams/evidence.py), at a tick
    evidence_until: float = 0.0  # the event time the evidence counts up to
    evidence_examples: dict[Touchpoint, list[str]] = field(default_factory=dict)


class PartitionState:
    """The state of one input partition; subclasses handle one kind of event."""

    def __init__(self, windows: WindowedCounts) -> None:
        self.windows = windows

    def add(self, events: Sequence[Event], out: Output) -> None:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError


class ClickState(PartitionState):
    def __init__(
        self,
        journey_map: JourneyMap,
        settings: StageSettings,
        learned_dwell: dict[tuple[str, str], DwellQuantile] | None = None,
        hazards: dict[tuple[Touchpoint, str], Hazard] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(WindowedCounts(settings.window_size, settings.allowed_lateness))
        self.out = Output()
        self.evidence = EvidenceMeter({} if hazards is None else hazards, clock=clock)
        self.tracker = SessionTracker(
            journey_map,
            self.windows,
            rage_clicks=settings.rage_clicks,
            rage_seconds=settings.rage_seconds,
            default_progress_timeout=settings.progress_timeout,
            early_age=settings.early_age,
            cold_start=settings.cold_start,
            on_step_time=self._step_time,
            on_session_start=self._session_start,
            learned_dwell=learned_dwell,
            evidence=self.evidence,
        )

    def _step_time(self, observation: StepObservation) -> None:
        self.out.step_times.append(observation)

    def _session_start(self, event: ClickEvent) -> None:
        if event.customer_id is not None:
            place = Touchpoint(event.journey, event.step, event.channel)
            self.out.touches.append(Touch(event.customer_id, event.ts, event.channel, "session", place))

    def add(self, events: Sequence[Event], out: Output) -> None:
        self.out = out
        late_before = self.tracker.late_amounts
        out.closed += self.tracker.add_events(cast("Sequence[ClickEvent]", events))  # a clicks partition's
        out.late += self.tracker.late_amounts - late_before
        watermark = self.windows.watermark
        if self.evidence.due(watermark):
            out.evidence = self.evidence.tick(watermark, self.tracker.waiting())
            out.evidence_until, out.evidence_examples = watermark, self.evidence.taken_examples

    def __len__(self) -> int:
        return len(self.tracker)


class ContactState(PartitionState):
    def __init__(
        self,
        settings: StageSettings,
        hazards: dict[tuple[Touchpoint, str], Hazard] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(WindowedCounts(settings.window_size, settings.allowed_lateness))
        self.centre = ContactCentre(
            settings.short_abandon_seconds, settings.service_level_seconds, settings.contact_timeout
        )
        self.evidence = EvidenceMeter({} if hazards is None else hazards, clock=clock)
        self.callers = WaitingCallers()
        self.short_abandon_seconds = settings.short_abandon_seconds

    def add(self, events: Sequence[Event], out: Output) -> None:
        centre, windows = self.centre, self.windows
        for event in events:
            assert isinstance(event, ContactEvent)
            self.evidence.arrived(event.ts)
            closed = windows.advance(event.ts)
            if closed:
                out.closed += closed
                centre.expire(windows.watermark)
            if not centre.add(event, windows):
                out.late += 1
            place = Touchpoint(channel=event.channel, queue=event.queue)
            if centre.last_wait is not None:
                out.waits.append((place, event.type, centre.last_wait))
            self._evidence(event, place)
            if event.type == "queued" and event.customer_id is not None:
                out.touches.append(Touch(event.customer_id, event.ts, event.channel, "contact", place))
        if self.evidence.due(windows.watermark):
            out.evidence = self.evidence.tick(windows.watermark, self.callers.waiting(windows.watermark))
            out.evidence_until, out.evidence_examples = windows.watermark, self.evidence.taken_examples

    def _evidence(self, event: ContactEvent, place: Touchpoint) -> None:
        """A caller starts waiting, or stops: answered, or hung up (a short abandon is neither)."""
        if event.type == "queued":
            self.callers.queued(event.contact_id, place, event.ts)
            return
        if event.type not in ("answered", "abandoned"):
            return
        wait = self.callers.left(event.contact_id)
        if wait is None:
            return
        queue, since = wait
        answered = event.type == "answered"
        abandoned = not answered and event.ts - since >= self.short_abandon_seconds
        self.evidence.spent(queue, "answer", since, event.ts, MAX_WAIT, answered, example=event.contact_id)
        self.evidence.spent(queue, "abandon", since, event.ts, MAX_WAIT, abandoned, example=event.contact_id)

    def __len__(self) -> int:
        return len(self.centre)


class FeedbackState(PartitionState):
    def __init__(self, settings: StageSettings) -> None:
        super().__init__(WindowedCounts(settings.window_size, settings.allowed_lateness))
        self.scores = FeedbackScores()

    def add(self, events: Sequence[Event], out: Output) -> None:
        for event in events:
            assert isinstance(event, FeedbackEvent)
            out.closed += self.windows.advance(event.ts)
            if not self.scores.add(event, self.windows):
                out.late += 1

    def __len__(self) -> int:
        return 0


class TouchState:
    """Customer continuity for one partition of the customer-touches topic."""

    def __init__(self, settings: StageSettings) -> None:
        self.windows = WindowedCounts(settings.window_size, max(settings.allowed_lateness, settings.touch_lateness))
        self.continuity = CustomerContinuity(settings.repeat_contact_horizon)

    def add(self, touches: Sequence[Touch], out: Output) -> None:
        continuity, windows = self.continuity, self.windows
        for touch in touches:
            closed = windows.advance(touch.ts)
            if closed:
                out.closed += closed
                continuity.expire(windows.watermark - windows.allowed_lateness)  # late touches find their past
            if not continuity.touch(touch.customer_id, touch.ts, touch.channel, touch.kind, touch.touchpoint, windows):
                out.late += 1

    def __len__(self) -> int:
        return len(self.continuity)


def new_state(
    kind: SourceKind,
    journey_map: JourneyMap,
    settings: StageSettings,
    learned_dwell: dict[tuple[str, str], DwellQuantile] | None = None,
    hazards: dict[tuple[Touchpoint, str], Hazard] | None = None,
    clock: Callable[[], float] | None = None,
) -> PartitionState | TouchState:
    """A partition's state; ``learned_dwell`` (see SessionTracker) and the evidence path's ``hazards``
    are shared by a worker's partitions; ``clock`` spaces the evidence ticks in wall time too."""
    if kind == "clicks":
        return ClickState(journey_map, settings, learned_dwell, hazards, clock)
    if kind == "contacts":
        return ContactState(settings, hazards, clock)
    if kind == "feedback":
        return FeedbackState(settings)
    return TouchState(settings)


def groups_of(kind: SourceKind, journey_map: JourneyMap) -> tuple[str, ...]:
    """The touchpoint groups a source's windows are split into (see reduce.group_of)."""
    journeys = tuple(journey_map.journeys)
    channels = tuple(journey_map.contact_channels)
    if kind == "clicks":
        return journeys
    if kind == "feedback":
        return journeys + tuple(channel for channel in channels if channel not in journeys)
    return channels
