"""Event-time timers: "call me back when the watermark passes this time" (no I/O).

Sessions end after inactivity and step visits stall after a progress timeout; both are
deadlines in event time that move with every event. :class:`Timers` keeps one deadline
per key in coarse time buckets, so moving a deadline is two set operations. Only the
bucket the watermark is inside of is ordered (a heap, built when the watermark enters
it), so firing the due timers never scans timers that aren't due.

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
import itertools
import math
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class Timers(Generic[K]):
    """One pending deadline per key, fired in deadline order once the watermark passes it."""

    def __init__(self, bucket_seconds: float = 10.0) -> None:
        self.bucket_seconds = bucket_seconds
        self.deadlines: dict[K, float] = {}
        self.buckets: dict[float, set[K]] = {}
        self.bucket_heap: list[float] = []
        self.ordered: dict[float, list[tuple[float, int, K]]] = {}  # heaps of partly due buckets
        self.sequence = itertools.count()

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
        ordered = self.ordered.get(bucket)
        if ordered is not None:
            heapq.heappush(ordered, (deadline, next(self.sequence), key))

    def cancel(self, key: K) -> None:
        deadline = self.deadlines.pop(key, None)
        if deadline is not None:
            self.buckets[self._bucket(deadline)].discard(key)  # a heap entry left behind is skipped

    def due(self, watermark: float) -> list[tuple[K, float]]:
        """Remove and return every (key, deadline) with deadline <= ``watermark``, earliest first."""
        fired: list[tuple[K, float]] = []
        heap = self.bucket_heap
        while heap and heap[0] <= watermark:
            bucket = heap[0]
            members = self.buckets[bucket]
            if bucket + self.bucket_seconds <= watermark:  # all of it is due
                fired += sorted(((key, self.deadlines.pop(key)) for key in members), key=lambda item: item[1])
                heapq.heappop(heap)
                del self.buckets[bucket]
                self.ordered.pop(bucket, None)
                continue
            ordered = self.ordered.get(bucket)
            if ordered is None:
                ordered = [(self.deadlines[key], next(self.sequence), key) for key in members]
                heapq.heapify(ordered)
                self.ordered[bucket] = ordered
            while ordered and ordered[0][0] <= watermark:
                deadline, _, key = heapq.heappop(ordered)
                if key in members and self.deadlines.get(key) == deadline:
                    members.discard(key)
                    fired.append((key, self.deadlines.pop(key)))
            break  # the rest of this bucket, and every later bucket, is due later
        return fired


class Bucket(list[str]):
    """The keys filed in one bucket of a :class:`Wheel` (stale entries included)."""

    __slots__ = ("number",)

    def __init__(self, index: int) -> None:
        super().__init__()
        self.number = index


class Wheel:
    """Timers whose deadlines live with their owners: the lean kind, for one entry per session.

    :class:`Timers` keeps every deadline in a dict and a set (over 100 bytes a key). Here the
    owner keeps its deadlines and the bucket it is filed in (a :class:`Bucket`, returned by
    :meth:`file`); the wheel keeps only the key in that bucket's list (8 bytes). A deadline
    that moves later needs nothing; one that moves before the bucket's start is filed again.
    Entries go stale (the owner moved or is gone): :meth:`due` hands out candidates, and the
    owner checks ``owner.filed is bucket`` and its real deadlines, then files itself again.

    ``deadline_of(key, bucket)`` gives a candidate's current deadline, or None when its entry in
    ``bucket`` is stale; it is asked only for the bucket the watermark is inside of.

    >>> deadlines = {"s-1": 105.0, "s-2": 131.0}
    >>> wheel = Wheel(lambda key, bucket: deadlines.get(key), bucket_seconds=10)
    >>> buckets = {key: wheel.file(key, deadline) for key, deadline in deadlines.items()}
    >>> wheel.due_from                  # no candidate for a watermark before the first bucket
    100
    >>> [key for key, _ in wheel.due(120.0)], wheel.due_from
    (['s-1'], 130)
    >>> [key for key, _ in wheel.due(135.0)], wheel.due_from   # bucket 130 is empty until its end
    (['s-2'], 140)
    """

    def __init__(self, deadline_of: Callable[[str, Bucket], float | None], bucket_seconds: float = 10.0) -> None:
        self.deadline_of = deadline_of
        self.bucket_seconds = bucket_seconds
        self.buckets: dict[int, Bucket] = {}
        self.bucket_heap: list[int] = []
        self.ordered: dict[int, list[tuple[float, int, str]]] = {}  # heap of the partly due bucket
        self.sequence = itertools.count()
        #: :meth:`due` has no candidate for a watermark before this (callers test it instead of calling
        #: :meth:`due` for every event): the start of the earliest bucket, or within the bucket the
        #: watermark is inside of, its next deadline
        self.due_from = math.inf

    def index(self, deadline: float) -> int:
        return math.floor(deadline / self.bucket_seconds)

    def file(self, key: str, deadline: float) -> Bucket:
        """File ``key`` in the bucket of ``deadline``; the owner keeps the bucket returned."""
        index = self.index(deadline)
        bucket = self.buckets.get(index)
        if bucket is None:
            bucket = self.buckets[index] = Bucket(index)
            heapq.heappush(self.bucket_heap, index)
            if index * self.bucket_seconds < self.due_from:
                self.due_from = index * self.bucket_seconds
        bucket.append(key)
        ordered = self.ordered.get(index)
        if ordered is not None:
            heapq.heappush(ordered, (deadline, next(self.sequence), key))
            if deadline < self.due_from:
                self.due_from = deadline
        return bucket

    def due(self, watermark: float) -> list[tuple[str, Bucket]]:
        """Candidates (key, bucket) filed at or before ``watermark``, earliest bucket first.

        The owner of each must fire what is due, then file itself again if it is still filed in
        that bucket (its entry there is consumed).
        """
        candidates: list[tuple[str, Bucket]] = []
        heap, size = self.bucket_heap, self.bucket_seconds
        while heap and heap[0] * size <= watermark:
            index = heap[0]
            bucket = self.buckets[index]
            if (index + 1) * size <= watermark:  # the whole bucket has passed
                heapq.heappop(heap)
                del self.buckets[index]
                self.ordered.pop(index, None)
                candidates += [(key, bucket) for key in dict.fromkeys(bucket)]
                continue
            ordered = self.ordered.get(index)
            if ordered is None:
                ordered = []
                for key in dict.fromkeys(bucket):
                    deadline = self.deadline_of(key, bucket)
                    if deadline is not None:
                        ordered.append((deadline, next(self.sequence), key))
                heapq.heapify(ordered)
                self.ordered[index] = ordered
            while ordered and ordered[0][0] <= watermark:
                candidates.append((heapq.heappop(ordered)[2], bucket))
            break  # the rest of this bucket, and every later bucket, is due later
        self.due_from = self._due_from()
        return candidates

    def _due_from(self) -> float:
        """The earliest watermark :meth:`due` has a candidate for: the start of the earliest bucket,
        or, in the bucket the watermark is inside of, its next deadline (at the latest its end)."""
        if not self.bucket_heap:
            return math.inf
        index = self.bucket_heap[0]
        ordered = self.ordered.get(index)
        if ordered is None:
            return index * self.bucket_seconds
        end = (index + 1) * self.bucket_seconds
        return ordered[0][0] if ordered and ordered[0][0] < end else end
