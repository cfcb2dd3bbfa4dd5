"""Rebuilding a partition's state after a crash or a hand-over, by replaying its input.

Sessions, contacts, customers and open windows (stage 1), and the windows waiting for
partitions (stage 2) live in memory. When a partition comes to a worker that holds no
state for it (a restart, a crash, a rebalance), the worker rebuilds that state before it
handles the partition's next record: it reads the partition again from a point far
enough back that every session, contact and window still open at that record began after
it, and feeds those records through the same code with every output thrown away (their
windows, counters and touches were published by the previous owner before it committed
their offsets). Then it carries on.

Where to replay from is kept in :class:`ReplayMarks`: every ``every`` seconds of event
time the partition records (watermark, offset); the replay starts at the newest mark at
least ``horizon`` seconds behind the watermark the partition had at the record the new
owner starts from (its previous owner may have gone further before it died). The marks are checkpointed in
a Faust table (tiny: one short list per partition). Kafka keeps the records themselves,
so the topics' retention must exceed the horizon (docs/reliability.md).

>>> marks = ReplayMarks(every=60, horizon=300)
>>> [marks.observe(ts, offset) for ts, offset in [(10, 0), (70, 5), (75, 6), (400, 30)]]
[True, True, False, True]
>>> marks.start()  # the newest mark at least 300 s behind the watermark 400
5
>>> marks.start(before=30)  # starting at offset 30: the watermark there is 75, no mark is old enough
0
>>> marks.observe(float("-inf"), 31)  # a record with no event time (all its events rejected)
False
>>> early = ReplayMarks(every=60, horizon=300)
>>> early.observe(float("-inf"), 7), early.start()  # no event time yet: replay from the first record
(True, 7)
>>> ReplayMarks.from_json(marks.to_json(), every=60, horizon=300).marks == marks.marks
True
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Consumer, KafkaError, KafkaException, TopicPartition

log = logging.getLogger(__name__)

Record = tuple[int, bytes | None, bytes | None, float | None]  # (offset, key, value, timestamp in seconds)
Records = Iterator[Record]
RecordsReader = Callable[[str, int, int, int], Records]
Rebuild = Callable[[str, int, list[tuple[bytes, float | None]]], None]  # (value, timestamp) of each record


class ReplayMarks:
    """(watermark, offset) marks of one partition, enough to replay ``horizon`` seconds.

    Args:
        every: seconds of event time between marks.
        horizon: how far behind the watermark the replay must start, seconds.
    """

    def __init__(self, every: float = 60.0, horizon: float = 3900.0) -> None:
        if every <= 0 or horizon < 0:
            raise ValueError(f"every must be > 0 and horizon >= 0, got {every} and {horizon}")
        self.every = every
        self.horizon = horizon
        self.marks: list[tuple[float, int]] = []
        self.first: int | None = None  # the first record's offset: where to start before any mark is old enough

    def observe(self, watermark: float, offset: int) -> bool:
        """Note the record at ``offset`` (watermark after it); True when a mark was added."""
        if self.first is None:
            self.first = offset
            if not math.isfinite(watermark):
                return True
        if not math.isfinite(watermark):
            return False  # no event time yet (no event of the partition counted in a window so far)
        if self.marks and math.floor(watermark / self.every) <= math.floor(self.marks[-1][0] / self.every):
            return False
        self.marks.append((watermark, offset))
        keep_from = 0  # drop marks older than the newest one beyond twice the horizon (see start)
        for index, (ts, _) in enumerate(self.marks):
            if ts <= watermark - 2 * self.horizon:
                keep_from = index
        del self.marks[:keep_from]
        return True

    def start(self, before: int | None = None) -> int | None:
        """The offset to replay from, for a new owner whose first record is at ``before``.

        The newest mark at least ``horizon`` behind the watermark at that record (as far as
        the marks tell); the first record's offset when there is none.
        """
        known = [(ts, offset) for ts, offset in self.marks if before is None or offset < before]
        watermark = known[-1][0] if known else float("-inf")
        beyond = [offset for ts, offset in known if ts <= watermark - self.horizon]
        return beyond[-1] if beyond else self.first

    def to_json(self) -> bytes:
        return orjson.dumps({"first": self.first, "marks": self.marks})

    @classmethod
    def from_json(cls, data: bytes, every: float, horizon: float) -> ReplayMarks:
        marks = cls(every, horizon)
        doc: dict[str, Any] = orjson.loads(data)
        marks.marks = [(float(ts), int(offset)) for ts, offset in doc["marks"]]
        marks.first = None if doc.get("first") is None else int(doc["first"])
        return marks


def read_partition(
    config: dict[str, Any], topic: str, partition: int, start: int, end: int, timeout: float = 120.0
) -> Records:
    """(offset, key, value, timestamp) of the records of ``topic[partition]`` from ``start`` up to ``end``
    (excluded); the timestamp in seconds, None when the record has none.

    ``config`` is a librdkafka consumer configuration (frictionwatch.kafka.consumer_config);
    the reader joins no group and commits nothing. Raises TimeoutError if the records
    don't arrive within ``timeout`` seconds, KafkaException on a broker error.
    """
    if start >= end:
        return
    consumer = Consumer({**config, "enable.auto.commit": False, "enable.partition.eof": True})
    try:
        consumer.assign([TopicPartition(topic, partition, start)])
        deadline = time.monotonic() + timeout
        while True:
            message = consumer.poll(1.0)
            if message is None:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"replaying {topic}[{partition}] stopped short of offset {end}")
                continue
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    return  # fewer records than expected (compacted or deleted): all there is
                raise KafkaException(error)
            offset = message.offset()
            if offset is None or offset >= end:
                return
            kind, milliseconds = message.timestamp()
            timestamp = milliseconds / 1000.0 if kind != TIMESTAMP_NOT_AVAILABLE and milliseconds > 0 else None
            yield offset, message.key(), message.value(), timestamp
            if offset == end - 1:
                return
    finally:
        consumer.close()


class StateRecovery:
    """Marks and replays for every partition a worker consumes (see the module docstring).

    Args:
        read: ``read(topic, partition, start, end)``, the records to replay (:func:`read_partition`).
        rebuild: ``rebuild(topic, partition, records)`` feeds replayed (value, timestamp) pairs, publishing nothing.
        checkpoints: the stored marks (a Faust table: ``"topic:partition"`` -> bytes).
        horizons: seconds to replay, per topic.
        every: seconds between marks.
    """

    def __init__(
        self,
        read: RecordsReader,
        rebuild: Rebuild,
        checkpoints: Mapping[str, bytes],
        horizons: Mapping[str, float],
        every: float = 60.0,
    ) -> None:
        self.read = read
        self.rebuild = rebuild
        self.checkpoints = checkpoints
        self.horizons = horizons
        self.every = every
        self.marks: dict[tuple[str, int], ReplayMarks] = {}

    def knows(self, topic: str, partition: int) -> bool:
        """Whether the partition was taken up here (and not revoked since)."""
        return (topic, partition) in self.marks

    def plan(self, topic: str, partition: int, offset: int) -> tuple[int, int] | None:
        """Take up a partition new here, whose first record is at ``offset``: what to replay."""
        stored = self.checkpoints.get(f"{topic}:{partition}")
        horizon = self.horizons[topic]
        every = max(self.every, horizon / 50)  # at most ~100 marks per partition
        marks = ReplayMarks(every, horizon)
        if stored:
            try:
                marks = ReplayMarks.from_json(stored, every, horizon)
            except (ValueError, KeyError, TypeError) as error:
                log.error("ignoring unreadable replay marks of %s[%d]: %s", topic, partition, error)
        self.marks[(topic, partition)] = marks
        start = marks.start(before=offset)
        log.info("taking up %s[%d] at offset %d; replay from %s", topic, partition, offset, start)
        return (start, offset) if start is not None and start < offset else None

    async def replay(self, topic: str, partition: int, start: int, end: int, chunk: int = 2000) -> int:
        """Replay records [start, end) into the rebuild function; how many were read.

        Records are read in a thread, ``chunk`` at a time, and fed on the event loop between
        awaits, so the worker keeps heart-beating to its group while it rebuilds. Cancelled (the
        worker stops), it closes the reader once the chunk being read is done, and is cancelled:
        closing a generator another thread is running raises ValueError, which would take the
        cancellation's place.
        """
        loop = asyncio.get_running_loop()
        records = self.read(topic, partition, start, end)
        reading = threading.Lock()  # held while a chunk is read: the reader closes after it

        def take() -> list[tuple[bytes | None, float | None]]:
            with reading:
                return [(value, timestamp) for _, _, value, timestamp in itertools.islice(records, chunk)]

        def close() -> None:
            with reading:
                _close(records)

        count = 0
        try:
            while values := await loop.run_in_executor(None, take):
                count += len(values)
                self.rebuild(topic, partition, [(value, ts) for value, ts in values if value is not None])
                await asyncio.sleep(0)
        finally:
            await loop.run_in_executor(None, close)
        return count

    async def fetch(self, topic: str, partition: int, start: int, end: int) -> list[Record]:
        """The records [start, end) themselves, read in a thread (to fill a gap the consumer left)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, lambda: list(self.read(topic, partition, start, end)))

    def observe(self, topic: str, partition: int, watermark: float, offset: int) -> bytes | None:
        """After the record at ``offset``: the marks to checkpoint, when a new one was added."""
        marks = self.marks.get((topic, partition))
        if marks is None or not marks.observe(watermark, offset):
            return None
        return marks.to_json()

    def forget(self, topic: str, partition: int) -> None:
        self.marks.pop((topic, partition), None)


def _close(records: Records) -> None:
    close = getattr(records, "close", None)
    if close is not None:
        close()


PROCESS = -1  # Continuity.check: handle the record
SKIP = -2  # Continuity.check: don't, it was handled already


class Continuity:
    """Notices records the consumer skipped, so that the worker can read them itself.

    Faust can drop records it fetched around a rebalance or a recovery (a fetched record
    waiting for flow control is dropped when the flow is suspended, and the fetcher moves
    on), which would lose their events silently. Each partition's next expected offset is
    kept here; a record past it means records were skipped, and :meth:`check` answers with
    the first offset of the gap: the worker reads the gap with its own reader and handles
    it before this record. (Offsets that hold no record, such as transaction markers, are
    simply not found there.) A record before the expected offset was handled already.

    >>> seen = Continuity()
    >>> [seen.check("t", 0, offset) for offset in (5, 6, 9, 10, 7)]  # 7 and 8 skipped; 7 again later
    [-1, -1, 7, -1, -2]

    It also knows the run of offsets handled without a hole since the partition came
    here (:meth:`handled`): from the first record, or from where the worker read back to.

    >>> seen.read_back("t", 0, 7, 8, read=True)  # the worker read and handled 7-8
    >>> seen.handled("t", 0)
    (5, 11)
    >>> seen.read_back("t", 0, 7, 8, read=False)  # had it failed to read them: the run starts after them
    >>> seen.handled("t", 0)
    (9, 11)
    """

    def __init__(self) -> None:
        self.expected: dict[tuple[str, int], int] = {}
        self.since: dict[tuple[str, int], int] = {}

    def check(self, topic: str, partition: int, offset: int) -> int:
        """PROCESS, SKIP, or the first offset (>= 0) of the records skipped before this one."""
        key = (topic, partition)
        expected = self.expected.get(key)
        if expected is not None and offset < expected:
            return SKIP
        self.expected[key] = offset + 1
        if expected is None:
            self.since[key] = offset
        return expected if expected is not None and offset > expected else PROCESS

    def read_back(self, topic: str, partition: int, first: int, last: int, *, read: bool) -> None:
        """The worker read and handled offsets ``first``-``last`` itself (``read``), or failed to."""
        key = (topic, partition)
        if read:
            self.since[key] = min(self.since.get(key, first), first)
        else:
            self.since[key] = last + 1

    def handled(self, topic: str, partition: int) -> tuple[int, int] | None:
        """(first, end): the offsets from ``first`` to before ``end`` were all handled here; None if none."""
        key = (topic, partition)
        if key not in self.expected:
            return None
        return self.since[key], self.expected[key]

    def forget(self, topic: str, partition: int) -> None:
        self.expected.pop((topic, partition), None)
        self.since.pop((topic, partition), None)


def skipped_before(committed: int | None, first: int | None, offset: int) -> int | None:
    """Where records skipped before a partition's first record here (at ``offset``) begin; None if none.

    The consumer starts at the group's ``committed`` offset or, where the group has none, at
    the partition's ``first`` offset (the worker's consumers reset to the earliest). A first
    record past that start means Faust dropped the records it had fetched before: around a
    rebalance, a new group loses the head of every partition that way.

    >>> skipped_before(committed=120, first=0, offset=120) is None
    True
    >>> skipped_before(committed=120, first=0, offset=157), skipped_before(committed=None, first=0, offset=57)
    (120, 0)
    """
    start = committed if committed is not None else first
    return start if start is not None and start < offset else None


@dataclass(frozen=True, slots=True)
class PartitionLook:
    """A partition at one look (every 30 s): what the group committed, what the worker handled, and
    the consumer's position (the next offset its fetcher hands out); None where not known."""

    committed: int | None
    handled: tuple[int, int] | None  # Continuity.handled: (first, end)
    position: int | None


def read_again_from(before: PartitionLook | None, now: PartitionLook) -> int | None:
    """The offset to seek the consumer back to, when it read records it never handed to the worker.

    Faust drops records it fetched while a rebalance ran, and the fetcher moves past them. The
    worker notices such a gap at the next record; at the end of a partition there is none, so
    nothing moved for a whole look while the position stayed past the records handled (or, before
    any record, past the group's offset). Reading again records that were only waiting is harmless:
    :class:`Continuity` skips those handled already.

    >>> stuck = PartitionLook(committed=100, handled=None, position=140)
    >>> read_again_from(stuck, stuck), read_again_from(None, stuck)
    (100, None)
    >>> idle = PartitionLook(committed=140, handled=(100, 140), position=140)
    >>> read_again_from(idle, idle) is None
    True
    """
    if before != now or now.position is None:
        return None
    needed = now.handled[1] if now.handled is not None else now.committed
    if needed is None:
        return 0 if now.position > 0 else None  # the group never committed: from the beginning
    return needed if now.position > needed else None


def commit_range(before: PartitionLook | None, now: PartitionLook) -> tuple[int, int] | None:
    """The offsets (first, last) to acknowledge in Faust's book, when its commits stopped.

    The group's offset stayed put for a look although the worker had handled records past it a
    look ago, without a hole from it (streams/faust_commits.py).

    >>> before = PartitionLook(committed=778, handled=(0, 792), position=792)
    >>> commit_range(before, PartitionLook(committed=778, handled=(0, 792), position=792))
    (778, 791)
    >>> commit_range(before, PartitionLook(committed=790, handled=(0, 800), position=800)) is None  # it moved
    True
    """
    if before is None or before.handled is None or now.handled is None or before.committed != now.committed:
        return None
    first = now.handled[0]
    start = first if now.committed is None else now.committed
    end = min(before.handled[1], now.handled[1])
    return (start, end - 1) if first <= start < end else None
