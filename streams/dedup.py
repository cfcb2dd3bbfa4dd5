"""Recognising re-delivered events by their ``event_id`` within a bounded horizon (no I/O).

A producer that retries, or a replay of a topic, can deliver an event twice. Each
partition keeps the ids of its recent events: an id seen again is a duplicate, skipped
and counted (``frictionwatch_events_duplicate_total``), so re-deliveries don't inflate the
metrics. The memory is bounded twice: ids older than ``horizon`` seconds of event time
behind the partition's newest event are forgotten, and at most ``max_ids`` are kept (the
oldest go first), so at high rates the horizon is ``max_ids`` events rather than
``horizon`` seconds. A duplicate arriving after its id was forgotten counts again.

>>> from collections import namedtuple
>>> Event = namedtuple("Event", "event_id ts")
>>> recent = RecentEventIds(horizon=60, max_ids=1000)
>>> recent.fresh([Event("e-1", 100.0), Event("e-1", 101.0), Event("e-2", 101.0)])
[Event(event_id='e-1', ts=100.0), Event(event_id='e-2', ts=101.0)]
>>> recent.fresh([Event("e-3", 200.0), Event("e-1", 200.0)])  # e-1 is beyond the horizon now
[Event(event_id='e-3', ts=200.0), Event(event_id='e-1', ts=200.0)]
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Protocol, TypeVar


class _Identified(Protocol):
    @property
    def event_id(self) -> str: ...

    @property
    def ts(self) -> float: ...


E = TypeVar("E", bound=_Identified)


class RecentEventIds:
    """The event ids one partition saw within ``horizon`` seconds, at most ``max_ids`` of them.

    Args:
        horizon: seconds of event time an id is remembered behind the newest event.
        max_ids: the most ids remembered (memory bound: about 100 bytes each).
    """

    def __init__(self, horizon: float = 600.0, max_ids: int = 200_000) -> None:
        if horizon < 0 or max_ids < 1:
            raise ValueError(f"horizon must be >= 0 and max_ids >= 1, got {horizon} and {max_ids}")
        self.horizon = horizon
        self.max_ids = max_ids
        self.ids: set[str] = set()
        self.order: deque[tuple[float, str]] = deque()
        self.newest = float("-inf")

    def __len__(self) -> int:
        return len(self.ids)

    def fresh(self, events: Iterable[E]) -> list[E]:
        """The events whose ids were not seen within the horizon, in order; remembers them.

        Each event is judged after the ones before it (a repeat within ``events`` is a duplicate
        too), and ids are forgotten as each event moves the horizon: one call per record, not
        per event, is all that differs from judging them one at a time.
        """
        ids, order, horizon, max_ids = self.ids, self.order, self.horizon, self.max_ids
        newest = self.newest
        kept: list[E] = []
        for event in events:
            event_id = event.event_id
            if event_id in ids:
                continue
            ts = event.ts
            ids.add(event_id)
            order.append((ts, event_id))
            if ts > newest:
                newest = ts
            before = newest - horizon
            if order[0][0] < before or len(order) > max_ids:  # about one id an event, once the horizon is full
                while order and (order[0][0] < before or len(order) > max_ids):
                    ids.discard(order.popleft()[1])
            kept.append(event)
        self.newest = newest
        return kept
