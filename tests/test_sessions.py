"""Exact values of the session, funnel, flow and frustration metrics on hand-written sessions."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from frictionwatch.contract import ClickEvent
from frictionwatch.journeymap import JourneyMap, parse_journey_map
from frictionwatch.streams.sessions import EARLY_OPEN, RAGE_COUNTED, Session, SessionTracker, StepObservation
from frictionwatch.streams.timers import Bucket, Timers, Wheel
from frictionwatch.streams.windows import Touchpoint, Window, WindowedCounts

MAP = parse_journey_map("""\
version: 1
journeys:
  shop:
    session_timeout: 10m
    steps:
      - {name: browse, stage: consideration, channels: [web, app]}
      - {name: cart, stage: purchase, channels: [web, app], progress_timeout: 60s}
      - {name: pay, stage: purchase, channels: [web, app], progress_timeout: 30s}
      - {name: done, stage: purchase, channels: [web, app], goal: true}
""")


def tp(step: str, channel: str = "web") -> Touchpoint:
    return Touchpoint("shop", step, channel)


class Run:
    """Feeds events to a tracker with 60 s windows and sums every closed window's amounts."""

    def __init__(self, journey_map: JourneyMap = MAP, lateness: float = 0.0, **options: Any) -> None:
        self.steps: list[StepObservation] = []
        self.late: list[float] = []
        options.setdefault("cold_start", 0.0)  # hand-written sessions start with the stream
        self.tracker = SessionTracker(
            journey_map, WindowedCounts(60, lateness), on_late=self.late.append, on_step_time=self.steps.append,
            **options,
        )  # fmt: skip
        self.closed: list[Window] = []
        self.count = 0

    def __call__(self, ts: float, session: str, step: str, kind: str = "step", **fields: Any) -> ClickEvent:
        """Feed one click; the event fed (so that a line can feed several: ``run(...), run(...)``)."""
        self.count += 1
        channel = fields.pop("channel", "web")
        event = ClickEvent(f"e{self.count}", ts, session, "shop", step, channel, kind, **fields)
        self.closed += self.tracker.add(event)
        return event

    def finish(self, until: float) -> Counter[tuple[Touchpoint, str]]:
        self.closed += self.tracker.advance(until)
        totals: Counter[tuple[Touchpoint, str]] = Counter()
        for window in self.closed:
            for place, fields in window.counts.items():
                for name, amount in fields.items():
                    totals[place, name] += int(amount)
        return totals


def test_funnel_dropoff_and_conversion() -> None:
    run = Run()
    run(0, "a", "browse"), run(10, "a", "cart"), run(20, "a", "pay"), run(25, "a", "done")  # converts
    run(0, "b", "browse"), run(15, "b", "cart"), run(30, "b", "cart", "exit")  # leaves at cart
    run(5, "c", "browse")  # goes silent: ends by timeout at 605
    totals = run.finish(5000)
    assert totals[tp("browse"), "sessions_entered"] == 3
    assert totals[tp("cart"), "sessions_entered"] == 2
    assert totals[tp("done"), "conversions"] == 1
    assert totals[tp("browse"), "ended_reached"] == 3 and totals[tp("browse"), "ended_reached_next"] == 2
    assert totals[tp("cart"), "ended_reached"] == 2 and totals[tp("cart"), "ended_reached_next"] == 1
    assert totals[tp("cart"), "dropoffs"] == 1 and totals[tp("browse"), "dropoffs"] == 1
    assert totals[tp("done"), "dropoffs"] == 0 and totals[tp("pay"), "dropoffs"] == 0
    assert len(run.tracker) == 0


def test_a_session_expires_exactly_at_its_timeout() -> None:
    run = Run()
    run(100, "a", "browse")
    run.tracker.advance(100 + 600 - 0.001)
    assert len(run.tracker) == 1
    run.tracker.advance(700)  # last event + 10m
    assert len(run.tracker) == 0


def test_activity_pushes_the_timeout_back() -> None:
    run = Run()
    run(0, "a", "browse"), run(500, "a", "browse", "click", target="#x")
    run.tracker.advance(1099)
    assert len(run.tracker) == 1
    run.tracker.advance(1100)
    assert len(run.tracker) == 0
    assert run.finish(2000)[tp("browse"), "dropoffs"] == 1


def test_the_dropoff_lands_in_the_window_of_the_end() -> None:
    run = Run()
    run(30, "a", "browse")
    run.finish(2000)
    (window,) = [w for w in run.closed if w.counts.get(tp("browse"), {}).get("dropoffs")]
    assert window.start == 600.0  # ended at 30 + 600 = 630


def test_flow_signal_progress_within_the_timeout_or_stall() -> None:
    run = Run(lateness=120)  # sessions are fed one after the other, so event time goes back and forth
    run(-100, "z", "browse")  # the stream begins early enough for every flow outcome below to count
    run(0, "a", "cart"), run(59, "a", "pay")  # progressed from cart within 60 s
    run(0, "b", "cart"), run(61, "b", "pay")  # stalled at 60, then moved on late
    run(0, "c", "cart"), run(10, "c", "cart", "exit")  # exit: stalled now
    run(0, "d", "pay"), run(5, "d", "done")  # pay -> done in time
    totals = run.finish(5000)
    assert totals[tp("cart"), "flow_progressed"] == 1
    assert totals[tp("cart"), "flow_stalled"] == 2
    assert totals[tp("pay"), "flow_progressed"] == 1  # d
    assert totals[tp("pay"), "flow_stalled"] == 2  # a and b never left pay: stalled 30 s after entering
    assert totals[tp("done"), "flow_stalled"] == 0  # goal steps have no flow outcome


def test_the_flow_ratio_does_not_read_high_while_no_visit_can_have_stalled_yet() -> None:
    # Steady traffic from the stream's start: a session enters the cart every 2 s, every other
    # one moves on 10 s later, the rest stay (stalled at the cart's 60 s timeout). The ratio is
    # 0.5; in the first 60 s only the quick outcomes are known, and it would read 1.0.
    run = Run()
    for ts in range(0, 1200, 2):
        run(ts, f"s{ts}", "cart")
        if ts >= 10 and (ts - 10) % 4 == 0:
            run(ts, f"s{ts - 10}", "pay")
    run.finish(5000)
    outcomes = {
        window.start: (counts.get("flow_progressed", 0), counts.get("flow_stalled", 0))
        for window in run.closed
        if (counts := window.counts.get(tp("cart"), {}))
    }
    assert all(outcomes[start] == (0, 0) for start in outcomes if start < 60)
    assert [outcomes[start] for start in range(60, 1140, 60)] == [(15, 15)] * 18


def test_a_session_under_way_at_the_start_is_judged_from_its_first_observed_step_on() -> None:
    run = Run(cold_start=300)
    run(0, "z", "browse")  # the stream begins
    run(200, "a", "cart")  # first seen in the cold start: maybe long on the cart already
    run(400, "a", "pay")  # seen to enter the payment step: judged there
    totals = run.finish(5000)
    assert totals[tp("cart"), "flow_progressed"] == 0 and totals[tp("cart"), "early_progressed"] == 0
    assert totals[tp("pay"), "flow_stalled"] == 1 and totals[tp("pay"), "early_waiting"] == 1


def test_progress_timeout_defaults_to_the_learned_p95_dwell() -> None:
    free = parse_journey_map(MAP_TEXT_WITHOUT_TIMEOUTS)
    tracker = SessionTracker(free, WindowedCounts(60), default_progress_timeout=99)
    journey = free.journeys["shop"]
    assert tracker.progress_timeout(journey, journey.steps[0]) == 99
    for index in range(100):
        start = index * 100.0
        for ts, step in ((start, "browse"), (start + 4 if index < 94 else start + 40, "cart")):
            tracker.add(ClickEvent(f"e{index}{step}", ts, f"s{index}", "shop", step, "web", "step"))
    assert tracker.progress_timeout(journey, journey.steps[0]) == 45.0  # 95th of 100 dwells is 40 s


MAP_TEXT_WITHOUT_TIMEOUTS = """\
version: 1
journeys:
  shop:
    steps:
      - {name: browse, stage: consideration, channels: [web]}
      - {name: cart, stage: purchase, channels: [web], goal: true}
"""


def test_step_to_next_times_and_backtracking() -> None:
    run = Run()
    run(0, "a", "browse"), run(12.5, "a", "cart"), run(20, "a", "browse"), run(26, "a", "cart"), run(30, "a", "done")
    totals = run.finish(5000)
    assert [(o.step, o.seconds) for o in run.steps] == [("browse", 12.5), ("browse", 6.0)]  # cart -> done skips pay
    assert totals[tp("cart"), "backtracks"] == 1
    assert totals[tp("cart"), "sessions_entered"] == 1 and totals[tp("cart"), "step_visits"] == 2


@pytest.mark.parametrize(
    ("times", "expected"),
    [
        ((0.0, 0.5, 1.0), 1),  # 3 clicks within exactly 1 s: the boundary counts
        ((0.0, 0.5, 1.001), 0),  # the first is just over 1 s before the third
        ((0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2), 1),  # one long burst counts once
        ((0.0, 0.3, 0.6, 5.0, 5.3, 5.6), 2),  # two bursts
        ((0.0, 0.3), 0),
    ],
)
def test_rage_clicks_at_the_threshold(times: tuple[float, ...], expected: int) -> None:
    run = Run()
    for ts in times:
        run(100 + ts, "a", "cart", "click", target="#pay-button")
    totals = run.finish(5000)
    assert totals[tp("cart"), "rage_clicks"] == expected
    assert totals[tp("cart"), "clicks"] == len(times)


def test_rage_clicks_need_the_same_target() -> None:
    run = Run(rage_clicks=4, rage_seconds=2.0)
    for index, target in enumerate(["#a", "#a", "#b", "#a", "#a", "#a", "#a"]):
        run(100 + index * 0.1, "s", "cart", "click", target=target)
    assert run.finish(5000)[tp("cart"), "rage_clicks"] == 1  # only the last four #a in a row


def test_errors_per_step_and_channel() -> None:
    run = Run()
    run(0, "a", "pay", "error", code="PAY_502"), run(1, "a", "pay", "error", channel="app")
    totals = run.finish(5000)
    assert totals[tp("pay"), "errors"] == 1 and totals[tp("pay", "app"), "errors"] == 1


def test_late_events_are_counted_and_still_move_state() -> None:
    run = Run(lateness=10)
    run(0, "a", "browse")
    run(200, "b", "browse")  # watermark 200: windows before 180 are closed
    run(30, "a", "cart")  # window [0, 60) is closed: late
    assert run.late and run.late[0] == 30
    assert run.tracker.sessions["a"].step.name == "cart"


def test_timers_fire_in_deadline_order() -> None:
    timers: Timers[str] = Timers(bucket_seconds=5)
    for key, deadline in (("x", 12.0), ("y", 3.0), ("z", 7.5)):
        timers.schedule(key, deadline)
    timers.cancel("z")
    assert timers.due(20) == [("y", 3.0), ("x", 12.0)] and len(timers) == 0


def test_early_flow_judges_each_visit_once_at_its_age() -> None:
    run = Run(lateness=600, early_age=30)
    run(0, "a", "cart"), run(20, "a", "pay")  # past cart by 30 s: progressed, counted at 30
    run(0, "b", "cart"), run(40, "b", "pay")  # still at cart at 30 s: waiting, counted at 30
    run(0, "c", "cart"), run(10, "c", "browse")  # went back before 30 s: waiting
    run(0, "d", "cart"), run(5, "d", "cart", "exit")  # left before 30 s: waiting
    run(0, "e", "done")  # goal steps are not judged
    totals = run.finish(5000)
    assert totals[tp("cart"), "early_progressed"] == 1
    assert totals[tp("cart"), "early_waiting"] == 3
    assert totals[tp("done"), "early_progressed"] + totals[tp("done"), "early_waiting"] == 0
    (window,) = [w for w in run.closed if w.counts.get(tp("cart"), {}).get("early_waiting")]
    assert window.start == 0.0  # all four cart visits began at 0 and were judged at 30


def test_goal_conversion_and_conversions_lost_gauges(journey_map: Any) -> None:
    from prometheus_client import CollectorRegistry

    from frictionwatch.streams.exposition import FrictionMetrics
    from frictionwatch.streams.reduce import FinalWindow

    registry = CollectorRegistry()
    metrics = FrictionMetrics(registry, journey_map)
    cart, checkout = Touchpoint("purchase", "cart", "web"), Touchpoint("purchase", "checkout", "web")
    goal = Touchpoint("purchase", "confirmation", "web")

    def window(start: float, reached: float, moved_on: float) -> FinalWindow:
        final = FinalWindow("journey.clicks", "purchase", start, start + 60, 1, 1)
        final.counts[cart].update(ended_reached=reached, ended_reached_next=moved_on, sessions_ended=reached - moved_on)
        final.counts[checkout].update(ended_reached=moved_on, sessions_ended=moved_on / 2)
        final.counts[goal].update(conversions=moved_on / 2, sessions_ended=moved_on / 2)
        return final

    for index in range(10):  # the baseline: 80 of 100 move on from cart
        metrics.final_window("clicks", window(index * 60, 100, 80))
    metrics.final_window("clicks", window(600, 100, 40))  # now only 40 do
    labels = {"journey": "purchase", "stage": "purchase", "step": "cart", "channel": "web"}
    assert registry.get_sample_value("frictionwatch_window_step_conversion_ratio", labels) == 0.4
    # 40 sessions fewer than usual moved on; half of those past cart convert: 20 conversions lost
    assert registry.get_sample_value("frictionwatch_window_step_conversions_lost", labels) == 20.0
    assert registry.get_sample_value("frictionwatch_window_goal_conversion_ratio", {"journey": "purchase"}) == 0.2


def test_a_sessions_bools_are_bits_of_one_slot_each_set_and_cleared_alone() -> None:
    journey = MAP.journeys["shop"]
    session = Session(journey, "web", journey.steps[0], 0.0, 0.0, 0)
    assert (session.judged, session.flow_open, session.early_open, session.rage_counted) == (True, False, False, False)
    session.flow_open = session.early_open = True
    session.rage_counted = True
    session.flow_open = False
    assert (session.judged, session.flow_open, session.early_open, session.rage_counted) == (True, False, True, True)
    session.judged = False
    assert session.flags == EARLY_OPEN | RAGE_COUNTED
    assert not hasattr(session, "__dict__")  # still slots only: the flags are not attributes of their own


class ExactWindows(WindowedCounts):
    """Windows that always take the exact path of ``advance`` (the reference for its shortcut)."""

    def _quiet(self) -> None:
        self.quiet_until = float("-inf")


@settings(max_examples=300, deadline=None)
@given(
    size=st.sampled_from([0.1, 1.0, 7.0, 10.0, 60.0, 300.0]),
    lateness=st.sampled_from([0.0, 0.5, 5.0, 120.0]),
    origin=st.sampled_from([0.0, 1_795_514_400.0]),
    steps=st.lists(st.floats(min_value=-5.0, max_value=400.0, allow_nan=False), min_size=1, max_size=60),
    nudges=st.lists(st.integers(min_value=-3, max_value=3), min_size=60, max_size=60),
)
def test_windows_close_as_the_exact_path_closes_them(
    size: float, lateness: float, origin: float, steps: list[float], nudges: list[int]
) -> None:
    """``advance`` skips its arithmetic while the watermark is short of the next close: the same
    windows close at the same watermarks as without the shortcut, at window bounds to the last bit."""
    fast, exact = WindowedCounts(size, lateness), ExactWindows(size, lateness)
    ts = origin
    for step, nudge in zip(steps, nudges, strict=False):
        ts += step
        bound = math.floor((ts - lateness) / size) * size + lateness  # a close nearby, then a few bits off it
        near = bound
        for _ in range(abs(nudge)):
            near = math.nextafter(near, math.inf if nudge > 0 else -math.inf)
        for watermark in (ts, near):
            fast.add(watermark, Touchpoint("j", "s", "web"), "clicks")
            exact.add(watermark, Touchpoint("j", "s", "web"), "clicks")
            assert [(w.start, dict(w.counts)) for w in fast.advance(watermark)] == [
                (w.start, dict(w.counts)) for w in exact.advance(watermark)
            ]
            assert fast.closed_before == exact.closed_before


class WheelOwner:
    """Keys with deadlines filed in a :class:`Wheel` as :class:`SessionTracker` files sessions."""

    def __init__(self, bucket_seconds: float) -> None:
        self.deadlines: dict[str, float] = {}
        self.filed: dict[str, Bucket | None] = {}
        self.wheel = Wheel(self.deadline_of, bucket_seconds)
        self.fired: list[tuple[str, float]] = []

    def deadline_of(self, key: str, bucket: Bucket) -> float | None:
        return self.deadlines[key] if key in self.deadlines and self.filed.get(key) is bucket else None

    def set(self, key: str, deadline: float) -> None:
        """The tracker's ``_file``: filed again when earlier than its bucket, or in the ordered one."""
        self.deadlines[key] = deadline
        index, filed = self.wheel.index(deadline), self.filed.get(key)
        if filed is None or index < filed.number or (index == filed.number and index in self.wheel.ordered):
            self.filed[key] = self.wheel.file(key, deadline)

    def advance(self, watermark: float) -> None:
        """The tracker's ``advance``: the wheel asked only from ``due_from`` on."""
        if watermark < self.wheel.due_from:
            return
        for key, bucket in self.wheel.due(watermark):
            if key not in self.deadlines or self.filed.get(key) is not bucket:
                continue  # stale
            deadline = self.deadlines[key]
            if deadline <= watermark:
                self.fired.append((key, deadline))
                del self.deadlines[key], self.filed[key]
            else:
                self.filed[key] = None
                self.set(key, deadline)


@settings(max_examples=300)
@given(
    size=st.sampled_from([1.0, 5.0, 10.0]),
    operations=st.lists(
        st.one_of(
            st.tuples(st.just("set"), st.sampled_from("abcdef"), st.floats(min_value=-20.0, max_value=60.0)),
            st.tuples(st.just("advance"), st.just(""), st.floats(min_value=0.01, max_value=15.0)),
        ),
        max_size=80,
    ),
)
def test_the_wheel_fires_every_deadline_once_the_watermark_passes_it(
    size: float, operations: list[tuple[str, str, float]]
) -> None:
    """However deadlines move, each fires at the first watermark at or after it (``due_from`` skips
    only watermarks with nothing due), and nothing fires early."""
    owner, watermark = WheelOwner(size), 0.0
    for operation, key, amount in operations:
        if operation == "set":
            owner.set(key, watermark + amount)
            continue
        watermark += amount
        pending = dict(owner.deadlines)
        owner.advance(watermark)
        due = {key: deadline for key, deadline in pending.items() if deadline <= watermark}
        assert dict(owner.fired) == due
        assert all(deadline > watermark for deadline in owner.deadlines.values())
        owner.fired.clear()


@settings(max_examples=300, deadline=None)
@given(
    moves=st.lists(
        st.tuples(
            st.sampled_from(["s1", "s2", "s3"]),
            st.sampled_from(["browse", "cart", "pay", "done"]),
            st.sampled_from(["step", "click", "click", "error", "exit"]),
            st.sampled_from([0.0, 0.5, 3.0, 9.5, 29.0, 31.0, 59.0, 61.0, 200.0, 601.0]),
        ),
        max_size=60,
    ),
    record=st.integers(min_value=1, max_value=7),
)
def test_in_order_events_in_records_lose_no_amount_to_a_late_timer(
    moves: list[tuple[str, str, str, float]], record: int
) -> None:
    """Whatever the sessions do, fed in order in records of any size, every deadline fires by the
    watermark that passes it: no amount of a timer comes after its window closed (an event that
    leaves its session on its step skips the wheel, ``add_events``), and each flow outcome, early
    check and end is counted once per visit or session."""
    started: list[ClickEvent] = []
    tracker = SessionTracker(MAP, WindowedCounts(60), cold_start=0.0, on_session_start=started.append)
    events, ts = [], 1_795_514_400.0
    for number, (session, step, kind, gap) in enumerate(moves):
        ts += gap
        events.append(ClickEvent(f"e{number}", ts, session, "shop", step, "web", kind, target="buy"))
    closed: list[Window] = []
    for start in range(0, len(events), record):
        closed += tracker.add_events(events[start : start + record])
    closed += tracker.advance(ts + 3600.0)
    assert tracker.late_amounts == 0
    totals: Counter[str] = Counter()
    for window in closed:
        for fields in window.counts.values():
            for name, amount in fields.items():
                totals[name] += int(amount)
    assert totals["early_progressed"] + totals["early_waiting"] <= totals["step_visits"]
    assert len(tracker) == 0 and totals["sessions_ended"] == len(started)
