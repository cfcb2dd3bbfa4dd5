"""Stage 2: partial windows from several partitions reduced to final windows, and their gauges."""

from __future__ import annotations

import math

from prometheus_client import CollectorRegistry

from frictionwatch.contract import ClickEvent, ContactEvent
from frictionwatch.journeymap import JourneyMap
from frictionwatch.streams.exposition import FrictionMetrics
from frictionwatch.streams.friction import Friction
from frictionwatch.streams.reduce import Partial, WindowReducer, split_by_group
from frictionwatch.streams.stage import StageSettings, Touch
from frictionwatch.streams.windows import Touchpoint, Window

CART = Touchpoint("purchase", "cart", "web")


def partial(partition: int, start: float, amount: float, partitions: int = 3) -> Partial:
    return Partial("journey.clicks", partition, partitions, "purchase", start, start + 60, {CART: {"clicks": amount}})


def test_a_window_is_final_when_every_partition_reported() -> None:
    reducer = WindowReducer(max_wait=30)
    assert reducer.add(partial(0, 0, 1), now=0) == []
    assert reducer.add(partial(2, 0, 2), now=1) == []
    (window,) = reducer.add(partial(1, 0, 4), now=2)
    assert (window.start, window.complete, window.counts[CART]["clicks"]) == (0, True, 7)


def test_a_silent_partition_holds_a_window_back_only_for_max_wait() -> None:
    reducer = WindowReducer(max_wait=30)
    reducer.add(partial(0, 0, 1), now=100)
    reducer.add(partial(1, 0, 1), now=101)
    assert reducer.expire(now=129) == []
    (window,) = reducer.expire(now=130)
    assert (window.partitions_reported, window.complete) == (2, False)
    assert reducer.add(partial(2, 0, 5), now=131) == [] and reducer.late_partials == 1


def test_a_partition_behind_is_waited_for_and_one_past_the_window_is_not() -> None:
    # A backlog: partition 2 is minutes of event time behind, but alive (its partials keep coming).
    reducer = WindowReducer(max_wait=30)
    reducer.add(partial(0, 600, 1), now=100)
    reducer.add(partial(1, 600, 1), now=100)
    released = []
    for second in range(0, 120, 10):  # two minutes of wall clock, partition 2 catching up
        released += reducer.add(partial(2, 5 * second, 1), now=100 + second) + reducer.expire(now=105 + second)
    assert 600 not in [window.start for window in released]  # still waiting: partition 2 is alive
    (window,) = reducer.add(partial(2, 600, 1), now=230)
    assert (window.start, window.complete) == (600, True)
    # Partition 1 reports window 720 but not 660: it had no events there, so 660 doesn't wait for it.
    reducer.add(partial(0, 660, 1), now=231)
    reducer.add(partial(2, 660, 1), now=231)
    (window,) = reducer.add(partial(1, 720, 1), now=232)
    assert (window.start, window.partitions_reported) == (660, 2)


def test_windows_leave_in_order_and_duplicates_are_ignored() -> None:
    reducer = WindowReducer(max_wait=30)
    reducer.add(partial(0, 0, 1, partitions=2), now=0)
    reducer.add(partial(0, 60, 1, partitions=2), now=0)
    reducer.add(partial(0, 60, 1, partitions=2), now=0)  # re-delivered
    assert reducer.duplicate_partials == 1
    final = reducer.add(partial(1, 60, 1, partitions=2), now=1)  # 60 is complete: 0 must leave first
    assert [(w.start, w.complete) for w in final] == [(0, False), (60, True)]


def test_partials_round_trip_and_split_by_group() -> None:
    queue = Touchpoint(channel="phone", queue="billing")
    window = Window(0.0, 60.0, {CART: {"responses": 2.0}, queue: {"responses": 1.0}}, {queue: ["k-1"]})
    parts = split_by_group("journey.feedback", 1, 4, window, ["purchase", "support", "phone", "chat"])
    assert [(p.group, dict(p.counts)) for p in parts] == [
        ("purchase", {CART: {"responses": 2.0}}), ("support", {}), ("phone", {queue: {"responses": 1.0}}), ("chat", {}),
    ]  # fmt: skip
    assert Partial.from_json(parts[0].to_json()) == parts[0]
    assert Partial.from_json(parts[2].to_json()).examples == {queue: ["k-1"]}
    touch = Touch("cust-1", 5.5, "web", "session", CART)
    assert Touch.from_json(touch.to_json()) == touch


def build(journey_map: JourneyMap, registry: CollectorRegistry, now: list[float]) -> Friction:
    partitions = {"journey.clicks": 1, "journey.contacts": 1, "journey.feedback": 1, "touches": 1}
    kinds = {"journey.clicks": "clicks", "journey.contacts": "contacts", "journey.feedback": "feedback",
             "touches": "touches"}  # fmt: skip
    return Friction(
        journey_map, FrictionMetrics(registry, journey_map, clock=lambda: now[0]), kinds, partitions,  # type: ignore[arg-type]
        windows_topic="windows", touches_topic="touches", settings=StageSettings(allowed_lateness=0, cold_start=0),
        clock=lambda: now[0],
    )  # fmt: skip


def click(ts: float, session: str, step: str, kind: str = "step", customer: str | None = None) -> ClickEvent:
    return ClickEvent(f"{session}-{ts}", ts, session, "purchase", step, "web", kind, customer)


def test_stage_one_and_two_end_to_end_without_kafka(journey_map: JourneyMap) -> None:
    registry, now = CollectorRegistry(), [1000.0]
    friction = build(journey_map, registry, now)
    out = friction.events("journey.clicks", 0, [click(0, "a", "cart", customer="c1"), click(10, "a", "checkout")])
    assert [o.topic for o in out] == ["touches"]  # the session start, keyed by customer
    out = friction.events("journey.clicks", 0, [click(70, "b", "cart"), click(75, "b", "cart", "exit")])
    partials = [o for o in out if o.topic == "windows"]
    assert [o.key for o in partials] == [b"purchase", b"support"]  # window [0, 60) closed, one partial per group
    for item in partials:
        friction.partial(item.value)
    labels = {"journey": "purchase", "stage": "purchase", "step": "cart", "channel": "web"}
    assert registry.get_sample_value("frictionwatch_step_sessions_entered_total", labels) == 1
    assert registry.get_sample_value("frictionwatch_window_step_sessions_entered", labels) == 1
    # a's move on from the cart came within the cart's progress timeout of the stream's start,
    # when no visit could have stalled yet: left out of the flow ratio (streams/sessions.py)
    assert math.isnan(registry.get_sample_value("frictionwatch_window_step_flow_ratio", labels) or 0.0)
    checkout = {**labels, "step": "checkout"}
    assert math.isnan(registry.get_sample_value("frictionwatch_window_step_flow_ratio", checkout) or 0.0)
    end = registry.get_sample_value("frictionwatch_window_end_timestamp_seconds", {"source": "journey.clicks",
                                                                                    "group": "purchase"})  # fmt: skip
    assert end == 60.0
    assert registry.get_sample_value("frictionwatch_window_close_delay_seconds", {"topic": "journey.clicks"}) == 940
    # a took 10 s from the cart to the checkout; c takes 15 (its histogram child is kept from a's)
    friction.events("journey.clicks", 0, [click(80, "c", "cart"), click(95, "c", "checkout")])
    assert registry.get_sample_value("frictionwatch_step_to_next_seconds_count", labels) == 2
    assert registry.get_sample_value("frictionwatch_step_to_next_seconds_sum", labels) == 25


def test_contact_gauges_from_final_windows(journey_map: JourneyMap) -> None:
    registry, now = CollectorRegistry(), [0.0]
    friction = build(journey_map, registry, now)

    def contact(event_id: str, ts: float, contact_id: str, kind: str) -> ContactEvent:
        return ContactEvent(event_id, ts, contact_id, "phone", "billing", kind)

    events = [
        contact("1", 1, "k1", "queued"), contact("2", 11, "k1", "answered"),
        contact("3", 2, "k2", "queued"), contact("4", 40, "k2", "abandoned"),
        contact("5", 3, "k3", "queued"), contact("6", 5, "k3", "abandoned"),
        contact("7", 61, "k4", "queued"),
    ]  # fmt: skip
    for item in friction.events("journey.contacts", 0, events):
        if item.topic == "windows":
            friction.partial(item.value)
    queue = {"channel": "phone", "queue": "billing"}
    assert registry.get_sample_value("frictionwatch_window_contacts_abandonment_ratio", queue) == 0.5
    assert registry.get_sample_value("frictionwatch_window_contacts_average_speed_of_answer_seconds", queue) == 10
    assert registry.get_sample_value("frictionwatch_window_contacts_short_abandoned", queue) == 1
    assert registry.get_sample_value("frictionwatch_contact_wait_seconds_count", {**queue, "outcome": "abandoned"}) == 2


def test_every_series_exists_before_the_first_event(journey_map: JourneyMap) -> None:
    registry = CollectorRegistry()
    FrictionMetrics(registry, journey_map)
    for journey, step, channel in journey_map.touchpoints():
        labels = {"journey": journey, "stage": step.stage, "step": step.name, "channel": channel}
        assert registry.get_sample_value("frictionwatch_step_dropoffs_total", labels) == 0
        assert registry.get_sample_value("frictionwatch_window_step_flow_ratio", labels) is not None
    for channel, queue in journey_map.queues():
        assert (
            registry.get_sample_value("frictionwatch_contacts_offered_total", {"channel": channel, "queue": queue}) == 0
        )


def test_touches_packed_per_partition_read_back_whole() -> None:
    touches = [Touch("cust-1", 5.5, "web", "session", CART), Touch("cust-2", 6.0, "phone", "contact", CART)]
    packed = b"[" + b",".join(touch.to_json() for touch in touches) + b"]"
    assert Touch.many_from_json(packed) == touches
    assert Touch.many_from_json(touches[0].to_json()) == touches[:1]


def test_a_revoked_partition_leaves_no_watermark_or_lag_series(journey_map: JourneyMap) -> None:
    registry, now = CollectorRegistry(), [1000.0]
    friction = build(journey_map, registry, now)
    friction.events("journey.clicks", 0, [click(500, "a", "cart")])
    friction.events("journey.contacts", 0, [])
    friction.metrics.consumer_lag("journey.clicks", 0, 42)
    friction.metrics.consumer_lag("journey.contacts", 0, 7)
    clicks, contacts = {"topic": "journey.clicks", "partition": "0"}, {"topic": "journey.contacts", "partition": "0"}
    assert registry.get_sample_value("frictionwatch_watermark_timestamp_seconds", clicks) == 500
    assert registry.get_sample_value("frictionwatch_watermark_delay_seconds", clicks) == 500
    assert registry.get_sample_value("frictionwatch_consumer_lag", clicks) == 42

    friction.revoke("journey.clicks", 0)
    for name in ("frictionwatch_watermark_timestamp_seconds", "frictionwatch_watermark_delay_seconds"):
        assert registry.get_sample_value(name, clicks) is None
    assert registry.get_sample_value("frictionwatch_consumer_lag", clicks) is None
    assert registry.get_sample_value("frictionwatch_consumer_lag", contacts) == 7  # still owned: kept
    friction.revoke("journey.clicks", 0)  # revoked twice (or never seen): nothing to remove, no error

    friction.events("journey.clicks", 0, [click(600, "b", "cart")])  # assigned again: the series come back
    assert registry.get_sample_value("frictionwatch_watermark_timestamp_seconds", clicks) == 600
