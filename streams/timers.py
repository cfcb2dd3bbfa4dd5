"""Event-time timers: "call me back when the watermark passes this time" (no I/O).

Sessions end after inactivity and step visits stall after a progress timeout; both are
deadlines in event time that move with every event. :class:`Timers` keeps one deadline
per key in coarse time buckets, so moving a deadline is two set operations and firing
the due ones never scans state that isn't due.

>>> timers = Timers(bucket_seconds=10)
>>> timers.schedule("s-1", 105.0)
>>> timers.schedule("s-2", 131.0)
>>> timers.schedule("s-1", 142.0)      # moved by a new event
>>> timers.due(130.0)
[]
>>> timers.due(150.0)
[('s-2', 131.0), ('s-1', 142.0)]
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class Timers(Generic[K]):
    """One pending deadline per key, fired in deadline order once the watermark passes it."""

    def __init__(self, bucket_seconds: float = 10.0) -> None:
        self.bucket_seconds = bucket_seconds
        self.deadlines: dict[K, float] = {}
        self.buckets: dict[float, set[K]] = {}
        self.bucket_heap: list[float] = []

    def __len__(self) -> int:
        return len(self.deadlines)

    def _bucket(self, deadline: float) -> float:
        return math.floor(deadline / self.bucket_seconds) * self.bucket_seconds

    def schedule(self, key: K, deadline: float) -> None:
        """Set (or move) the deadline of ``key``."""
        self.cancel(key)
        self.deadlines[key] = deadline
        bucket = self._bucket(deadline)
        members = self.buckets.get(bucket)
        if members is None:
            members = self.buckets[bucket] = set()
            heapq.heappush(self.bucket_heap, bucket)
        members.add(key)

    def cancel(self, key: K) -> None:
        deadline = self.deadlines.pop(key, None)
        if deadline is not None:
            self.buckets[self._bucket(deadline)].discard(key)

    def due(self, watermark: float) -> list[tuple[K, float]]:
        """Remove and return every (key, deadline) with deadline <= ``watermark``, earliest first."""
        fired: list[tuple[K, float]] = []
        heap = self.bucket_heap
        while heap and heap[0] <= watermark:
            bucket = heap[0]
            members = self.buckets[bucket]
            ready = [key for key in members if self.deadlines[key] <= watermark]
            for key in ready:
                members.discard(key)
                fired.append((key, self.deadlines.pop(key)))
            if members:
                break  # the rest of this bucket is due later
            heapq.heappop(heap)
            del self.buckets[bucket]
        fired.sort(key=lambda item: item[1])
        return fired
