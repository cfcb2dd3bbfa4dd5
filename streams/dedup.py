"""Recognising re-delivered events by their ``event_id`` within a bounded horizon (no I/O).

A producer that retries, or a replay of a topic, can deliver an event twice. Each
partition keeps the ids of its recent events: an id seen again is a duplicate, skipped
and counted (``frictionwatch_events_duplicate_total``), so re-deliveries don't inflate the
metrics. The memory is bounded twice: ids older than ``horizon`` seconds of event time
behind the partition's newest event are forgotten, and at most ``max_ids`` are kept (the
oldest go first), so at high rates the horizon is ``max_ids`` events rather than
``horizon`` seconds. A duplicate arriving after its id was forgotten counts again.

>>> recent = RecentEventIds(horizon=60, max_ids=1000)
>>> recent.seen("e-1", ts=100.0), recent.seen("e-1", ts=101.0), recent.seen("e-2", ts=101.0)
(False, True, False)
>>> recent.seen("e-3", ts=200.0), recent.seen("e-1", ts=200.0)  # e-1 is beyond the horizon now
(False, False)
"""

from __future__ import annotations

from collections import deque


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

    def seen(self, event_id: str, ts: float) -> bool:
        """Whether ``event_id`` was seen within the horizon; remembers it if not."""
        if event_id in self.ids:
            return True
        self.ids.add(event_id)
        self.order.append((ts, event_id))
        if ts > self.newest:
            self.newest = ts
        before = self.newest - self.horizon
        if self.order[0][0] < before or len(self.order) > self.max_ids:  # _forget's test, without its call
            self._forget(before)
        return False

    def _forget(self, before: float) -> None:
        order, ids = self.order, self.ids
        while order and (order[0][0] < before or len(order) > self.max_ids):
            ids.discard(order.popleft()[1])
