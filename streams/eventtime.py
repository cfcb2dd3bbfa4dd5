"""Event time that survives producers with wrong clocks (no I/O).

Three clocks tell when an event happened (as Snowplow derives its true time):

* ``ts``: the device's clock when the event happened;
* ``sent_ts`` (optional): the device's clock when it sent the record (or the batch);
* the **arrival**: when the record reached Kafka, its record timestamp, and never later
  than the worker's clock (the record can't have arrived after it was read; this also
  guards against a producer whose own clock stamps the record).

With ``sent_ts`` the device's clock was off by ``sent_ts - arrival`` (positive: fast), so
the event happened at ``ts - (sent_ts - arrival)``. Without it, an event can't have
happened after it arrived: a ``ts`` ahead of the arrival means a fast clock, and the event
time becomes the arrival. Offsets within ``tolerance`` are delivery delay or clocks a
little apart, not skew: ``ts`` stands. A device whose clock is *behind* and that sends no
``sent_ts`` can't be told from a late delivery; its events keep their ``ts`` and count as
late when their windows have closed.

So an event time is never more than ``tolerance`` past its arrival, and a partition's
watermark (the largest event time seen) can't be moved ahead of the arrivals by any
device, however many of them are fast.

>>> clock = EventClock(tolerance=5.0)
>>> clock.event_time(1000.0, None, arrival=1000.2)     # an ordinary event
(1000.0, None)
>>> clock.event_time(1290.0, None, arrival=1000.0)     # 290 s ahead of its arrival
(1000.0, 290.0)
>>> clock.event_time(1590.0, 1600.0, arrival=1000.0)   # a batch whose clock is 10 min fast
(990.0, 600.0)
>>> clock.event_time(1390.0, 1400.0, arrival=5000.0)   # an hour behind
(4990.0, -3600.0)
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

from frictionwatch.contract import Event

#: Default seconds an event may be ahead of its arrival (or its clock off) without being skew.
DEFAULT_TOLERANCE = 5.0


class ClockReading(NamedTuple):
    """How far one event's device clock was off, in seconds (positive: fast, ahead).

    ``exact`` when measured from ``sent_ts``; otherwise a lower bound (``ts`` ahead of arrival).
    ``corrected`` when the event's time was corrected for it (off by more than the tolerance).
    """

    channel: str
    offset: float
    exact: bool
    corrected: bool


def arrival_of(record_timestamp: float | None, now: float | None) -> float | None:
    """When a record arrived: its Kafka timestamp, never later than the worker's clock ``now``.

    >>> arrival_of(1000.0, 1002.0), arrival_of(1090.0, 1002.0), arrival_of(None, 1002.0), arrival_of(None, None)
    (1000.0, 1002.0, 1002.0, None)
    """
    if record_timestamp is None or record_timestamp <= 0:  # Kafka's "no timestamp" is -1
        return now
    return record_timestamp if now is None else min(record_timestamp, now)


class EventClock:
    """Corrects the event times of a record's events by what the three clocks tell.

    Args:
        tolerance: seconds an event may be ahead of its arrival, or its ``sent_ts`` off the
            arrival, before its device clock counts as off and its time is corrected.
    """

    def __init__(self, tolerance: float = DEFAULT_TOLERANCE) -> None:
        if not tolerance >= 0:
            raise ValueError(f"clock tolerance must be >= 0 seconds, got {tolerance!r}")
        self.tolerance = float(tolerance)

    def event_time(self, ts: float, sent_ts: float | None, arrival: float | None) -> tuple[float, float | None]:
        """(event time, the device clock's offset when it could be measured, else None)."""
        if arrival is None:
            return ts, None
        if sent_ts is not None:
            offset = sent_ts - arrival
            corrected = ts - offset if abs(offset) > self.tolerance else ts
            return min(corrected, arrival + self.tolerance), offset
        ahead = ts - arrival
        if ahead > self.tolerance:
            return arrival, ahead
        return ts, None

    def correct(self, events: list[Event], arrival: float | None) -> tuple[list[Event], list[ClockReading]]:
        """The events with their times corrected (``device_ts`` keeps the original ``ts``), and
        a reading of every device clock that could be measured.

        The common case, nothing to correct, costs a comparison per event and returns
        ``events`` itself.
        """
        if arrival is None:
            return events, []
        limit = arrival + self.tolerance
        for event in events:
            if event.sent_ts is not None or event.ts > limit:
                break
        else:
            return events, []
        out: list[Event] = []
        readings: list[ClockReading] = []
        for event in events:
            if event.sent_ts is not None or event.ts > limit:
                event, reading = self.correct_one(event, arrival)
                if reading is not None:
                    readings.append(reading)
            out.append(event)
        return out, readings

    def correct_one(self, event: Event, arrival: float | None) -> tuple[Event, ClockReading | None]:
        """One event, corrected (see :meth:`correct`), and its clock reading if one was measured."""
        ts, offset = self.event_time(event.ts, event.sent_ts, arrival)
        if ts != event.ts:
            event = dataclasses.replace(event, ts=ts, device_ts=event.ts)
        if offset is None:
            return event, None
        return event, ClockReading(event.channel or "", offset, event.sent_ts is not None, event.device_ts is not None)
