"""Sessions walking a journey, and the funnel and frustration metrics they give (no I/O).

One :class:`SessionTracker` serves one clickstream partition (clicks are keyed by
session_id, so a session's events all arrive there). It keeps per-session state, the
partition's watermark (the latest event time seen) and event-time timers, and writes
window amounts per step touchpoint, Touchpoint(journey, step, channel):

Known when a step is entered (throughput, final when the window closes):
    ``sessions_entered``  a session reached this step for the first time
    ``step_visits``       any entry into the step (re-entries after back-tracking too)
    ``backtracks``        a session went from this step back to an earlier one
    ``clicks``, ``errors``, ``rage_clicks`` (>= ``rage_clicks`` clicks on one target
                          within ``rage_seconds``; a burst counts once)

The flow signal, resolved within the step's progress timeout (its p95 dwell by default):
    ``flow_progressed``   the visit reached a later step within the progress timeout
    ``flow_stalled``      it did not (counted when the timeout passes, or at an exit)
    flow ratio = flow_progressed / (flow_progressed + flow_stalled)

The early flow signal, the leading indicator: every visit is judged ``early_age`` seconds
after it began (60 s by default), and counted in the window of that moment, so a step that
stops letting sessions through shows ``early_age`` plus one window after the onset (two
windows with the default 60-s windows):
    ``early_progressed``  the visit had reached a later step by then
    ``early_waiting``     it had not (still there, or the session ended)
    early flow ratio = early_progressed / (early_progressed + early_waiting)

Known when a session ends (an ``exit`` event, or ``session_timeout`` of inactivity):
    ``ended_reached``       ended sessions that had reached this step
    ``ended_reached_next``  ... and also the next step of the journey
    ``sessions_ended``      ended sessions whose last step was this one
    ``dropoffs``            ended sessions whose last step was this one (not a goal step)
    ``conversions``         ended sessions that reached this goal step (on the goal's touchpoint)
    step conversion = ended_reached_next / ended_reached; drop-off ratio = dropoffs / ended_reached

A session's channel is that of its latest event; amounts go to the window holding the
time they became known (an event's ts, a deadline, the session's end).

A session first seen within ``cold_start`` seconds of the partition's first event may have
been under way when the stream began: the tracker never saw it enter the step it was first
seen at, and would take it for a quick mover there. So that first visit is not judged for
the flow signals; the session's later visits are, since the tracker saw them begin. Nor do
such sessions count in the session-end metrics, which start ``cold_start + session_timeout``
after the partition's first event, once sessions can end by inactivity as well as by exit.
With ``cold_start=0`` everything counts from the first event (replays of complete histories).

Flow outcomes count only from ``cold_start`` plus the visit's progress timeout after the
first event: before that no judged visit can have stalled yet, only the quick outcomes
would be known, and the flow ratio would read about 1.0 (the detectors would learn that as
normal and then take the true level for a drop).

>>> from frictionwatch.contract import ClickEvent
>>> from frictionwatch.journeymap import load_journey_map
>>> tracker = SessionTracker(load_journey_map(), WindowedCounts(60), cold_start=0)
>>> step = lambda ts, name: ClickEvent(f"e{ts}", ts, "s1", "purchase", name, "web", "step")
>>> for event in (step(0, "cart"), step(20, "checkout"), step(30, "cart")):
...     _ = tracker.add(event)
>>> closed = tracker.advance(30 + 1800 + 60)          # the session times out at 1830
>>> cart = Touchpoint("purchase", "cart", "web")
>>> sum(window.counts[cart]["dropoffs"] for window in closed)
1.0
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from frictionwatch.contract import ClickEvent
from frictionwatch.journeymap import Journey, JourneyMap, Step
from frictionwatch.streams.timers import Bucket, Wheel
from frictionwatch.streams.windows import Touchpoint, Window, WindowedCounts

if TYPE_CHECKING:
    from frictionwatch.streams.evidence import EvidenceMeter, Waiting

DEFAULT_PROGRESS_TIMEOUT = 120.0
#: Upper bounds (seconds) of the dwell histogram used to learn each step's p95 dwell.
DWELL_BOUNDS = (1, 2, 3, 5, 7, 10, 15, 20, 30, 45, 60, 90, 120, 180, 240, 300, 450, 600, 900, 1200, 1800, 3600)
DWELL_VALUES = tuple(float(bound) for bound in DWELL_BOUNDS)  # shared: each session refers to one of them


class _Flag:
    """A bool of :class:`Session` kept as one bit of its ``flags``: four bools in one slot
    instead of four took a session from 144 to 128 bytes (the allocator rounds to 16), and
    ``bench/memory.py``'s slope from 281-283 to 262 bytes an active session."""

    __slots__ = ("bit",)

    def __init__(self, bit: int) -> None:
        self.bit = bit

    def __get__(self, session: Session, owner: type[Session] | None = None) -> bool:
        return session.flags & self.bit != 0

    def __set__(self, session: Session, value: bool) -> None:
        session.flags = session.flags | self.bit if value else session.flags & ~self.bit


FLOW_OPEN, EARLY_OPEN, JUDGED, RAGE_COUNTED = 1, 2, 4, 8  # the bits of Session.flags


@dataclass(slots=True, eq=False)
class Session:
    """What the tracker remembers of one session (kept small: one per active session).

    Its deadlines are derived, not stored: the early check at ``entered_at + early_age`` (while
    ``early_open``), the progress timeout at ``entered_at + progress_timeout`` (while
    ``flow_open``), the end by inactivity at ``last_ts + journey.session_timeout``. ``filed`` is
    the timer bucket it waits in (see :class:`~frictionwatch.streams.timers.Wheel`).
    """

    journey: Journey
    channel: str
    step: Step
    entered_at: float
    last_ts: float
    reached: int  # bitmask of step indexes reached
    click_target: str | None = None
    click_times: tuple[float, ...] = ()
    flags: int = JUDGED  # the bools below, one bit each
    progress_timeout: float = 0.0  # of the current visit, fixed when it began
    filed: Bucket | None = None

    flow_open = _Flag(FLOW_OPEN)  # the current visit's flow outcome is not known yet
    early_open = _Flag(EARLY_OPEN)  # the current visit's early check is still to come
    judged = _Flag(JUDGED)  # False for sessions that may have been under way when the stream began (cold_start)
    rage_counted = _Flag(RAGE_COUNTED)  # this burst of clicks on click_target was counted already


@dataclass(slots=True)
class StepObservation:
    """A duration measured in this event: for a Prometheus histogram of step-to-next time."""

    journey: str
    step: str
    channel: str
    seconds: float


class DwellQuantile:
    """A step's dwell-time p95 learned from a fixed histogram (cheap, mergeable, bounded).

    It stops learning after ``maximum_samples``: a progress timeout that kept moving would
    move the flow ratio with it, and the detectors would take that for friction.
    """

    def __init__(self, quantile: float = 0.95, minimum_samples: int = 50, maximum_samples: int = 500) -> None:
        self.quantile = quantile
        self.minimum_samples = minimum_samples
        self.maximum_samples = maximum_samples
        self.counts = [0] * (len(DWELL_BOUNDS) + 1)
        self.total = 0
        self.learned: float | None = None  # value(), kept: it is read at every step entered

    def observe(self, seconds: float) -> None:
        if self.total >= self.maximum_samples:
            return
        self.counts[bisect.bisect_left(DWELL_BOUNDS, seconds)] += 1
        self.total += 1
        self.learned = self._quantile()

    def value(self) -> float | None:
        """The upper bound of the bucket holding the quantile; None before enough samples."""
        return self.learned

    def _quantile(self) -> float | None:
        if self.total < self.minimum_samples:
            return None
        wanted = self.quantile * self.total
        running = 0
        for index, count in enumerate(self.counts):
            running += count
            if running >= wanted:
                return DWELL_VALUES[min(index, len(DWELL_BOUNDS) - 1)]
        return DWELL_VALUES[-1]


def device_example(session_id: str, device_ts: float, offset: float) -> str:
    """An example session whose event times were corrected for its device's clock: the id, the
    ts its device gave (the latest event's) and how far that clock was off.

    >>> device_example("s-9", 1795514400.0, 600.0)
    's-9 (device ts 2026-11-24T10:00:00Z, clock +600 s)'
    """
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(device_ts))
    return f"{session_id} (device ts {when}, clock {offset:+.0f} s)"


class SessionTracker:
    """Per-partition session state and the window amounts it produces.

    Args:
        journey_map: journeys, steps and their timeouts.
        windows: where window amounts go (also holds the watermark).
        rage_clicks: clicks on one target that make a rage click (default 3).
        rage_seconds: ... within this many seconds (default 1).
        default_progress_timeout: a step's progress timeout when the map gives none and not
            enough dwell times have been seen to learn its p95 (default 120 s).
        early_age: when a visit is judged for the early flow signal, seconds after it began
            (default 60). Shorter reacts sooner but sees fewer of the sessions that move on.
        cold_start: sessions first seen within this long of the partition's first event are
            not judged for the flow signals (default 300 s).
        on_late: called with the event time of an amount that arrived after its window closed.
        on_step_time: called with each measured step-to-next-step time.
        on_session_start: called with the first event of each session.
        learned_dwell: the learned dwell p95 per (journey, step), shared by every partition
            of a worker so that they judge the flow signal with the same progress timeouts
            (a window's flow ratio must not depend on which partitions it holds); a new
            dict of its own when not given.
        evidence: where visits, errors and the ends of judged visits go as they happen (the
            evidence path, streams/evidence.py); :meth:`waiting` gives the visits under way.
    """

    def __init__(
        self,
        journey_map: JourneyMap,
        windows: WindowedCounts,
        *,
        rage_clicks: int = 3,
        rage_seconds: float = 1.0,
        default_progress_timeout: float = DEFAULT_PROGRESS_TIMEOUT,
        early_age: float = 60.0,
        cold_start: float = 300.0,
        on_late: Callable[[float], None] | None = None,
        on_step_time: Callable[[StepObservation], None] | None = None,
        on_session_start: Callable[[ClickEvent], None] | None = None,
        learned_dwell: dict[tuple[str, str], DwellQuantile] | None = None,
        evidence: EvidenceMeter | None = None,
    ) -> None:
        if rage_clicks < 2:
            raise ValueError(f"rage_clicks must be at least 2, got {rage_clicks}")
        self.journey_map = journey_map
        self.windows = windows
        self.rage_clicks = rage_clicks
        self.rage_seconds = rage_seconds
        self.default_progress_timeout = default_progress_timeout
        self.early_age = early_age
        self.cold_start = cold_start
        self.first_ts: float | None = None
        self.on_late = on_late
        self.on_step_time = on_step_time
        self.on_session_start = on_session_start
        self.sessions: dict[str, Session] = {}
        self.timers = Wheel(self._filed_deadline)
        self.dwell: dict[tuple[str, str], DwellQuantile] = {} if learned_dwell is None else learned_dwell
        self.late_amounts = 0
        self.evidence = evidence
        #: session id -> (device ts, clock offset) of its latest event, when that event's time was
        #: corrected for the device's clock (streams/eventtime.py): shown with the session's examples
        self.device_clocks: dict[str, tuple[float, float]] = {}
        #: (journey, step, channel) -> its Touchpoint, made once (the map bounds them)
        self.touchpoints: dict[tuple[str, str, str], Touchpoint] = {}

    def __len__(self) -> int:
        return len(self.sessions)

    # -- input ------------------------------------------------------------------------

    def add(self, event: ClickEvent) -> list[Window]:
        """Apply one validated click event; returns the windows its time closed."""
        return self.add_events((event,))

    def add_events(self, events: Iterable[ClickEvent]) -> list[Window]:
        """Apply validated click events in order (a record's); returns the windows their times closed.

        One call per record: what every event reads is looked up once; a watermark that fires no
        timer and closes no window is set without :meth:`advance`'s calls; and an event that
        leaves its session on its step is not filed anew in the timer wheel (see below).
        """
        closed: list[Window] = []
        evidence, windows, timers, sessions = self.evidence, self.windows, self.timers, self.sessions
        journeys, touchpoints, ordered_buckets = self.journey_map.journeys, self.touchpoints, timers.ordered
        for event in events:
            ts = event.ts
            if evidence is not None:
                evidence.arrived(ts)
            if ts > windows.watermark:
                if ts >= timers.due_from:
                    closed += self.advance(ts)
                elif ts < windows.quiet_until:  # no timer due, no window to close: most events
                    windows.watermark = ts  # windows.advance(ts), without its call
                else:
                    closed += windows.advance(ts)
            journey = journeys[event.journey]
            step = journey.steps_by_name[event.step]
            session_id = event.session_id
            session = sessions.get(session_id)
            if session is not None and session.journey is not journey:
                self._end(session_id, session, session.last_ts)  # a new journey: the old one is over
                session = None
            if event.device_ts is not None:
                self.device_clocks[session_id] = (event.device_ts, event.device_ts - ts)
            elif self.device_clocks:
                self.device_clocks.pop(session_id, None)
            if session is None:
                if self.first_ts is None:
                    self.first_ts = ts
                judged = ts >= self.first_ts + self.cold_start
                session = Session(journey, event.channel, step, ts, ts, 0, flags=JUDGED if judged else 0)
                sessions[session_id] = session
                self._enter(session_id, session, step, ts, observed=judged)
                if self.on_session_start is not None:
                    self.on_session_start(event)
                moved = True
            else:
                visit_channel, session.channel = session.channel, event.channel
                moved = step is not session.step and ts >= session.last_ts
                if moved:
                    self._move(session_id, session, step, ts, visit_channel)
                if ts > session.last_ts:
                    session.last_ts = ts
            # _at's dict read, without its call (a Touchpoint is never empty, so never falsy)
            place = touchpoints.get((journey.name, step.name, event.channel)) or self._at(
                journey.name, step.name, event.channel
            )
            kind = event.type
            if kind == "click":
                if not windows.add(ts, place, "clicks"):  # _count without an example: most events
                    self._late(ts)
                self._rage(session, event, place)
            elif kind == "error":
                self._count(ts, place, "errors", session_id)
                if evidence is not None:
                    evidence.error(place, session_id)
            elif kind == "exit":
                self._end(session_id, session, ts)
                continue
            # _file's test without its calls: a session that stayed on its step has no earlier
            # deadline than before (only the end by inactivity moved, later), so a bucket it is
            # filed in needs no new entry unless the watermark is inside it
            filed = session.filed
            if moved or filed is None or filed.number in ordered_buckets:
                self._file(session_id, session)
        return closed

    def advance(self, watermark: float) -> list[Window]:
        """Move the partition's watermark: fire due timers, then close due windows."""
        if watermark <= self.windows.watermark:
            return []
        if watermark < self.timers.due_from:  # no timer due: most events
            return self.windows.advance(watermark)
        sessions = self.sessions
        for session_id, bucket in self.timers.due(watermark):
            session = sessions.get(session_id)
            if session is None or session.filed is not bucket:
                continue  # a stale entry: the session ended, or waits in another bucket
            place = self._place(session)
            if session.early_open and session.entered_at + self.early_age <= watermark:
                session.early_open = False
                self._count(session.entered_at + self.early_age, place, "early_waiting", session_id)
            if session.flow_open and session.entered_at + session.progress_timeout <= watermark:
                self._visit_over(session_id, session, session.entered_at + session.progress_timeout, moved_on=False)
                session.flow_open = False
                self._flow_outcome(
                    session, place, session.entered_at + session.progress_timeout, "flow_stalled", session_id
                )
            inactive = session.last_ts + session.journey.session_timeout
            if inactive <= watermark:
                self._end(session_id, session, inactive)
            else:
                session.filed = None  # its entry in this bucket is used up
                self._file(session_id, session)
        return self.windows.advance(watermark)

    # -- timers ---------------------------------------------------------------------------

    def _deadline(self, session: Session) -> float:
        """The session's next deadline: early check, progress timeout or inactivity."""
        deadline = session.last_ts + session.journey.session_timeout
        flags = session.flags  # its bits, not the properties: this runs for every event
        if flags & EARLY_OPEN and session.entered_at + self.early_age < deadline:
            deadline = session.entered_at + self.early_age
        if flags & FLOW_OPEN and session.entered_at + session.progress_timeout < deadline:
            deadline = session.entered_at + session.progress_timeout
        return deadline

    def _filed_deadline(self, session_id: str, bucket: Bucket) -> float | None:
        session = self.sessions.get(session_id)
        return self._deadline(session) if session is not None and session.filed is bucket else None

    def _file(self, session_id: str, session: Session) -> None:
        """Make sure the session waits in a bucket no later than its next deadline."""
        deadline = self._deadline(session)
        filed = session.filed
        index = self.timers.index(deadline)
        # Earlier than its bucket, or in the bucket the watermark is inside of (ordered by deadline).
        if filed is None or index < filed.number or (index == filed.number and index in self.timers.ordered):
            session.filed = self.timers.file(session_id, deadline)

    # -- steps ------------------------------------------------------------------------

    def _enter(self, session_id: str, session: Session, step: Step, ts: float, *, observed: bool = True) -> None:
        """The session enters ``step`` at ``ts``; ``observed``: its visit is known to begin here."""
        place = self._at(session.journey.name, step.name, session.channel)
        bit = 1 << step.index
        if not session.reached & bit:
            session.reached |= bit
            self._count(ts, place, "sessions_entered")
        self._count(ts, place, "step_visits")
        if self.evidence is not None:
            self.evidence.visit(place)
        session.step = step
        session.entered_at = ts
        # flow_open and early_open, as bits (not through the properties: this runs at every step entered)
        if observed and not step.goal:
            session.flags |= FLOW_OPEN | EARLY_OPEN
            session.progress_timeout = self.progress_timeout(session.journey, step)
        else:
            session.flags &= ~(FLOW_OPEN | EARLY_OPEN)
            if self.evidence is not None:  # no flow outcome to wait for: learned as a visit now
                self.evidence.visit_over(place)

    def _move(self, session_id: str, session: Session, step: Step, ts: float, visit_channel: str) -> None:
        """The session moves to ``step``; ``visit_channel``: where its visit of the step it leaves was."""
        previous = session.step
        place = self._place(session)
        dwell = ts - session.entered_at
        learned = self.dwell.get((session.journey.name, previous.name))
        if learned is None:  # not setdefault: that would make a DwellQuantile at every move
            learned = self.dwell[(session.journey.name, previous.name)] = DwellQuantile()
        learned.observe(dwell)
        self._close_early(
            session, place, "early_progressed" if step.index > previous.index else "early_waiting", session_id
        )
        flow_open = session.flags & FLOW_OPEN  # the bit, not the property: this runs at every move
        if flow_open:
            self._visit_over(session_id, session, ts, moved_on=step.index > previous.index, channel=visit_channel)
        if step.index > previous.index:
            if flow_open:
                self._flow_outcome(session, place, ts, "flow_progressed", None)
            if step.index == previous.index + 1 and self.on_step_time is not None:
                self.on_step_time(StepObservation(session.journey.name, previous.name, session.channel, dwell))
        else:
            self._count(ts, place, "backtracks", session_id)
        self._enter(session_id, session, step, ts)  # sets flow_open anew

    def _flow_outcome(
        self, session: Session, place: Touchpoint, ts: float, outcome: str, session_id: str | None
    ) -> None:
        """Count a visit's flow outcome at ``ts`` at ``place`` (the session's), once the outcomes
        of every visit are known.

        A visit that stalls is known a progress timeout after it began, one that moves on
        (or leaves) sooner, so outcomes before ``cold_start`` plus the visit's progress
        timeout after the first event are left out (see the module's docstring).
        """
        begun = self.first_ts if self.first_ts is not None else ts
        if ts >= begun + self.cold_start + session.progress_timeout:
            self._count(ts, place, outcome, session_id)

    def _visit_over(
        self, session_id: str, session: Session, ts: float, *, moved_on: bool, channel: str | None = None
    ) -> None:
        """A judged visit is over at ``ts``: it moved on, or it did not (stalled, went back, left).

        Its evidence goes to the channel the visit was on (``channel``, when the session has just
        moved to another): where its waiting was counted, so a session that moves on from the web
        step to the chat one is not taken for a web visitor who never moved on."""
        if self.evidence is not None:
            place = self._at(session.journey.name, session.step.name, channel or session.channel)
            since, timeout = session.entered_at, session.progress_timeout
            self.evidence.spent(place, "progress", since, ts, timeout, moved_on, whole=True, example=session_id)
            self.evidence.visit_over(place)  # its error, if any, came during it

    def waiting(self) -> list[Waiting]:
        """The judged visits under way, for the evidence path: (step, "progress", since, progress timeout, id)."""
        # _at's dict read, without its call (a Touchpoint is never empty, so never falsy): runs for
        # every held session at every evidence tick
        read, at = self.touchpoints.get, self._at
        return [
            (
                read((s.journey.name, s.step.name, s.channel)) or at(s.journey.name, s.step.name, s.channel),
                "progress",
                s.entered_at,
                s.progress_timeout,
                sid,
            )
            for sid, s in self.sessions.items()
            if s.flags & FLOW_OPEN
        ]

    def _close_early(self, session: Session, place: Touchpoint, outcome: str, session_id: str) -> None:
        """The visit ends before its early check: count it now at ``place`` (the session's), in the
        window of the check's time."""
        if session.flags & EARLY_OPEN:  # the bit, not the property: this runs at every move
            session.flags &= ~EARLY_OPEN
            example = session_id if outcome == "early_waiting" else None
            self._count(session.entered_at + self.early_age, place, outcome, example)

    def progress_timeout(self, journey: Journey, step: Step) -> float:
        """The step's progress timeout: from the map, else its learned p95 dwell, else the default."""
        if step.progress_timeout is not None:
            return step.progress_timeout
        learned = self.dwell.get((journey.name, step.name))
        value = learned.value() if learned is not None else None
        return value if value is not None else self.default_progress_timeout

    # -- frustration --------------------------------------------------------------------

    def _rage(self, session: Session, event: ClickEvent, place: Touchpoint) -> None:
        """A burst: clicks on one target, each within ``rage_seconds`` of the one before.

        It is a rage click once ``rage_clicks`` of its clicks fall within ``rage_seconds``,
        and counts once however long the burst goes on.
        """
        ts = event.ts
        times = session.click_times
        if event.target != session.click_target or (times and ts - times[-1] > self.rage_seconds):
            session.click_target = event.target
            session.click_times = (ts,)
            session.flags &= ~RAGE_COUNTED  # rage_counted = False, without the property's call
            return
        recent = (*(t for t in times if ts - t <= self.rage_seconds), ts)
        session.click_times = recent[-self.rage_clicks :]
        if len(recent) >= self.rage_clicks and not session.rage_counted:
            session.rage_counted = True
            self._count(ts, place, "rage_clicks", event.session_id)

    # -- endings --------------------------------------------------------------------------

    def _end(self, session_id: str, session: Session, ts: float) -> None:
        self._end_counts(session_id, session, ts)
        if self.device_clocks:
            self.device_clocks.pop(session_id, None)

    def _end_counts(self, session_id: str, session: Session, ts: float) -> None:
        del self.sessions[session_id]
        session.filed = None  # its entries in the wheel are stale now
        last = self._place(session)
        self._close_early(session, last, "early_waiting", session_id)
        journey = session.journey
        if session.flow_open:
            self._visit_over(session_id, session, ts, moved_on=False)
            self._flow_outcome(session, last, ts, "flow_stalled", session_id)
        if not self._ends_count(session, ts):
            return
        converted = False
        for step in journey.steps:
            if not session.reached & (1 << step.index):
                continue
            place = self._at(journey.name, step.name, session.channel)
            self._count(ts, place, "ended_reached")
            if session.reached & (1 << (step.index + 1)):
                self._count(ts, place, "ended_reached_next")
            if step.goal:
                converted = True
                self._count(ts, place, "conversions")
        self._count(ts, last, "sessions_ended")
        if not converted and not session.step.goal:
            self._count(ts, last, "dropoffs", session_id)

    def _ends_count(self, session: Session, ts: float) -> bool:
        """Whether a session's end enters the session-end metrics (see ``cold_start``).

        In a partition's first ``cold_start + session_timeout`` seconds only explicit exits can
        end a session (no one has been idle long enough yet), which would make drop-off look
        rare and conversion common; and sessions under way at the start were never seen whole.
        """
        if self.cold_start <= 0 or self.first_ts is None:
            return True
        return session.judged and ts >= self.first_ts + self.cold_start + session.journey.session_timeout

    # -- helpers --------------------------------------------------------------------------

    def _place(self, session: Session) -> Touchpoint:
        return self._at(session.journey.name, session.step.name, session.channel)

    def _at(self, journey: str, step: str, channel: str) -> Touchpoint:
        place = self.touchpoints.get((journey, step, channel))
        if place is None:
            place = self.touchpoints[(journey, step, channel)] = Touchpoint(journey, step, channel)
        return place

    def _count(self, ts: float, place: Touchpoint, name: str, example: str | None = None) -> None:
        if example is not None and self.device_clocks:
            clock = self.device_clocks.get(example)
            if clock is not None:
                example = device_example(example, *clock)
        if not self.windows.add(ts, place, name, 1.0, example):
            self._late(ts)

    def _late(self, ts: float) -> None:
        """An amount at ``ts`` came after its window closed."""
        self.late_amounts += 1
        if self.on_late is not None:
            self.on_late(ts)
