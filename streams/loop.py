"""The worker's own consumer loop for the input topics (``ingest = direct``): no Faust per record.

A Faust agent costs about as much per record as all of our own work (bench/README.md), so with
``ingest = direct`` the worker reads the input topics and the customer-touches topic with a
confluent-kafka consumer of its own, in a group of its own (``<group_id>-ingest``), and
publishes with a confluent-kafka producer. Stage 2 (final windows, detectors, alerts), its
table and the web server stay on Faust, in the same process and event loop: the loop polls
with a zero timeout and yields between batches, so the stages' state is only ever touched
from the event loop's thread.

What the loop does that Faust did:

- **Co-partitioning.** librdkafka's ``range`` assignor gives partition p of every subscribed
  topic (they have the same partition count) to one member, as the sessions, customers and
  :mod:`frictionwatch.streams.recovery` assume.
- **At-least-once.** An input offset is committed only once every record published while
  handling it (windows, touches, dead letters, replay marks) has been acknowledged by the
  brokers (:class:`DeliveryLedger`), every second and when partitions are revoked. A record the
  producer fails to deliver stops the loop, so a restart reads again from the last commit.
- **Replay marks** (where to rebuild a partition's state from) go to a compacted topic of their
  own, ``<group_id>-ingest-replay-marks``, keyed ``topic:partition``. The same on every broker:
  Tansu drops the metadata of a committed offset, where Kafka would keep the marks, and a
  metadata string is limited to 4 KiB. The topic is read again once after each assignment,
  before the first of its partitions is taken up: a partition's previous owner publishes its
  marks before it gives the partition up (:meth:`IngestLoop._on_revoke`), so that one read sees
  them all. A read takes 15-30 ms. Until December 2026 it took 0.5-0.8 s (the broker held the
  last, empty fetch 500 ms) and was done for every partition taken up: a worker taking up 16
  partitions stalled for about 10 s.
- **Switching from ``ingest = faust``.** A partition the loop's group never committed starts
  where the Faust agents' group (``group_id``) committed, not at the first record.
- **Lag** from the high-watermark of the latest fetch response (right on both brokers: Tansu
  gets ListOffsets wrong) and the next offset to handle.

What it no longer needs: Faust's consumer could drop records it had fetched (the gap check in
``streams/app.py``); librdkafka hands a partition's records over in order without gaps.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Any

from confluent_kafka import (
    OFFSET_STORED,
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    Message,
    Producer,
    TopicPartition,
)

from frictionwatch.kafka import committed_offsets, consumer_config, producer_config
from frictionwatch.settings import Settings
from frictionwatch.streams.friction import Friction
from frictionwatch.streams.ingest_guard import loop_group
from frictionwatch.streams.recovery import StateRecovery, read_partition

log = logging.getLogger(__name__)

TopicPartitionKey = tuple[str, int]
# After an empty poll the loop waits IDLE_FIRST seconds, twice that after the next, up to
# IDLE_MOST: a quiet worker wakes 20 times a second, a record waits at most 50 ms more.
IDLE_FIRST, IDLE_MOST = 0.001, 0.05


class DeliveryLedger:
    """Which handled input offsets may be committed: those whose published records were all acknowledged.

    Each published record takes a sequence number (:meth:`sent` gives its delivery callback);
    :meth:`checkpoint` notes the next offset to handle of each partition at that point. A
    checkpoint is committable once every record published before it was delivered.

    >>> ledger = DeliveryLedger()
    >>> first, second = ledger.sent(), ledger.sent()
    >>> ledger.checkpoint({("clicks", 0): 10})
    >>> third = ledger.sent()
    >>> ledger.checkpoint({("clicks", 0): 12})
    >>> ledger.committable()  # nothing delivered yet
    {}
    >>> second(None, None); ledger.committable()  # the first is still in flight
    {}
    >>> first(None, None); ledger.committable()
    {('clicks', 0): 10}
    >>> third(None, None); ledger.committable()
    {('clicks', 0): 12}
    >>> ledger.committable()  # already handed out
    {}
    >>> fourth = ledger.sent()
    >>> fourth("broker gone", None); ledger.failure
    'broker gone'
    """

    def __init__(self) -> None:
        self._next = 0  # sequence number of the next record published
        self._in_flight: deque[int] = deque()  # in the order published
        self._delivered: set[int] = set()  # delivered, but behind one still in flight
        self._checkpoints: deque[tuple[int, dict[TopicPartitionKey, int]]] = deque()
        self.failure: str | None = None  # the first delivery error

    def sent(self) -> Callable[[Any, Any], None]:
        """The delivery callback (``on_delivery``) of a record about to be published."""
        sequence = self._next
        self._next += 1
        self._in_flight.append(sequence)
        return partial(self._delivered_one, sequence)

    def _delivered_one(self, sequence: int, error: Any, message: Any) -> None:
        if error is not None:
            if self.failure is None:
                self.failure = str(error)
            return  # stays in flight: nothing after it is committed
        in_flight = self._in_flight
        if in_flight and in_flight[0] == sequence:
            in_flight.popleft()
            delivered = self._delivered
            while in_flight and in_flight[0] in delivered:
                delivered.remove(in_flight.popleft())
        else:
            self._delivered.add(sequence)

    def checkpoint(self, next_offsets: dict[TopicPartitionKey, int]) -> None:
        """Note where each partition stands now (a copy is kept)."""
        self._checkpoints.append((self._next, dict(next_offsets)))

    def committable(self) -> dict[TopicPartitionKey, int]:
        """The newest checkpoint all of whose records were delivered (merged with older ones); once."""
        oldest_in_flight = self._in_flight[0] if self._in_flight else self._next
        ready: dict[TopicPartitionKey, int] = {}
        while self._checkpoints and self._checkpoints[0][0] <= oldest_in_flight:
            ready.update(self._checkpoints.popleft()[1])
        return ready

    def forget(self, partitions: set[TopicPartitionKey]) -> None:
        """Drop revoked partitions from the checkpoints not yet committed."""
        for _, offsets in self._checkpoints:
            for key in partitions:
                offsets.pop(key, None)


class IngestLoop:
    """Reads the input and customer-touches topics and feeds them to the worker's stages.

    Args:
        settings: the worker's settings.
        friction: the worker's stages (:func:`frictionwatch.streams.app.build_ingest`).
        handle: ``await handle(topic, partition, offset, key, value, timestamp)`` ingests one
            input record (the worker's :class:`~frictionwatch.streams.app.IngestPipeline`),
            publishing through :meth:`send`.
        recovery: rebuilds a partition's state when it comes to the worker; its checkpoints
            must be :attr:`marks` (filled from the marks topic).
        producer: publishes every record; None makes one from ``settings`` when the loop
            first publishes or runs (building the app connects to nothing).
        commit_every: seconds between commits.
    """

    def __init__(
        self,
        settings: Settings,
        friction: Friction,
        handle: Callable[[str, int, int, bytes | None, bytes | None, float | None], Any],
        recovery: Callable[[dict[str, bytes]], StateRecovery],
        *,
        producer: Producer | None = None,
        commit_every: float = 1.0,
        batch: int = 500,
    ) -> None:
        self.settings = settings
        self.friction = friction
        self.handle = handle
        self.marks: dict[str, bytes] = {}  # "topic:partition" -> replay marks, as read from the marks topic
        self.recovery = recovery(self.marks)
        self._producer = producer
        self.commit_every = commit_every
        self.batch = batch
        self.ledger = DeliveryLedger()
        self.group_id = ingest_group(settings)
        self.marks_topic = marks_topic(settings)
        self.inputs = [settings.topic_clicks, settings.topic_contacts, settings.topic_feedback]
        self.next_offsets: dict[TopicPartitionKey, int] = {}
        self.assigned: set[TopicPartitionKey] = set()
        self._marks_read_to = 0  # the next offset of the marks topic to read
        self._marks_current = False  # read since the latest assignment
        self._consumer: Consumer | None = None
        self._closing = False  # the consumer is closing: partitions it is given now are not taken up
        self.handled = 0  # records handled, for tests and the status line

    @property
    def producer(self) -> Producer:
        """The producer every record is published with (made on first use)."""
        if self._producer is None:
            self._producer = Producer(producer_config(self.settings, **{"enable.idempotence": True}))
        return self._producer

    async def send(self, topic: str, key: bytes | None, value: bytes, partition: int | None) -> None:
        """Publish a record (the ingest pipeline's ``send``); its delivery holds back the commits."""
        callback = self.ledger.sent()
        while True:
            try:
                if partition is None:
                    self.producer.produce(topic, value, key, on_delivery=callback)
                else:
                    self.producer.produce(topic, value, key, partition, on_delivery=callback)
                return
            except BufferError:  # the producer's queue is full: let it drain
                self.producer.poll(0.05)
                await asyncio.sleep(0)

    async def run(self, stop: Callable[[], bool] = lambda: False) -> None:
        """Consume until ``stop()`` is true or the task is cancelled; commits what was delivered on the way out."""
        consumer = Consumer(
            consumer_config(
                self.settings,
                self.group_id,
                **{"enable.auto.commit": False, "partition.assignment.strategy": "range"},
            )
        )
        self._consumer, self._closing = consumer, False
        consumer.subscribe(
            [*self.inputs, self.settings.topic_touches],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        next_commit = time.monotonic() + self.commit_every
        idle = IDLE_FIRST  # seconds to wait after an empty poll: doubles while idle, up to IDLE_MOST
        try:
            while not stop():
                messages = consumer.consume(self.batch, 0)
                for message in messages:
                    await self._one(message)
                self.producer.poll(0)  # delivery callbacks
                if self.ledger.failure is not None:
                    raise RuntimeError(f"the producer could not deliver a record: {self.ledger.failure}")
                now = time.monotonic()
                if now >= next_commit:
                    self._commit(asynchronous=True)
                    self._measure_lag()
                    next_commit = now + self.commit_every
                if messages:
                    idle = IDLE_FIRST
                    await asyncio.sleep(0)  # Faust's stage 2 and timers take their turn
                else:
                    await asyncio.sleep(idle)
                    idle = min(2 * idle, IDLE_MOST)
        finally:
            self._close()

    async def _one(self, message: Message) -> None:
        error = message.error()
        if error is not None:
            if error.code() != KafkaError._PARTITION_EOF:
                log.warning("consumer error: %s", error)
            return
        topic, partition, offset = message.topic() or "", message.partition() or 0, message.offset() or 0
        if not self.recovery.knows(topic, partition):
            await self._take_up(topic, partition, offset)
        value = message.value()
        if topic == self.settings.topic_touches:
            for item in self.friction.touches(partition, [value or b""]):
                await self.send(item.topic, item.key, item.value, None)
        else:
            kind, milliseconds = message.timestamp()
            timestamp = milliseconds / 1000.0 if kind != TIMESTAMP_NOT_AVAILABLE and milliseconds > 0 else None
            await self.handle(topic, partition, offset, message.key(), value, timestamp)
        marks = self.recovery.observe(topic, partition, self.friction.watermark(topic, partition), offset)
        if marks is not None:
            await self.send(self.marks_topic, f"{topic}:{partition}".encode(), marks, None)
        self.next_offsets[topic, partition] = offset + 1
        self.handled += 1

    async def _take_up(self, topic: str, partition: int, offset: int) -> None:
        """Before a partition's first record here (at ``offset``): rebuild its state from the records before it."""
        began = time.monotonic()
        try:
            if not self._marks_current:
                await asyncio.to_thread(self._read_marks)
                self._marks_current = True
            span = self.recovery.plan(topic, partition, offset)
            if span is None:
                return
            count = await self.recovery.replay(topic, partition, *span)
        except Exception as error:  # a broker error or timeout: carry on with what was rebuilt
            task = asyncio.current_task()
            if task is not None and task.cancelling():  # the worker stops: an error on the way out is no reason to stay
                raise asyncio.CancelledError from error
            log.error("rebuilding %s[%d] before offset %d failed: %s", topic, partition, offset, error)
            return
        seconds = time.monotonic() - began
        self.friction.metrics.rebuilt_records.labels(topic).inc(count)
        self.friction.metrics.rebuild_seconds.labels(topic).inc(seconds)
        log.info("rebuilt %s[%d] from %d records (offsets %d-%d) in %.1f s", topic, partition, count, *span, seconds)

    def _read_marks(self) -> None:
        """Read the marks topic from where the last read stopped to its end (its single partition)."""
        # the read ends at the topic's end, which only an empty fetch shows: the broker holds one
        # for fetch.wait.max.ms (500 ms by default) before answering
        reader = consumer_config(self.settings, f"{self.group_id}-marks-reader", **{"fetch.wait.max.ms": 10})
        for offset, key, value, _ in read_partition(reader, self.marks_topic, 0, self._marks_read_to, 2**62):
            if key is not None and value is not None:
                self.marks[key.decode("utf-8", "replace")] = value
            self._marks_read_to = offset + 1

    def _commit(self, *, asynchronous: bool) -> None:
        ready = {key: offset for key, offset in self.ledger.committable().items() if key in self.assigned}
        self.ledger.checkpoint(self.next_offsets)
        if not ready or self._consumer is None:
            return
        offsets = [TopicPartition(topic, partition, offset) for (topic, partition), offset in ready.items()]
        try:
            if asynchronous:
                self._consumer.commit(offsets=offsets, asynchronous=True)
            else:
                self._consumer.commit(offsets=offsets, asynchronous=False)
        except Exception as error:  # a rebalance under way or the coordinator away: the next commit covers it
            log.info("could not commit %d offsets: %s", len(offsets), error)

    def _measure_lag(self) -> None:
        if self._consumer is None:
            return
        for (topic, partition), done in self.next_offsets.items():
            try:
                _, end = self._consumer.get_watermark_offsets(TopicPartition(topic, partition), cached=True)
            except Exception:  # not fetched yet: the next tick
                continue
            if end is not None and end >= 0:
                self.friction.metrics.consumer_lag(topic, partition, max(0, end - done))

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self._closing:  # a rebalance served by close(): nothing more is read, the next owner takes them
            log.info("ingest loop is stopping: leaves %s to the next owner", _names(partitions))
            return
        self._marks_current = False  # their previous owners published marks before giving them up
        self.assigned |= {(tp.topic, tp.partition) for tp in partitions}
        self._report_assignment()
        log.info("ingest loop assigned %s", _names(partitions))
        self._start_where_the_agents_left_off(consumer, partitions)

    def _start_where_the_agents_left_off(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Partitions this loop's group never committed start where the Faust agents' group did.

        A deployment switched from ``ingest = faust`` carries on from the agents' last commits
        instead of reading the topics again from their first records (which would count every
        retained event twice). Where neither group committed, the consumer starts at the first record.
        """
        try:
            own = consumer.committed(partitions, timeout=10.0)
            never = [(tp.topic, tp.partition) for tp in own if tp.offset < 0]
            agents = committed_offsets(self.settings, self.settings.group_id, never) if never else {}
        except Exception as error:  # the coordinator is away: start as a new group would
            log.warning("could not read where the Faust agents left off: %s", error)
            return
        carried = {key: offset for key, offset in agents.items() if offset is not None}
        if not carried:
            return
        for tp in partitions:
            tp.offset = carried.get((tp.topic, tp.partition), OFFSET_STORED)
        consumer.assign(partitions)
        log.info(
            "ingest loop starts %s where the Faust agents' group %s left off",
            _names([tp for tp in partitions if (tp.topic, tp.partition) in carried]),
            self.settings.group_id,
        )

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Before the partitions move: publish what is pending, commit it, forget their state."""
        self.producer.flush(30.0)
        if self.ledger.failure is None:
            self.ledger.checkpoint(self.next_offsets)
            self._commit(asynchronous=False)
        self._forget(partitions)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """The group went on without this worker (e.g. a long pause): commit nothing, forget their state."""
        log.warning("ingest loop lost %s to the group", _names(partitions))
        self._forget(partitions)

    def _forget(self, partitions: list[TopicPartition]) -> None:
        gone = {(tp.topic, tp.partition) for tp in partitions}
        for topic, partition in gone:
            self.friction.revoke(topic, partition)
            self.recovery.forget(topic, partition)
            self.next_offsets.pop((topic, partition), None)
        self.ledger.forget(gone)
        self.assigned -= gone
        self._report_assignment()

    def _report_assignment(self) -> None:
        for topic in [*self.inputs, self.settings.topic_touches]:
            self.friction.metrics.assigned.labels(topic).set(sum(1 for t, _ in self.assigned if t == topic))

    def _close(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is None:
            return
        self._closing = True
        try:
            self.producer.flush(30.0)
            self.producer.poll(0)
            if self.ledger.failure is None:
                self.ledger.checkpoint(self.next_offsets)
                ready = self.ledger.committable()
                offsets = [TopicPartition(t, p, o) for (t, p), o in ready.items() if (t, p) in self.assigned]
                if offsets:
                    consumer.commit(offsets=offsets, asynchronous=False)
        except Exception as error:  # the broker is away: the next owner reads those records again
            log.warning("could not commit on the way out: %s", error)
        finally:
            consumer.close()


def ingest_group(settings: Settings) -> str:
    """The consumer group of the loop (Faust's app keeps ``group_id`` for stage 2)."""
    return loop_group(settings.group_id)


def marks_topic(settings: Settings) -> str:
    """The compacted topic of the loop's replay marks."""
    return f"{settings.group_id}-ingest-replay-marks"


def _names(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions) or "nothing"
