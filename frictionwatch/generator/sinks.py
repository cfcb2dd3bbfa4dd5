"""Where generated records go: a JSON-lines file or Kafka, and the summary of a run.

Both sinks take the same :class:`GeneratedRecord` stream; :func:`run` feeds one from
:func:`~frictionwatch.generator.pipeline.generate` (paced in wall mode) and returns a
:class:`Summary`.

JSON lines: one line per Kafka record, ``{"topic": "clicks|contacts|feedback", "key": ...,
"value": <event object or other JSON>}``; a malformed record whose bytes are not JSON
at all is written as ``{"topic": ..., "key": ..., "value_b64": "<base64 of the bytes>"}``.
Each line also has ``"timestamp"``: when the record was delivered (the Kafka record timestamp
it would get; the latest true event time delivered so far), which the backtest corrects
event times against, as the worker does with device clocks that are off.

Kafka: with ``batch=1`` every event is one record keyed by its key, placed by the
producer's partitioner (configure ``partitioner=murmur2_random`` so it matches
:func:`~frictionwatch.partitioning.partition_for`). With ``batch>1`` events are packed
into JSON array records per (topic, partition), each produced to that explicit partition
with the key of its first event, so every element of an array lives on the partition its
own key maps to. Malformed records always go out alone.
"""

from __future__ import annotations

import base64
import gc
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

import orjson

from frictionwatch.generator.config import GeneratorConfig
from frictionwatch.generator.pipeline import clip, generate, incidents, paced
from frictionwatch.generator.records import TOPIC_KINDS, GeneratedRecord
from frictionwatch.generator.scenario import Incident
from frictionwatch.journeymap import JourneyMap
from frictionwatch.partitioning import partition_for

DEFAULT_LINGER_SECONDS = 0.05
DEFAULT_MAX_RECORD_BYTES = 512 * 1024
PROGRESS_SECONDS = 1.0


class Sink(Protocol):
    """Something records can be written to; ``records`` counts what it wrote per topic kind."""

    records: dict[str, int]

    def write(self, record: GeneratedRecord) -> None: ...

    def idle(self) -> None:
        """Called before the wall-mode pacing waits: a chance to flush what is pending."""

    def close(self) -> None: ...


class Producer(Protocol):
    """The part of ``confluent_kafka.Producer`` the Kafka sink uses."""

    def produce(
        self, topic: str, value: bytes | None = None, key: bytes | None = None, partition: int = -1
    ) -> None: ...

    def poll(self, timeout: float = -1) -> int: ...

    def flush(self, timeout: float = -1) -> int: ...


def _counts() -> dict[str, int]:
    return dict.fromkeys(TOPIC_KINDS, 0)


class JsonLinesSink:
    """Writes one JSON line per record to ``target`` (a path, or a binary stream left open)."""

    def __init__(self, target: str | Path | IO[bytes]) -> None:
        if isinstance(target, str | Path):
            self._stream: IO[bytes] = open(target, "wb", buffering=1 << 20)  # noqa: SIM115 - closed in close()
            self._owned = True
        else:
            self._stream, self._owned = target, False
        self.records = _counts()
        self.delivered = 0.0  # the delivery clock: the latest true event time written so far

    def write(self, record: GeneratedRecord) -> None:
        self.delivered = max(self.delivered, record.ts)
        line: dict[str, object]
        if record.raw is not None:
            line = {"topic": record.kind, "key": record.key, "value_b64": base64.b64encode(record.raw).decode()}
        else:
            line = {"topic": record.kind, "key": record.key, "value": record.value}
        line["timestamp"] = round(self.delivered, 3)
        self._stream.write(orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE))
        self.records[record.kind] += 1

    def idle(self) -> None:
        self._stream.flush()

    def close(self) -> None:
        if self._owned:
            self._stream.close()
        else:
            self._stream.flush()


@dataclass(slots=True)
class _Batch:
    """Events waiting to go out as one array record on one partition."""

    key: bytes
    opened: float
    parts: list[bytes] = field(default_factory=list)
    size: int = 2


class KafkaSink:
    """Produces records to Kafka through a confluent-kafka-like ``producer``.

    ``topics`` maps each topic kind (clicks, contacts, feedback) to its topic name and
    ``partitions`` to its partition count. With ``batch`` > 1, up to ``batch`` events per
    (topic, partition) become one JSON array record, flushed when full, when it would
    pass ``max_record_bytes``, or ``linger`` seconds after its first event. ``records``
    and ``events`` count what was produced per topic kind. Call :meth:`close` at the end.
    """

    def __init__(
        self,
        producer: Producer,
        topics: Mapping[str, str],
        partitions: Mapping[str, int],
        *,
        batch: int = 1,
        linger: float = DEFAULT_LINGER_SECONDS,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        missing = [kind for kind in TOPIC_KINDS if kind not in topics]
        if missing:
            raise ValueError(f"no topic name for: {', '.join(missing)}")
        for kind in TOPIC_KINDS:
            count = partitions.get(kind)
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise ValueError(f"the {kind} topic needs a partition count >= 1, got {count!r}")
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ValueError(f"--batch must be a whole number >= 1, got {batch!r}")
        if not linger > 0:
            raise ValueError(f"linger must be > 0 seconds, got {linger!r}")
        self.producer = producer
        self.topics = dict(topics)
        self.partitions = {kind: partitions[kind] for kind in TOPIC_KINDS}
        self.batch = batch
        self.linger = linger
        self.max_record_bytes = max_record_bytes
        self.clock = clock
        self.records = _counts()
        self.events = _counts()
        self._batches: dict[tuple[str, int], _Batch] = {}
        self._next_check = clock() + linger

    def write(self, record: GeneratedRecord) -> None:
        key = record.key.encode() if record.key is not None else None
        if record.malformed is not None or self.batch == 1 or key is None:
            value = record.raw if record.raw is not None else orjson.dumps(record.value)
            self._produce(record.kind, value, key, -1, events=0 if record.malformed is not None else 1)
        else:
            self._add(record.kind, key, orjson.dumps(record.value))
        if self._batches and self.clock() >= self._next_check:
            self._flush_due()

    def idle(self) -> None:
        self._flush_due()
        self.producer.poll(0)

    def flush(self) -> None:
        """Produce every pending array and wait until the broker has every record."""
        for where in list(self._batches):
            self._flush(where)
        self.producer.flush()

    def close(self) -> None:
        self.flush()

    def _add(self, kind: str, key: bytes, data: bytes) -> None:
        where = (kind, partition_for(key, self.partitions[kind]))
        pending = self._batches.get(where)
        if pending is not None and pending.size + len(data) + 1 > self.max_record_bytes:
            self._flush(where)
            pending = None
        if pending is None:
            pending = self._batches[where] = _Batch(key, self.clock())
        pending.parts.append(data)
        pending.size += len(data) + 1
        if len(pending.parts) >= self.batch:
            self._flush(where)

    def _flush_due(self) -> None:
        now = self.clock()
        for where, pending in list(self._batches.items()):
            if now - pending.opened >= self.linger:
                self._flush(where)
        self._next_check = now + self.linger / 4

    def _flush(self, where: tuple[str, int]) -> None:
        pending = self._batches.pop(where)
        kind, partition = where
        self._produce(kind, b"[" + b",".join(pending.parts) + b"]", pending.key, partition, events=len(pending.parts))

    def _produce(self, kind: str, value: bytes, key: bytes | None, partition: int, *, events: int) -> None:
        topic = self.topics[kind]
        while True:
            try:
                self.producer.produce(topic, value=value, key=key, partition=partition)
                break
            except BufferError:  # the producer's queue is full: let it deliver, then retry
                self.producer.poll(0.1)
        self.producer.poll(0)
        self.records[kind] += 1
        self.events[kind] += events


@dataclass
class Summary:
    """What a run produced, per topic kind: ``events`` (valid), ``malformed`` (bad records,
    each rejected exactly once by the worker) and ``malformed_kinds`` (the same by
    :class:`~frictionwatch.generator.malformed.MalformedKind`); ``records`` counts what the
    sink wrote (an array record counts once)."""

    events: dict[str, int] = field(default_factory=_counts)
    malformed: dict[str, int] = field(default_factory=_counts)
    malformed_kinds: dict[str, dict[str, int]] = field(default_factory=lambda: {kind: {} for kind in TOPIC_KINDS})
    records: dict[str, int] = field(default_factory=_counts)
    incidents: list[Incident] = field(default_factory=list)
    first_ts: float | None = None
    last_ts: float | None = None
    wall_seconds: float = 0.0

    @property
    def total(self) -> int:
        """Items generated: valid events and malformed records."""
        return sum(self.events.values()) + sum(self.malformed.values())

    def add(self, record: GeneratedRecord) -> None:
        if record.malformed is None:
            self.events[record.kind] += 1
        else:
            self.malformed[record.kind] += 1
            kinds = self.malformed_kinds[record.kind]
            kinds[record.malformed] = kinds.get(record.malformed, 0) + 1
        if self.first_ts is None or record.ts < self.first_ts:  # a late batch delivers older events later
            self.first_ts = record.ts
        if self.last_ts is None or record.ts > self.last_ts:
            self.last_ts = record.ts

    def to_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "malformed": self.malformed,
            "malformed_kinds": self.malformed_kinds,
            "records": self.records,
            "total": self.total,
            "incidents": [line for incident in self.incidents for line in incident.ground_truth()],
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
            "wall_seconds": round(self.wall_seconds, 3),
            "events_per_second": round(self.total / self.wall_seconds, 1) if self.wall_seconds > 0 else None,
        }

    def to_json(self) -> str:
        return orjson.dumps(self.to_dict(), option=orjson.OPT_INDENT_2).decode()


def write_ground_truth(incident_list: Iterable[Incident], target: str | Path | IO[bytes]) -> None:
    """Write the incidents' ground truth as JSON lines (see :meth:`Incident.ground_truth`)."""
    lines = b"".join(
        orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE)
        for incident in incident_list
        for line in incident.ground_truth()
    )
    if isinstance(target, str | Path):
        Path(target).write_bytes(lines)
    else:
        target.write(lines)


def run(
    journey_map: JourneyMap,
    config: GeneratorConfig,
    sink: Sink,
    progress: Callable[[Summary], None] | None = None,
    *,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> Summary:
    """Generate traffic into ``sink`` and close it; ``progress`` gets the running summary about
    once a second. Wall mode releases each record when the wall clock reaches its ``ts``.
    The summary's incidents are the ground truth, clipped to the span generated."""
    config = config.pinned(clock())
    summary = Summary(incidents=incidents(journey_map, config))
    records = generate(journey_map, config)
    if config.time_mode == "wall":
        records = paced(records, clock=clock, sleep=sleep, idle=sink.idle)
    began = time.monotonic()
    next_progress = began + PROGRESS_SECONDS
    write, add = sink.write, summary.add
    try:
        with _rare_garbage_collection():
            for record in records:
                write(record)
                add(record)
                if progress is not None and time.monotonic() >= next_progress:
                    summary.wall_seconds = time.monotonic() - began
                    progress(summary)
                    next_progress = time.monotonic() + PROGRESS_SECONDS
    finally:
        sink.close()
        summary.records = dict(sink.records)
        summary.wall_seconds = time.monotonic() - began
        if config.count is not None and config.start is not None:  # the span ends where the count was reached
            end = math.nextafter(summary.last_ts, math.inf) if summary.last_ts is not None else config.start
            summary.incidents = clip(summary.incidents, config.start, min(end, config.end))
    return summary


@contextmanager
def _rare_garbage_collection(young: int = 50_000) -> Iterator[None]:
    """Collect cycles less often while generating.

    The simulation keeps hundreds of thousands of short-lived, acyclic objects (events,
    pending sessions) alive; the default thresholds re-scan them so often that it costs
    10-40% of the run. Reference counting still frees them at once; only the rare cycles wait.
    """
    thresholds = gc.get_threshold()
    gc.set_threshold(young, *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
