"""Turning one Kafka record into validated events, rejections and strays (no I/O).

A record's value is one JSON event object or a JSON array of them. Each element is
validated on its own: a bad element is rejected alone while its neighbours go on.
Clicks and contacts must sit on the partition their key (session_id, contact_id) hashes
to, because the state of a session or contact lives with that partition; an element
elsewhere is a *stray*, to be re-sent keyed by itself rather than processed here.

Valid events get their event time corrected for the device's clock by what the record's
arrival tells (:mod:`~frictionwatch.streams.eventtime`); ``clock_readings`` says how far
off the clocks were, where that could be measured.

On the clicks topic a compiled fast path (``frictionwatch-native``, ``native/`` in the
repository) decodes records whose every element is plainly valid and on its partition; any
other record, and every record where it is not installed, goes through the Python code
here, which is the reference (``tests/test_native.py`` checks that both give the same).

Every element ends in exactly one of ``events``, ``rejected`` or ``strays``; a record
that can't be split into elements (not JSON, too large) is one rejected item. So
``items == len(events) + len(rejected) + len(strays)`` for every record.

>>> from frictionwatch.contract import EventValidator
>>> from frictionwatch.journeymap import load_journey_map
>>> decoder = RecordDecoder("feedback", EventValidator(load_journey_map()), partitions=1)
>>> good = b'{"schema":1,"event_id":"f1","ts":1,"survey":"csat","score":5,"channel":"phone","queue":"billing"}'
>>> record = decoder.decode(b"[" + good + b', {"schema": 1}]', partition=0)
>>> len(record.events), [r.reason.value for r in record.rejected], record.items
(1, ['missing_field'], 2)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from frictionwatch import contract
from frictionwatch.contract import ClickEvent, Event, EventValidator, InvalidEvent, Reason
from frictionwatch.partitioning import partition_for
from frictionwatch.streams.eventtime import ClockReading, EventClock, arrival_of

TopicKind = Literal["clicks", "contacts", "feedback"]
KEY_FIELDS: dict[str, str | None] = {"clicks": "session_id", "contacts": "contact_id", "feedback": None}
VALIDATE_METHODS = {"clicks": "click", "contacts": "contact", "feedback": "feedback"}

try:
    from frictionwatch_native import ClickDecoder as CompiledClickDecoder
except ImportError:  # not built here (no Rust toolchain): the Python code does all of it
    CompiledClickDecoder = None  # type: ignore[assignment,misc]

#: whether the compiled fast path for clicks is installed
COMPILED_AVAILABLE = CompiledClickDecoder is not None


@dataclass(frozen=True, slots=True)
class Rejection:
    """An element (``index``) or a whole record (``index`` None) that breaks the contract."""

    reason: Reason
    field: str | None
    detail: str
    raw: bytes
    index: int | None = None


@dataclass(frozen=True, slots=True)
class Stray:
    """A valid element on the wrong partition: re-send ``raw`` to ``partition`` keyed by ``key``."""

    key: bytes
    partition: int
    raw: bytes
    index: int


@dataclass(slots=True)
class DecodedRecord:
    """What one record held. ``items`` counts the elements (a whole bad record is one)."""

    events: list[Event] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    strays: list[Stray] = field(default_factory=list)
    clock_readings: list[ClockReading] = field(default_factory=list)

    @property
    def items(self) -> int:
        return len(self.events) + len(self.rejected) + len(self.strays)


class RecordDecoder:
    """Decodes and validates the records of one input topic.

    Args:
        kind: which contract the topic carries: clicks, contacts or feedback.
        validator: the contract and journey-map checks.
        partitions: the topic's partition count, for the co-partitioning check.
        max_record_bytes: larger records are rejected whole (``record_too_large``).
        max_batch_events: arrays with more elements are rejected whole (``batch_too_large``).
        clock: corrects event times for devices whose clocks are off (the default tolerance when not given).
        compiled: take clicks records through the compiled fast path; ``None``: where it is
            installed. ``True`` where it is not installed is an error.
    """

    def __init__(
        self,
        kind: TopicKind,
        validator: EventValidator,
        *,
        partitions: int,
        max_record_bytes: int = 1_048_576,
        max_batch_events: int = 1000,
        clock: EventClock | None = None,
        compiled: bool | None = None,
    ) -> None:
        if kind not in KEY_FIELDS:
            raise ValueError(f"kind must be clicks, contacts or feedback, not {kind!r}")
        if compiled and not COMPILED_AVAILABLE:
            raise ValueError("compiled=True, but frictionwatch-native is not installed (scripts/setup builds it)")
        self.kind = kind
        self.partitions = partitions
        self.max_record_bytes = max_record_bytes
        self.max_batch_events = max_batch_events
        self.key_field = KEY_FIELDS[kind]
        self.clock = clock or EventClock()
        self.validate: Callable[[dict[str, Any], float | None], Event] = getattr(validator, VALIDATE_METHODS[kind])
        self.compiled = (
            _compiled_clicks(validator, partitions, max_record_bytes, max_batch_events)
            if kind == "clicks" and (compiled if compiled is not None else COMPILED_AVAILABLE)
            else None
        )

    def decode(
        self, value: bytes | None, partition: int, now: float | None = None, timestamp: float | None = None
    ) -> DecodedRecord:
        """Split, decode and validate one record read from ``partition``.

        ``now`` is the worker's clock (for the contract's time bounds), ``timestamp`` the
        record's Kafka timestamp; the earlier of the two is the record's arrival, against which
        event times are corrected (neither known: no correction, as in a replay of bare events).
        """
        record = self._decode(value, partition, now)
        if record.events:
            record.events, record.clock_readings = self.clock.correct(record.events, arrival_of(timestamp, now))
        return record

    def _decode(self, value: bytes | None, partition: int, now: float | None) -> DecodedRecord:
        if self.compiled is not None and value:
            events = self.compiled.decode(value, partition, now)
            if events is not None:
                return DecodedRecord(events)
        record = DecodedRecord()
        whole = self._parse(value, record)
        if whole is None:
            if not record.rejected:  # the JSON value null: not an object, and must not vanish uncounted
                self._element(whole, None, partition, now, record, value)
            return record
        if isinstance(whole, list):
            if not whole:
                record.rejected.append(
                    Rejection(Reason.EMPTY_BATCH, None, "an empty array holds no events", value or b"")
                )
            elif len(whole) > self.max_batch_events:
                detail = f"{len(whole)} events in one record; at most {self.max_batch_events}"
                record.rejected.append(Rejection(Reason.BATCH_TOO_LARGE, None, detail, value or b""))
            else:
                for index, element in enumerate(whole):
                    self._element(element, index, partition, now, record, None)
        else:
            self._element(whole, None, partition, now, record, value)
        return record

    def _parse(self, value: bytes | None, record: DecodedRecord) -> Any:
        if not value:
            record.rejected.append(Rejection(Reason.NOT_JSON, None, "the record has no value", b""))
            return None
        if len(value) > self.max_record_bytes:
            detail = f"{len(value)} bytes; at most {self.max_record_bytes}"
            record.rejected.append(Rejection(Reason.RECORD_TOO_LARGE, None, detail, value))
            return None
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError as error:
            try:
                value.decode("utf-8")
            except UnicodeDecodeError as utf8_error:
                detail = f"invalid UTF-8 at byte {utf8_error.start}"
                record.rejected.append(Rejection(Reason.INVALID_UTF8, None, detail, value))
                return None
            record.rejected.append(Rejection(Reason.NOT_JSON, None, f"not JSON: {error}", value))
            return None

    def _element(
        self,
        element: Any,
        index: int | None,
        partition: int,
        now: float | None,
        record: DecodedRecord,
        raw: bytes | None,
    ) -> None:
        if not isinstance(element, dict):
            detail = f"expected a JSON object, got {type(element).__name__}"
            record.rejected.append(Rejection(Reason.NOT_AN_OBJECT, None, detail, raw or orjson.dumps(element), index))
            return
        try:
            event = self.validate(element, now)
        except InvalidEvent as error:
            record.rejected.append(
                Rejection(error.reason, error.field, error.detail, raw or orjson.dumps(element), index)
            )
            return
        if self.key_field is not None:
            key = element[self.key_field].encode()
            home = partition_for(key, self.partitions)
            if home != partition:
                record.strays.append(Stray(key, home, raw or orjson.dumps(element), index or 0))
                return
        record.events.append(event)


def _compiled_clicks(
    validator: EventValidator, partitions: int, max_record_bytes: int, max_batch_events: int
) -> CompiledClickDecoder:
    """The compiled click decoder, given the validator's contract, map and strings."""
    assert CompiledClickDecoder is not None
    steps = {
        journey.name: {
            step.name: (journey.name, step.name, {channel: validator.channels[channel] for channel in step.channels})
            for step in journey.steps
        }
        for journey in validator.journey_map.journeys.values()
    }
    limits = {
        "partitions": partitions, "max_record_bytes": max_record_bytes, "max_batch_events": max_batch_events,
        "max_age": validator.limits.max_age, "max_future_skew": validator.limits.max_future_skew,
        "schema_version": contract.SCHEMA_VERSION, "max_id_length": contract.MAX_ID_LENGTH,
        "max_text_length": contract.MAX_TEXT_LENGTH, "sent_ts_slack": contract.SENT_TS_SLACK,
    }  # fmt: skip
    return CompiledClickDecoder(ClickEvent, steps, validator.click_types, limits)
