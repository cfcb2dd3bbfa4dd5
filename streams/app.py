"""The Faust worker: agents that consume the input topics and ingest their records.

One :class:`IngestPipeline` per worker does the work of every agent; the agents only
move records between Kafka and it. With ``ingest = direct`` a consumer loop of the
worker's own (streams/loop.py) feeds the same pipeline instead, and Faust keeps stage 2.
:func:`build_app` makes a fresh app per call (no module-level app), so tests and the CLI
each build their own.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import faust
from faust.exceptions import ConsumerNotStarted
from faust.types import TP
from prometheus_client import CollectorRegistry

from frictionwatch.alerts.immediate import AlertSettings, AlertTracker
from frictionwatch.alerts.sender import AlertSender
from frictionwatch.contract import Event, EventValidator, Reason, TimeLimits
from frictionwatch.detectors.bank import Finding
from frictionwatch.journeymap import JourneyMap, JourneyMapError, JourneyMapWatcher
from frictionwatch.kafka import committed_offsets, consumer_config, faust_broker_options, first_offsets
from frictionwatch.pseudonym import Pseudonymiser
from frictionwatch.settings import Settings, SettingsError
from frictionwatch.streams import faust_commits, ingest_guard
from frictionwatch.streams.deadletter import Origin, deadletter_value
from frictionwatch.streams.eventtime import EventClock
from frictionwatch.streams.exposition import FrictionMetrics
from frictionwatch.streams.friction import ALERT_STATE, Friction, Outbound
from frictionwatch.streams.ingest import COMPILED_AVAILABLE, DecodedRecord, RecordDecoder, Rejection, TopicKind
from frictionwatch.streams.loop import IngestLoop
from frictionwatch.streams.metrics import IngestMetrics
from frictionwatch.streams.recovery import (
    SKIP,
    Continuity,
    PartitionLook,
    Records,
    StateRecovery,
    commit_range,
    read_again_from,
    read_partition,
    skipped_before,
)
from frictionwatch.streams.reduce import FinalWindow
from frictionwatch.streams.stage import SourceKind, StageSettings

log = logging.getLogger(__name__)

SendFn = Callable[[str, bytes | None, bytes, int | None], Awaitable[Any]]
#: Receives (topic, partition, valid events) and returns the records to publish.
EventHandler = Callable[[str, int, Sequence[Event]], Sequence[Outbound]]


@dataclass(frozen=True, slots=True)
class RecordRef:
    """One record as read from Kafka."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: float | None = None  # the record's Kafka timestamp, seconds: when it arrived


@dataclass(frozen=True, slots=True)
class Delivered:
    """A record an agent handles: from its stream, or read again to fill a gap (see deliver)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: float


class IngestPipeline:
    """Validates records, hands events on, dead-letters and re-routes the rest; counts all.

    Args:
        decoders: a :class:`RecordDecoder` per input topic name.
        metrics: the ingestion counters.
        send: ``send(topic, key, value, partition)`` that publishes a record.
        deadletter_topic: where rejections go.
        on_events: receives each record's valid events (the metrics stage plugs in here).
        deadletter_max_bytes: how much of a rejected record's bytes the dead-letter keeps.
    """

    def __init__(
        self,
        decoders: dict[str, RecordDecoder],
        metrics: IngestMetrics,
        send: SendFn,
        deadletter_topic: str,
        on_events: EventHandler | None = None,
        *,
        deadletter_max_bytes: int = 65536,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.decoders = decoders
        self.metrics = metrics
        self.send = send
        self.deadletter_topic = deadletter_topic
        self.on_events = on_events
        self.deadletter_max_bytes = deadletter_max_bytes
        self.clock = clock

    async def handle(self, record: RecordRef) -> DecodedRecord:
        """Ingest one record; never raises for anything the record contains."""
        now = self.clock()
        decoder = self.decoders[record.topic]
        outbound: Sequence[Outbound] = ()
        try:
            decoded = decoder.decode(record.value, record.partition, now, record.timestamp)
            if decoded.events and self.on_events is not None:
                outbound = self.on_events(record.topic, record.partition, decoded.events)
        except Exception as error:  # a bug must not stop the worker or lose the record
            log.exception("failed on %s[%d]@%d", record.topic, record.partition, record.offset)
            rejection = Rejection(Reason.INTERNAL_ERROR, None, f"{type(error).__name__}: {error}", record.value or b"")
            decoded = DecodedRecord(rejected=[rejection])
        origin = Origin(record.topic, record.partition, record.offset, record.key)
        for rejection in decoded.rejected:
            value = deadletter_value(
                rejection.reason,
                rejection.field,
                rejection.detail,
                rejection.raw,
                origin,
                rejection.index,
                max_bytes=self.deadletter_max_bytes,
                rejected_at=now,
            )
            await self.send(self.deadletter_topic, record.key, value, None)
            self.metrics.events_deadlettered.labels(record.topic, rejection.reason.value).inc()
        for stray in decoded.strays:
            await self.send(record.topic, stray.key, stray.raw, stray.partition)
        for item in outbound:
            await self.send(item.topic, item.key, item.value, None)
        metrics = self.metrics
        metrics.record_read(record.topic, decoded.items, len(decoded.events))
        if decoded.clock_readings:
            metrics.clocks(record.topic, decoded.clock_readings)
        if decoded.strays:
            metrics.events_rerouted.labels(record.topic).inc(len(decoded.strays))
        return decoded


def channels_of(settings: Settings, journey_map: JourneyMap) -> dict[str, list[str]]:
    """The channels events of each input topic can name ("" for feedback naming none)."""
    steps = sorted({channel for journey in journey_map.journeys.values() for step in journey.steps
                    for channel in step.channels})  # fmt: skip
    contacts = sorted(journey_map.contact_channels)
    return {
        settings.topic_clicks: steps,
        settings.topic_contacts: contacts,
        settings.topic_feedback: ["", *sorted(set(steps) | set(contacts))],
    }


def build_decoders(settings: Settings, journey_map: JourneyMap, partitions: dict[str, int]) -> dict[str, RecordDecoder]:
    """A decoder per input topic, each knowing its topic's partition count."""
    if settings.click_decoder == "compiled" and not COMPILED_AVAILABLE:
        raise SettingsError(
            "click_decoder is compiled, but frictionwatch-native is not installed:"
            " scripts/setup builds it where Rust's cargo is; or set click_decoder to auto"
        )
    validator = EventValidator(journey_map, TimeLimits(settings.max_future_skew, settings.max_event_age))
    clock = EventClock(settings.clock_tolerance)
    kinds: dict[str, TopicKind] = {
        settings.topic_clicks: "clicks",
        settings.topic_contacts: "contacts",
        settings.topic_feedback: "feedback",
    }
    decoders = {
        topic: RecordDecoder(
            kind,
            validator,
            partitions=partitions[topic],
            max_record_bytes=settings.max_record_bytes,
            max_batch_events=settings.max_batch_events,
            clock=clock,
            compiled={"auto": None, "compiled": True, "python": False}[settings.click_decoder],
        )
        for topic, kind in kinds.items()
    }
    if decoders[settings.topic_clicks].compiled is not None:
        log.info("clicks are decoded by the compiled fast path (frictionwatch-native)")
    else:
        log.warning(
            "clicks are decoded in Python, slower: %s",
            "click_decoder is python" if settings.click_decoder == "python"
            else "frictionwatch-native is not installed (scripts/setup builds it)",
        )  # fmt: skip
    return decoders


LOOK_SECONDS = 30.0  # how often each partition's offsets are compared with the records handled

# Faust's tables (each co-partitioned with a topic: table_changelogs says which)
REPLAY_MARKS, DETECTOR_STATE = "replay-marks", "detector-state"


def table_changelogs(settings: Settings, partitions: Mapping[str, int]) -> dict[str, int]:
    """Each table's changelog topic (named as Faust names it) and the partition count it must have."""
    sources = {REPLAY_MARKS: settings.topic_clicks, DETECTOR_STATE: settings.topic_windows}
    return {f"{settings.group_id}-{table}-changelog": partitions[topic] for table, topic in sources.items()}


@dataclass(slots=True)
class Checkpointing:
    """Whether the worker still writes its Faust tables: no once its shutdown has begun."""

    stopped: bool = False


class StoppableApp(faust.App):
    """``faust.App`` with two of its stop defects worked around.

    A rebalance that reaches it while it stops runs its course. faust-streaming 0.15 closes
    its consumer when a rebalance reaches an app that is stopping
    (``App._on_rebalance_when_stopped``): a worker stopped just after another left the group
    (a rolling restart, or a test stopping two workers one after the other). The close drops
    the consumer's connections and marks its coordinator closing, and the commit Faust makes
    next, while it waits for its streams to finish, then retries forever: aiokafka's commit
    never finds the coordinator again, and does not give up while closing. The worker hung
    until killed (seen in CI, December 2026: SIGTERM, then the rebalance 30 ms later). Left
    open, the consumer finishes the rebalance, Faust ignores the new assignment (it is
    stopping), commits and leaves the group as in any stop. A private method of Faust's:
    check it when faust-streaming is upgraded (tests/test_agent.py does).
    """

    def _on_rebalance_when_stopped(self) -> None:
        log.info("a rebalance reached the worker while it stops: it leaves the group when its consumer stops")

    async def _producer_flush(self, logger: Any) -> None:
        """Faust's flush (before its producer closes, and at a revocation), once every buffered record was sent.

        Faust's flush gives up on a record whose send takes over 0.1 s (a busy machine, a full
        send queue) and does not wait for the record its buffer is sending: the producer then
        closed under it, and the buffer crashed (ProducerClosed) and lost the record, a
        checkpoint of the tables (seen stopping a busy worker, December 2026).
        """
        if self._producer is not None and not await sent_everything(self._producer.buffer, STOP_FLUSH_TIMEOUT):
            logger.warning("Faust's producer buffer still held records %.0f s into the stop", STOP_FLUSH_TIMEOUT)
        await super()._producer_flush(logger)


STOP_FLUSH_TIMEOUT = 10.0  # seconds a stopping worker waits for Faust's buffered records to be sent


async def sent_everything(buffer: Any, timeout: float, poll: float = 0.01) -> bool:
    """Wait until Faust's producer ``buffer`` is empty and idle (not sending a record); False after ``timeout`` s.

    The buffer's task takes a record from its queue, sends it, and waits on the queue again:
    idle is an empty queue with that task waiting on it (asyncio's ``Queue._getters``, as
    Faust's buffer has no public way to tell).
    """
    if buffer.state != "running":  # not started, crashed or stopped: its task sends nothing more
        return not buffer.size
    deadline = time.monotonic() + timeout
    queue: asyncio.Queue[Any] = buffer.pending
    while buffer.size or not any(not getter.done() for getter in queue._getters):  # type: ignore[attr-defined]
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(poll)  # the buffer's task is in this event loop: let it send
    return True


@dataclass(frozen=True, slots=True)
class WorkerApp:
    """A Faust app and the pipeline its agents feed."""

    app: faust.App
    pipeline: IngestPipeline
    friction: Friction


def build_ingest(
    settings: Settings,
    journey_map: JourneyMap,
    registry: CollectorRegistry,
    partitions: dict[str, int],
    send: SendFn,
) -> tuple[Friction, IngestPipeline]:
    """The friction stages of one worker, and the ingest pipeline that feeds them from the input
    topics and publishes with ``send``."""
    friction = build_friction(settings, journey_map, registry, partitions)
    pipeline = IngestPipeline(
        build_decoders(settings, journey_map, partitions),
        IngestMetrics(registry, settings.topics.values(), channels_of(settings, journey_map)),
        send,
        settings.topic_deadletter,
        friction.events,
        deadletter_max_bytes=settings.deadletter_max_bytes,
    )
    return friction, pipeline


def build_friction(
    settings: Settings, journey_map: JourneyMap, registry: CollectorRegistry, partitions: dict[str, int]
) -> Friction:
    """The friction stages of one worker, configured from ``settings``."""
    kinds: dict[str, SourceKind] = {
        settings.topic_clicks: "clicks",
        settings.topic_contacts: "contacts",
        settings.topic_feedback: "feedback",
        settings.topic_touches: "touches",
    }
    stage = StageSettings.from_settings(settings)
    return Friction(
        journey_map,
        FrictionMetrics(registry, journey_map),
        kinds,
        partitions,
        windows_topic=settings.topic_windows,
        touches_topic=settings.topic_touches,
        settings=stage,
        max_wait=settings.window_wait,
    )


def build_recovery(
    settings: Settings, friction: Friction, decoders: dict[str, RecordDecoder], checkpoints: Mapping[str, bytes]
) -> StateRecovery:
    """How this worker rebuilds the state of partitions that come to it (streams/recovery.py)."""
    reader = consumer_config(settings, f"{settings.group_id}-replay")

    def read(topic: str, partition: int, start: int, end: int) -> Records:
        return read_partition(reader, topic, partition, start, end)

    def rebuild(topic: str, partition: int, records: list[tuple[bytes, float | None]]) -> None:
        if topic == settings.topic_windows:
            friction.rebuild_partials([value for value, _ in records])
        elif topic == settings.topic_touches:
            friction.rebuild_touches(partition, [value for value, _ in records])
        else:  # events get the times they got when first read: corrected against their record's arrival
            decoder, now = decoders[topic], time.time()
            events = [e for value, ts in records for e in decoder.decode(value, partition, now, ts).events]
            friction.rebuild(topic, partition, events)

    horizons = dict.fromkeys(settings.topics.values(), settings.replay_horizon)
    horizons[settings.topic_touches] = settings.repeat_contact_horizon + settings.touch_lateness
    horizons[settings.topic_windows] = max(10 * settings.window_size, 2 * settings.window_wait, 600.0)
    return StateRecovery(read, rebuild, checkpoints, horizons, every=max(settings.window_size, 60.0))


def build_app(
    settings: Settings,
    journey_map: JourneyMap,
    registry: CollectorRegistry,
    partitions: dict[str, int],
    *,
    stop_after: float | None = None,
    watcher: JourneyMapWatcher | None = None,
) -> WorkerApp:
    """A Faust app with one ingesting agent per input topic.

    ``partitions`` is the partition count of each topic as the brokers report it
    (:func:`frictionwatch.kafka.ensure_topics`). ``stop_after`` stops the worker after
    that many seconds, as SIGTERM would. ``watcher`` reloads detector settings when the
    journey map file changes (or on SIGHUP), keeping what the detectors have learned.
    """
    app = StoppableApp(
        settings.group_id,
        **faust_broker_options(settings),
        store=settings.store,
        autodiscover=False,
        processing_guarantee="at_least_once",  # Faust's exactly_once can't send across partitions (docs/reliability.md)
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        web_enabled=settings.web_port > 0,
        web_bind=settings.metrics_host,
        web_host=settings.metrics_host,
        web_port=settings.web_port or 6066,
        key_serializer="raw",
        value_serializer="raw",
        producer_max_batch_size=settings.batch_size,
    )
    topics = {name: app.topic(name, partitions=partitions[name]) for name in settings.topics.values()}
    internal = {
        name: app.topic(name, partitions=partitions[name]) for name in (settings.topic_windows, settings.topic_touches)
    }
    every_topic = {**topics, **internal, settings.topic_deadletter: app.topic(settings.topic_deadletter)}

    direct = settings.ingest == "direct"  # the input topics read by a loop of our own (streams/loop.py)
    ingest_loop: IngestLoop | None = None

    async def send(topic: str, key: bytes | None, value: bytes, partition: int | None) -> Any:
        if ingest_loop is not None:
            return await ingest_loop.send(topic, key, value, partition)
        return await every_topic[topic].send(key=key, value=value, partition=partition)

    friction, pipeline = build_ingest(settings, journey_map, registry, partitions, send)

    # Consumer lag: records behind the partition's end offset, measured by a timer (measure_lag)
    # from the next offset to process, which each record moves on.
    next_offsets: dict[tuple[str, int], int] = {}

    # State held in memory is rebuilt by replaying a partition when it comes to this worker
    # (streams/recovery.py); where to replay from is checkpointed in this table, co-partitioned
    # with the topics (Faust writes a key to the partition of the record being processed).
    replay_marks = app.Table(
        REPLAY_MARKS, default=bytes, partitions=partitions[settings.topic_clicks], key_type=str, value_type=bytes
    )
    recovery = build_recovery(settings, friction, pipeline.decoders, replay_marks)
    unmarked: set[str] = set()  # topics whose partition count differs from the table's: no marks
    # The tables are written until the app's shutdown flushes Faust's producer buffer (signal
    # on_before_shutdown, after the consumer stopped). The agents run on for a moment after that
    # flush, and Faust closes its producer before it stops the buffer: a table write then could
    # be lost, and made the buffer crash on the closed producer (seen stopping a worker during
    # a rebalance).
    checkpointing = Checkpointing()

    @app.on_before_shutdown.connect
    async def stop_checkpointing(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        checkpointing.stopped = True

    continuity = Continuity()

    async def deliver(message: Any, value: bytes | None, process: Callable[[Delivered], Awaitable[None]]) -> None:
        """Hand a record to ``process``: once, in order, and after any records the consumer skipped."""
        topic, partition = message.topic, message.partition
        gap = continuity.check(topic, partition, message.offset)
        if gap == SKIP:
            return
        if not recovery.knows(topic, partition):  # its first record here
            if await read_left_off(topic, partition):
                committed = committed_at[topic, partition]
                faust_commits.starts_at(app.consumer, topic, partition, committed)
                skipped = skipped_before(committed, first_at.get((topic, partition)), message.offset)
                if skipped is not None:
                    gap = skipped  # Faust dropped the records it fetched before the flow resumed
            await take_up(topic, partition, gap if gap >= 0 else message.offset)
        if gap >= 0:  # Faust dropped records before this one: read them ourselves
            read = True
            try:
                missed = await recovery.fetch(topic, partition, gap, message.offset)
            except Exception as error:
                log.error("could not read %s[%d] %d-%d skipped by the consumer: %s", topic, partition, gap,
                          message.offset - 1, error)  # fmt: skip
                missed, read = [], False
            log.warning("the consumer skipped %s[%d] offsets %d-%d; read %d records of them again",
                        topic, partition, gap, message.offset - 1, len(missed))  # fmt: skip
            friction.metrics.refetched.labels(topic).inc(len(missed))
            for offset, key, missed_value, missed_timestamp in missed:
                timestamp = message.timestamp if missed_timestamp is None else missed_timestamp
                await process(Delivered(topic, partition, offset, key, missed_value, timestamp))
            continuity.read_back(topic, partition, gap, message.offset - 1, read=read)
            if read:  # Faust never saw them: it would not commit past them (streams/faust_commits.py)
                await faust_commits.handled(app.consumer, topic, partition, gap, message.offset - 1)
        await process(Delivered(topic, partition, message.offset, message.key, value, message.timestamp))

    # where the group left off (its committed offset, None if none) in the partitions assigned,
    # and where the group has none, the partition's first offset (the consumer starts there)
    committed_at: dict[tuple[str, int], int | None] = {}
    first_at: dict[tuple[str, int], int] = {}

    async def read_left_off(topic: str, partition: int) -> bool:
        """Whether ``committed_at`` knows the partition, reading it for every partition assigned if not.

        At a partition's first record here: Faust's own idea of it may be wrong, and a first
        record past it means Faust dropped the records before (streams/faust_commits.py).
        """
        if (topic, partition) not in committed_at:
            try:
                assigned = app.consumer.assignment()
            except ConsumerNotStarted:  # an agent's test context: no group, nothing dropped
                return False
            owned = {(tp.topic, tp.partition) for tp in assigned} | {(topic, partition)}
            wanted = [key for key in owned if key not in committed_at]
            try:
                committed_at.update(await asyncio.to_thread(committed_offsets, settings, settings.group_id, wanted))
                never = [key for key in wanted if committed_at[key] is None]
                if never:
                    first_at.update(await asyncio.to_thread(first_offsets, settings, never))
            except Exception as error:  # the broker is unreachable: dropped records go unnoticed
                log.warning("could not read where the group left off in %s[%d]: %s", topic, partition, error)
                return False
        return True

    async def take_up(topic: str, partition: int, offset: int) -> None:
        """Before a partition's first record here (at ``offset``): rebuild its state from the records before it."""
        began = time.monotonic()
        try:
            span = recovery.plan(topic, partition, offset)
            if span is None:
                return
            count = await recovery.replay(topic, partition, *span)
        except Exception as error:  # a broker error or timeout: carry on with what was rebuilt
            log.error("rebuilding %s[%d] before offset %d failed: %s", topic, partition, offset, error)
            return
        seconds = time.monotonic() - began
        friction.metrics.rebuilt_records.labels(topic).inc(count)
        friction.metrics.rebuild_seconds.labels(topic).inc(seconds)
        log.info("rebuilt %s[%d] from %d records (offsets %d-%d) in %.1f s", topic, partition, count, *span, seconds)

    def mark(message: Delivered, watermark: float) -> None:
        """After a record: checkpoint the partition's replay marks when a new one was added."""
        if message.topic in unmarked:
            return
        try:
            marks = recovery.observe(message.topic, message.partition, watermark, message.offset)
            if marks is not None and not checkpointing.stopped:
                replay_marks[f"{message.topic}:{message.partition}"] = marks
        except Exception as error:  # e.g. a topic with another partition count than the table
            unmarked.add(message.topic)
            log.error("no replay marks for %s (its state is not rebuilt after a restart): %s", message.topic, error)

    if direct:

        async def handle_directly(
            topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None, timestamp: float | None
        ) -> None:
            await pipeline.handle(RecordRef(topic, partition, offset, key, value, timestamp))

        ingest_loop = IngestLoop(
            settings,
            friction,
            handle_directly,
            lambda marks: build_recovery(settings, friction, pipeline.decoders, marks),
        )
        direct_loop = ingest_loop

        @app.task
        async def ingest_directly() -> None:
            try:
                await direct_loop.run()
            except Exception as error:  # e.g. a record the producer could not deliver: stop, restart from the commits
                log.critical("the ingest loop stopped: %s", error)
                await app.crash(error)

    for name, topic in topics.items() if not direct else ():

        async def ingest_record(record: Delivered) -> None:
            ref = RecordRef(record.topic, record.partition, record.offset, record.key, record.value, record.timestamp)
            await pipeline.handle(ref)
            mark(record, friction.watermark(record.topic, record.partition))
            next_offsets[record.topic, record.partition] = record.offset + 1

        async def ingest(stream: faust.StreamT[bytes]) -> None:
            async for event in stream.events():
                await deliver(event.message, event.value, ingest_record)

        app.agent(topic, name=f"ingest-{name}")(ingest)

    async def touch_record(record: Delivered) -> None:
        for item in friction.touches(record.partition, [record.value or b""]):
            await send(item.topic, item.key, item.value, None)
        mark(record, friction.watermark(record.topic, record.partition))

    async def customer_touches(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            await deliver(event.message, event.value, touch_record)

    # One incident per touchpoint, one alert per metric in it (alerts/immediate.py).
    tracker = AlertTracker(
        AlertSettings.from_settings(settings),
        pseudonymise=Pseudonymiser(settings.pseudonym_key.encode()) if settings.pseudonym_key else None,
    )

    # What the detectors learned, per group, checkpointed after each final window with the
    # group's open incidents. The table is co-partitioned with the windows topic (same key, same
    # partition count), so the worker that reduces a group also holds its detectors' state, and
    # a new owner restores it from here (and carries its incidents on).
    detector_state = app.Table(
        DETECTOR_STATE, default=dict, partitions=partitions[settings.topic_windows], key_type=str
    )
    restored: set[str] = set()

    async def reduce_record(record: Delivered) -> None:
        mark(record, record.timestamp)  # partials wait in wall-clock time: mark by when they were sent
        group = (record.key or b"").decode("utf-8", "replace")
        if group not in restored:
            restored.add(group)
            checkpoint = detector_state.get(group) or {}
            count = friction.restore_group(checkpoint)
            if count:
                friction.metrics.detectors_restored.inc(count)
                log.info("restored %d detectors of %s from the checkpoint", count, group)
            try:
                carried = tracker.restore(checkpoint.get(group + ALERT_STATE) or {})
            except (ValueError, KeyError, TypeError) as error:
                log.warning("could not restore the open incidents of %s: %s", group, error)
            else:
                if carried:
                    log.info("carrying on %d open incident(s) of %s from the checkpoint", carried, group)
        for final in friction.partial(record.value or b""):
            if not checkpointing.stopped:
                detector_state[final] = {**friction.group_state(final), final + ALERT_STATE: tracker.state(final)}

    async def reduce_windows(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            await deliver(event.message, event.value, reduce_record)

    if not direct:
        app.agent(internal[settings.topic_touches], name="customer-touches")(customer_touches)
    app.agent(internal[settings.topic_windows], name="reduce-windows")(reduce_windows)

    @app.on_partitions_revoked.connect
    async def forget_revoked(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        revoked: set[TP] = args[0]  # Faust sends (app, revoked)
        for tp in revoked:
            friction.revoke(tp.topic, tp.partition)
            recovery.forget(tp.topic, tp.partition)
            continuity.forget(tp.topic, tp.partition)
            committed_at.pop((tp.topic, tp.partition), None)
            first_at.pop((tp.topic, tp.partition), None)
            next_offsets.pop((tp.topic, tp.partition), None)
            last_look.pop(tp, None)
        for group in restored:  # its next owner carries its incidents on
            tracker.forget(group)
        restored.clear()  # a group that comes back is restored from the checkpoint again

    # each partition at the last look (streams/recovery.py: PartitionLook)
    last_look: dict[TP, PartitionLook] = {}
    agent_topics = {*topics, *internal}

    @app.timer(interval=LOOK_SECONDS)
    async def look_at_partitions() -> None:
        """Put right what Faust's consumer left behind: records it read but never handed over, and commits that stopped.

        Each look compares, per partition, the group's committed offset, the records this worker
        handled and the consumer's position with the last look (streams/faust_commits.py).
        """
        try:
            owned = [tp for tp in app.consumer.assignment() if tp.topic in agent_topics]
            if not owned:
                return
            group = await asyncio.to_thread(
                committed_offsets, settings, settings.group_id, [(tp.topic, tp.partition) for tp in owned]
            )
            positions = {tp: await app.consumer.position(tp) for tp in owned}
        except Exception as error:  # the broker is unreachable, or a rebalance took a partition: next time
            log.info("could not look at the partitions' offsets: %s", error)
            return
        for tp in owned:
            handled = continuity.handled(tp.topic, tp.partition)
            now = PartitionLook(group.get((tp.topic, tp.partition)), handled, positions[tp])
            before, last_look[tp] = last_look.get(tp), now
            offset = read_again_from(before, now)
            if offset is not None:
                log.warning("the consumer read %s[%d] up to offset %d but had handed this worker none from"
                            " offset %d on, %.0f s ago: reading them again", tp.topic, tp.partition,
                            (now.position or 0) - 1, offset, LOOK_SECONDS)  # fmt: skip
                await app.consumer.seek(tp, offset)
            committing = commit_range(before, now)
            if committing is not None:
                faust_commits.acknowledge(app.consumer, tp.topic, tp.partition, now.committed, *committing)
                log.warning("the group's offset of %s[%d] stayed at %s for %.0f s although this worker had handled"
                            " offsets %d-%d: Faust commits them now", tp.topic, tp.partition, now.committed,
                            LOOK_SECONDS, *committing)  # fmt: skip

    _, other_group = ingest_guard.other_ingest(settings.ingest, settings.group_id)
    inputs = [(topic, partition) for topic in topics for partition in range(partitions[topic])]
    other_offsets: ingest_guard.Offsets | None = None  # the other group's, at the last look

    @app.timer(interval=ingest_guard.LOOK_SECONDS)
    async def look_for_workers_with_the_other_ingest() -> None:
        """Workers with ``ingest = direct`` and ``faust`` at once count every event twice (streams/ingest_guard.py)."""
        nonlocal other_offsets
        try:
            now = await asyncio.to_thread(committed_offsets, settings, other_group, inputs)
        except Exception as error:  # the broker is unreachable: the next look compares with the last good one
            log.info("could not read the committed offsets of group %s: %s", other_group, error)
            return
        moved = ingest_guard.moved_on(other_offsets, now) if other_offsets is not None else {}
        other_offsets = now
        friction.metrics.other_ingest.set(1 if moved else 0)
        if moved:
            log.error(ingest_guard.explain(settings.ingest, settings.group_id, moved, ingest_guard.LOOK_SECONDS))

    @app.on_partitions_assigned.connect
    async def report_assignment(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        owned = app.consumer.assignment()
        for topic in [settings.topic_windows] if direct else every_topic:
            friction.metrics.assigned.labels(topic).set(sum(1 for tp in owned if tp.topic == topic))

    @app.timer(interval=1.0 if settings.broker_quirks == "tansu" else 5.0)
    async def measure_lag() -> None:
        owned = [tp for tp in app.consumer.assignment() if (tp.topic, tp.partition) in next_offsets]
        if not owned:
            return
        ends: Mapping[TP, int | None]
        try:
            if settings.broker_quirks == "tansu":  # it gets ListOffsets wrong: the latest fetch response's
                ends = {tp: app.consumer.highwater(tp) for tp in owned}
            else:
                ends = await app.consumer.highwaters(*owned)  # ListOffsets(latest)
        except Exception as error:  # the broker is unreachable, or a partition not fetched yet or just moved
            log.debug("could not read end offsets: %s", error)  # the next tick tries again
            return
        for tp, end in ends.items():
            done = next_offsets.get((tp.topic, tp.partition))
            if done is not None and end is not None:
                friction.metrics.consumer_lag(tp.topic, tp.partition, max(0, int(end) - done))

    @app.timer(interval=2.0)
    async def finalise_waiting_windows() -> None:
        friction.tick()  # only empty partitions wait this long; their detectors are saved at the next window

    if watcher is not None:

        @app.timer(interval=2.0)
        async def reload_detector_settings() -> None:
            try:
                changed = watcher.poll()
            except JourneyMapError as error:
                log.error("journey map %s is invalid; keeping the detector settings in use:\n%s", watcher.path, error)
                return
            if changed is not None:
                count = friction.detectors.reconfigure(changed)
                log.info("journey map reloaded: %d detectors re-tuned, their learning kept", count)
                if changed.journeys != journey_map.journeys or changed.contact_channels != journey_map.contact_channels:
                    log.warning("journeys, steps or queues changed too: those take effect at the next restart")

    @app.timer(interval=5.0)
    async def report_state_sizes() -> None:
        for kind, size in friction.state_sizes().items():
            friction.metrics.state.labels(kind).set(size)
        friction.metrics.tasks.set(len(asyncio.all_tasks()))

    urls = [url.strip() for url in settings.alertmanager_urls.split(",") if url.strip()]
    sender = AlertSender(urls, registry, buffer_size=settings.alert_buffer_size)
    stages = {(j.name, s.name): s.stage for j in journey_map.journeys.values() for s in j.steps}

    def alert_on(window: FinalWindow, findings: list[Finding]) -> None:
        sender.enqueue(tracker.update(findings, window.start, time.time(), stages, window.examples))

    def alert_on_evidence(found: list[tuple[float, Finding]]) -> None:
        for since, finding in found:  # each starts when its own evidence began
            sender.enqueue(tracker.update([finding], since, time.time(), stages, friction.evidence.examples))

    if urls:
        friction.on_findings = alert_on
        friction.on_evidence = alert_on_evidence

        @app.task
        async def deliver_alerts() -> None:
            await sender.run()

        @app.timer(interval=5.0)
        async def keep_alerts_alive() -> None:
            sender.enqueue(tracker.due(time.time()))

    if stop_after is not None:

        @app.task
        async def stop_when_time_is_up() -> None:
            await app.sleep(stop_after)
            log.info("stopping after %.0f s (--stop-after)", stop_after)
            os.kill(os.getpid(), signal.SIGTERM)

    return WorkerApp(app, pipeline, friction)
