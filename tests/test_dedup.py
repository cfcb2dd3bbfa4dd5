"""The dedup of recent event ids (streams/dedup.py): a record judged in one call is judged as
its events would be one at a time, forgetting included."""

from __future__ import annotations

from typing import NamedTuple

from hypothesis import given, settings
from hypothesis import strategies as st

from frictionwatch.streams.dedup import RecentEventIds


class Event(NamedTuple):
    event_id: str
    ts: float


events = st.lists(
    st.builds(Event, st.sampled_from([f"e{index}" for index in range(12)]), st.floats(0, 300).map(round)),
    max_size=40,
)


@given(records=st.lists(events, max_size=6), horizon=st.sampled_from([0.0, 30.0, 120.0]), max_ids=st.integers(1, 8))
@settings(max_examples=300, deadline=None)
def test_a_record_in_one_call_is_judged_as_its_events_one_at_a_time(
    records: list[list[Event]], horizon: float, max_ids: int
) -> None:
    whole, single = RecentEventIds(horizon, max_ids), RecentEventIds(horizon, max_ids)
    for record in records:
        expected = [event for event in record if single.fresh([event])]
        assert whole.fresh(record) == expected
        assert whole.ids == single.ids and list(whole.order) == list(single.order)
        assert len(whole) <= max_ids


def test_repeats_within_a_record_and_ids_past_the_horizon() -> None:
    recent = RecentEventIds(horizon=60, max_ids=3)
    first = recent.fresh([Event("a", 0), Event("b", 1), Event("a", 2)])
    assert first == [Event("a", 0), Event("b", 1)]  # the repeat of a within the record is skipped
    assert recent.fresh([Event("c", 70), Event("a", 71)]) == [Event("c", 70), Event("a", 71)]  # a forgotten
    assert recent.fresh([Event("d", 72), Event("a", 72)]) == [Event("d", 72)]
    assert recent.fresh([Event("e", 73), Event("c", 74)]) == [Event("e", 73), Event("c", 74)]  # max_ids: c went
    assert len(recent) == 3
