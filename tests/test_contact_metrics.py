"""Exact values of the contact-centre and customer-continuity metrics on hand-written events."""

from __future__ import annotations

from collections import defaultdict

import pytest

from frictionwatch.contract import ContactEvent
from frictionwatch.streams.contacts import ContactCentre, contact_ratios
from frictionwatch.streams.customers import CustomerContinuity
from frictionwatch.streams.windows import Touchpoint, Window, WindowedCounts

T0 = 1_795_514_400.0  # 2026-11-24T10:00:00Z, a multiple of the 60 s window
HOUR = 3600.0
DAY = 24 * HOUR
BILLING = Touchpoint(channel="phone", queue="billing")
CHAT = Touchpoint(channel="chat", queue="orders")
PHONE = BILLING


def totals(windows: list[Window]) -> dict[Touchpoint, dict[str, float]]:
    """Every field's amount per touchpoint, summed over ``windows``."""
    summed: dict[Touchpoint, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for window in windows:
        for place, fields in window.counts.items():
            for name, amount in fields.items():
                summed[place][name] += amount
    return {place: dict(fields) for place, fields in summed.items()}


class Centre:
    """Feeds contact events, given as seconds after T0, to a ContactCentre with 60 s windows."""

    def __init__(self, **options: float) -> None:
        self.centre = ContactCentre(**options)
        self.windows = WindowedCounts(60)
        self.waits: list[float | None] = []
        self.count = 0

    def __call__(
        self, at: float, contact: str, kind: str, wait: float | None = None, place: Touchpoint = BILLING
    ) -> bool:
        self.count += 1
        event = ContactEvent(f"e{self.count}", T0 + at, contact, place.channel, place.queue, kind, wait_seconds=wait)
        accepted = self.centre.add(event, self.windows)
        self.waits.append(self.centre.last_wait)
        return accepted

    def fields(self, place: Touchpoint = BILLING) -> dict[str, float]:
        """The place's amounts summed over every window (all are closed first)."""
        return totals(self.windows.advance(T0 + 30 * DAY)).get(place, {})


# -- contact centre ------------------------------------------------------------------


def test_short_abandon_boundary_5_seconds_is_not_short() -> None:
    run = Centre()
    run(0, "k1", "abandoned", wait=5.0)
    run(0, "k2", "abandoned", wait=4.999)
    run(0, "k3", "queued")
    run(5, "k3", "abandoned")  # derived: exactly 5.0, not short
    run(0, "k4", "queued")
    run(4, "k4", "abandoned")  # derived: 4.0, short
    assert run.waits == [5.0, 4.999, None, 5.0, None, 4.0]
    assert run.fields() == {
        "abandoned": 2.0,
        "abandoned_wait_seconds_sum": 10.0,
        "short_abandoned": 2.0,
        "offered": 2.0,
    }


def test_short_abandon_threshold_is_configurable() -> None:
    run = Centre(short_abandon_seconds=10.0)
    run(0, "k1", "abandoned", wait=9.5)
    run(0, "k2", "abandoned", wait=10.0)
    assert run.fields() == {"short_abandoned": 1.0, "abandoned": 1.0, "abandoned_wait_seconds_sum": 10.0}


def test_service_level_boundary_20_seconds_is_within() -> None:
    run = Centre()
    run(0, "k1", "answered", wait=20.0)
    run(0, "k2", "answered", wait=20.001)
    run(0, "k3", "answered", wait=0.0)
    run(0, "k4", "abandoned", wait=30.0)
    fields = run.fields()
    assert fields["answered_within_service_level"] == 2.0
    assert contact_ratios(fields)["service_level"] == 0.5  # 2 / (3 answered + 1 abandoned)


def test_average_speed_of_answer_and_abandonment_ratio() -> None:
    run = Centre()
    for n, wait in enumerate([10.0, 20.0, 45.0]):
        run(0, f"a{n}", "queued")
        run(wait, f"a{n}", "answered")
    run(0, "b1", "queued")
    run(90, "b1", "abandoned")
    run(0, "b2", "queued")
    run(2, "b2", "abandoned")  # short: left out of the ratio
    fields = run.fields()
    assert fields == {
        "offered": 5.0,
        "answered": 3.0,
        "answered_wait_seconds_sum": 75.0,
        "answered_within_service_level": 2.0,
        "abandoned": 1.0,
        "abandoned_wait_seconds_sum": 90.0,
        "short_abandoned": 1.0,
    }
    assert contact_ratios(fields) == {
        "abandonment_ratio": 0.25,
        "average_speed_of_answer": 25.0,
        "service_level": 0.5,
        "average_time_to_abandon": 90.0,
    }


def test_wait_from_the_event_wins_over_the_queued_time() -> None:
    run = Centre()
    run(0, "k1", "queued")
    run(30, "k1", "answered", wait=12.5)  # e.g. the source excludes IVR time
    assert run.waits[-1] == 12.5
    assert run.fields()["answered_wait_seconds_sum"] == 12.5


def test_wait_is_derived_from_the_latest_queued_event() -> None:
    run = Centre()
    run(0, "k1", "queued")
    run(15, "k1", "answered")
    run(100, "k1", "queued", place=CHAT)  # queued again (same contact, another queue)
    run(104, "k1", "answered", place=CHAT)
    assert run.waits == [None, 15.0, None, 4.0]
    assert run.fields(CHAT) == {
        "offered": 1.0,
        "answered": 1.0,
        "answered_wait_seconds_sum": 4.0,
        "answered_within_service_level": 1.0,
    }


def test_unknown_waits_are_counted_but_left_out_of_wait_ratios() -> None:
    run = Centre()
    run(0, "k1", "answered")  # no queued event and no wait_seconds
    run(0, "k2", "abandoned")
    run(10, "k3", "answered")  # answered before its queued event arrives (out of order)
    run(0, "k3", "queued")
    run(0, "k4", "answered", wait=8.0)
    assert run.waits == [None, None, None, None, 8.0]
    fields = run.fields()
    assert fields == {
        "answered": 3.0,
        "wait_unknown": 3.0,
        "answered_wait_unknown": 2.0,
        "abandoned": 1.0,  # an abandon of unknown wait cannot be shown to be short
        "offered": 1.0,
        "answered_wait_seconds_sum": 8.0,
        "answered_within_service_level": 1.0,
    }
    assert contact_ratios(fields) == {
        "abandonment_ratio": 0.25,
        "average_speed_of_answer": 8.0,  # over the one answer whose wait is known
        "service_level": 1.0,
        "average_time_to_abandon": None,
    }


def test_resolved_and_transferred_are_counted() -> None:
    run = Centre()
    run(0, "k1", "resolved")
    run(0, "k2", "transferred")
    run(1, "k3", "resolved")
    assert run.fields() == {"resolved": 2.0, "transferred": 1.0}
    assert run.waits == [None, None, None]


def test_each_event_lands_in_the_window_of_its_own_ts() -> None:
    run = Centre()
    run(50, "k1", "queued")
    run(70, "k1", "answered")
    closed = run.windows.advance(T0 + 120)
    assert [(window.start - T0, dict(window.counts[BILLING])) for window in closed] == [
        (0.0, {"offered": 1.0}),
        (60.0, {"answered": 1.0, "answered_wait_seconds_sum": 20.0, "answered_within_service_level": 1.0}),
    ]


def test_a_late_event_is_refused_but_its_state_is_kept() -> None:
    run = Centre()
    run(10, "k1", "queued")
    run.windows.advance(T0 + 200)  # closes [T0, T0 + 60)
    assert run(20, "k2", "queued") is False
    assert run(30, "k1", "answered") is False
    assert run.waits[-1] == 20.0  # the wait is still observed for the histogram
    assert run(230, "k2", "answered") is True
    assert run.waits[-1] == 210.0  # derived from the late queued event
    assert run.fields() == {"answered": 1.0, "answered_wait_seconds_sum": 210.0}


def test_contact_ratios_are_none_without_denominators() -> None:
    assert contact_ratios({}) == dict.fromkeys(
        ("abandonment_ratio", "average_speed_of_answer", "service_level", "average_time_to_abandon")
    )
    assert contact_ratios({"abandoned": 2.0, "abandoned_wait_seconds_sum": 60.0}) == {
        "abandonment_ratio": 1.0,
        "average_speed_of_answer": None,
        "service_level": 0.0,
        "average_time_to_abandon": 30.0,
    }


def test_expiry_drops_contacts_exactly_at_the_timeout() -> None:
    run = Centre(contact_timeout=HOUR)
    run(0, "old", "queued")
    run(100, "idle", "queued")
    run(0, "busy", "queued")
    run(1000, "busy", "answered")
    assert len(run.centre) == 3
    assert run.centre.expire(T0 + HOUR - 0.001) == 0
    assert run.centre.expire(T0 + HOUR) == 1  # "old": its last event is exactly one timeout ago
    assert len(run.centre) == 2
    assert run.centre.expire(T0 + 100 + HOUR - 0.001) == 0
    assert run.centre.expire(T0 + 100 + HOUR) == 1  # "idle"
    assert run.centre.expire(T0 + 1000 + HOUR - 0.001) == 0  # "busy" was seen again at 1000
    assert len(run.centre) == 1
    assert run.centre.expire(T0 + 1000 + HOUR) == 1
    assert len(run.centre) == 0
    assert run.centre.expire(T0 + 10 * DAY) == 0


def test_an_expired_contact_is_forgotten() -> None:
    run = Centre(contact_timeout=HOUR)
    run(0, "k1", "queued")
    run.centre.expire(T0 + HOUR)
    run(HOUR + 5, "k1", "answered")
    assert run.waits[-1] is None


@pytest.mark.parametrize(
    "options",
    [{"short_abandon_seconds": -1.0}, {"service_level_seconds": float("nan")}, {"contact_timeout": 0.0}],
)
def test_contact_centre_rejects_bad_settings(options: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        ContactCentre(**options)


# -- customer continuity ---------------------------------------------------------------

WEB = Touchpoint("purchase", "cart", "web")


class Customers:
    """Feeds touches, given as seconds after T0, to a CustomerContinuity with 60 s windows."""

    def __init__(self, repeat_horizon: float = DAY, max_touches: int = 4) -> None:
        self.continuity = CustomerContinuity(repeat_horizon, max_touches)
        self.windows = WindowedCounts(60)

    def session(self, at: float, channel: str = "web", customer: str = "c1") -> bool:
        return self.continuity.touch(customer, T0 + at, channel, "session", WEB, self.windows)

    def contact(self, at: float, place: Touchpoint, customer: str = "c1") -> bool:
        return self.continuity.touch(customer, T0 + at, place.channel, "contact", place, self.windows)

    def fields(self) -> dict[Touchpoint, dict[str, float]]:
        return totals(self.windows.advance(T0 + 30 * DAY))


def test_channel_switches_web_chat_phone_count_two() -> None:
    run = Customers()
    run.session(0)
    run.contact(120, CHAT)
    run.contact(600, PHONE)
    assert run.fields() == {CHAT: {"channel_switches": 1.0}, PHONE: {"repeat_contacts": 1.0, "channel_switches": 1.0}}


def test_repeat_contacts_across_channels_within_24_hours() -> None:
    run = Customers()
    run.contact(0, PHONE)
    run.contact(DAY - 1, CHAT)
    run.contact(DAY - 1 + DAY - 0.5, CHAT)  # repeat of the chat contact, same channel: no switch
    assert run.fields() == {CHAT: {"repeat_contacts": 2.0, "channel_switches": 1.0}}


def test_a_contact_24_hours_or_more_later_is_not_a_repeat() -> None:
    run = Customers()
    run.contact(0, PHONE, customer="c1")
    run.contact(DAY, CHAT, customer="c1")  # exactly 24 h: outside the horizon
    run.contact(0, PHONE, customer="c2")
    run.contact(DAY + 1, PHONE, customer="c2")
    assert run.fields() == {}


def test_a_customer_with_only_sessions_has_no_repeat_contacts() -> None:
    run = Customers()
    for at, channel in [(0, "web"), (60, "app"), (120, "web"), (180, "app")]:
        assert run.session(at, channel) is True
    assert run.fields() == {}


def test_customers_are_counted_apart() -> None:
    run = Customers()
    run.session(0, "web", customer="c1")
    run.contact(10, PHONE, customer="c2")
    run.contact(20, PHONE, customer="c3")
    assert run.fields() == {}


def test_a_session_long_before_the_contact_is_not_a_switch() -> None:
    run = Customers()
    run.session(0, "web")
    run.contact(DAY, PHONE)
    run.session(DAY + 10, "app")
    run.contact(DAY + 20, PHONE)  # after an app session, and a repeat of the phone contact
    assert run.fields() == {PHONE: {"repeat_contacts": 1.0, "channel_switches": 1.0}}


def test_many_sessions_between_contacts_do_not_hide_the_repeat() -> None:
    run = Customers(max_touches=2)
    run.contact(0, CHAT)
    for n in range(10):
        run.session(10 + n, "web")
    run.contact(100, CHAT)
    assert run.fields() == {CHAT: {"repeat_contacts": 1.0, "channel_switches": 1.0}}  # web -> chat


def test_out_of_order_touches_are_judged_once_against_earlier_ones() -> None:
    run = Customers()
    run.session(0, "web")
    run.contact(100, PHONE)  # switch from web
    run.contact(80, CHAT)  # arrives late: compared with the web session at 0, not with the phone contact
    run.contact(200, PHONE)  # the latest earlier touch is the phone contact at 100: no switch
    assert run.fields() == {PHONE: {"channel_switches": 1.0, "repeat_contacts": 1.0}, CHAT: {"channel_switches": 1.0}}


def test_a_late_touch_is_refused_but_remembered() -> None:
    run = Customers()
    run.contact(0, PHONE)
    run.windows.advance(T0 + 200)
    assert run.contact(30, CHAT) is False  # a repeat and a switch, but its window has closed
    assert run.session(40, "web") is True  # nothing to count
    assert run.contact(300, CHAT) is True  # follows the web session at 40 and the chat contact at 30
    assert run.fields() == {CHAT: {"repeat_contacts": 1.0, "channel_switches": 1.0}}


def test_customer_expiry_at_the_horizon() -> None:
    run = Customers(repeat_horizon=HOUR)
    run.session(0, customer="c1")
    run.contact(0, PHONE, customer="c2")
    run.contact(500, PHONE, customer="c2")
    assert len(run.continuity) == 2
    assert run.continuity.expire(T0 + HOUR - 0.001) == 0
    assert run.continuity.expire(T0 + HOUR) == 1
    assert len(run.continuity) == 1
    assert run.continuity.expire(T0 + 500 + HOUR - 0.001) == 0
    assert run.continuity.expire(T0 + 500 + HOUR) == 1
    assert len(run.continuity) == 0


def test_unknown_touch_kind_is_an_error() -> None:
    with pytest.raises(ValueError):
        Customers().continuity.touch("c1", T0, "web", "visit", WEB, WindowedCounts(60))
