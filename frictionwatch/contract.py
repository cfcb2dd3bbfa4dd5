"""The event contract, version 1: what producers send and what the worker accepts.

Three topics carry JSON events (docs/events.md is the reference; the JSON Schema
``frictionwatch/schema/events-v1.json`` says the same for other languages):

* clicks (``journey.clicks``, key ``session_id``): a session moving through a journey;
* contacts (``journey.contacts``, key ``contact_id``): contact-centre queue events;
* feedback (``journey.feedback``): survey answers rating a touchpoint.

:class:`EventValidator` turns one decoded JSON object into a typed event, or raises
:class:`InvalidEvent` naming a machine-readable :class:`Reason` and the offending field.

>>> from frictionwatch.journeymap import load_journey_map
>>> validator = EventValidator(load_journey_map())
>>> event = validator.click({"schema": 1, "event_id": "e1", "ts": "2026-11-24T10:00:00Z",
...     "session_id": "s1", "journey": "purchase", "step": "cart", "channel": "web", "type": "step"})
>>> event.ts, event.step
(1795514400.0, 'cart')
>>> try:
...     validator.click({"schema": 1, "event_id": "e2", "ts": 1795514400, "session_id": "s1",
...         "journey": "purchase", "step": "basket", "channel": "web", "type": "step"})
... except InvalidEvent as error:
...     print(error.reason.value, error.field)
unknown_step step
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from frictionwatch.journeymap import JourneyMap

SCHEMA_VERSION: Final = 1
CLICK_TYPES: Final = ("step", "click", "error", "exit")
CONTACT_TYPES: Final = ("queued", "answered", "abandoned", "resolved", "transferred")
SURVEY_RANGES: Final = {"csat": (1, 5), "nps": (0, 10), "ces": (1, 7)}
MAX_ID_LENGTH: Final = 200
MAX_TEXT_LENGTH: Final = 512
MAX_WAIT_SECONDS: Final = 7 * 86400.0
#: ``sent_ts`` may be this much before ``ts`` (clocks read at different resolutions), not more.
SENT_TS_SLACK: Final = 1.0
# RFC 3339's date-time (section 5.6; a space for the "T" as its note allows), as the JSON Schema's pattern.
RFC3339: Final = re.compile(
    r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}):(\d{2})(\.\d+)?([Zz]|[+-](?:[01]\d|2[0-3]):[0-5]\d)", re.ASCII
)
RFC3339_HINT: Final = "YYYY-MM-DDThh:mm:ss[.fraction] then Z or +hh:mm/-hh:mm, e.g. 2026-11-24T10:00:00Z"


class Reason(StrEnum):
    """Why a record or event was dead-lettered (the ``reason`` label and field)."""

    RECORD_TOO_LARGE = "record_too_large"
    INVALID_UTF8 = "invalid_utf8"
    NOT_JSON = "not_json"
    NOT_AN_OBJECT = "not_an_object"
    EMPTY_BATCH = "empty_batch"
    BATCH_TOO_LARGE = "batch_too_large"
    UNSUPPORTED_SCHEMA = "unsupported_schema"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    INVALID_VALUE = "invalid_value"
    UNKNOWN_JOURNEY = "unknown_journey"
    UNKNOWN_STEP = "unknown_step"
    UNKNOWN_CHANNEL = "unknown_channel"
    UNKNOWN_QUEUE = "unknown_queue"
    UNKNOWN_SURVEY = "unknown_survey"
    TS_IN_FUTURE = "ts_in_future"
    TS_TOO_OLD = "ts_too_old"
    # Not a contract rule: the worker failed on this record (a bug); it is kept, not lost.
    INTERNAL_ERROR = "internal_error"


class InvalidEvent(ValueError):
    """An event breaks the contract: ``reason`` says how, ``field`` where."""

    def __init__(self, reason: Reason, field: str | None, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.field = field
        self.detail = detail


@dataclass(frozen=True, slots=True)
class ClickEvent:
    """A clickstream event: ``type`` is step, click, error or exit."""

    event_id: str
    ts: float
    session_id: str
    journey: str
    step: str
    channel: str
    type: str
    customer_id: str | None = None
    device: str | None = None
    target: str | None = None
    code: str | None = None
    sent_ts: float | None = None  # the device's clock when it sent the record
    device_ts: float | None = None  # the ts the device gave, when the event time was corrected (ts)

    @property
    def key(self) -> str:
        return self.session_id


@dataclass(frozen=True, slots=True)
class ContactEvent:
    """A contact-centre event: ``type`` is queued, answered, abandoned, resolved or transferred."""

    event_id: str
    ts: float
    contact_id: str
    channel: str
    queue: str
    type: str
    customer_id: str | None = None
    session_id: str | None = None
    wait_seconds: float | None = None
    sent_ts: float | None = None  # the device's clock when it sent the record
    device_ts: float | None = None  # the ts the device gave, when the event time was corrected (ts)

    @property
    def key(self) -> str:
        return self.contact_id


@dataclass(frozen=True, slots=True)
class FeedbackEvent:
    """A survey answer rating a journey step (journey, step) or a queue (channel, queue)."""

    event_id: str
    ts: float
    survey: str
    score: int
    customer_id: str | None = None
    journey: str | None = None
    step: str | None = None
    channel: str | None = None
    queue: str | None = None
    sent_ts: float | None = None  # the device's clock when it sent the record
    device_ts: float | None = None  # the ts the device gave, when the event time was corrected (ts)

    @property
    def key(self) -> str | None:
        """Feedback has no co-partitioning rule: any key (or none) is accepted."""
        return None


Event = ClickEvent | ContactEvent | FeedbackEvent


@dataclass(frozen=True, slots=True)
class TimeLimits:
    """How far from the worker's clock an event's ``ts`` may be (seconds)."""

    max_future_skew: float = 300.0
    max_age: float = 7 * 86400.0


class EventValidator:
    """Checks decoded JSON objects against the contract and the journey map.

    ``now`` passed to the methods is the wall-clock time used for the ``ts`` bounds;
    ``None`` skips them (replaying old files in a backtest).
    """

    def __init__(self, journey_map: JourneyMap, limits: TimeLimits = TimeLimits()) -> None:
        self.journey_map = journey_map
        self.limits = limits
        # The contract's and the map's own strings, for the events to share: a session keeps its
        # channel for its life.
        self.click_types: dict[str, str] = {name: name for name in CLICK_TYPES}
        self.channels: dict[str, str] = {}
        for journey in journey_map.journeys.values():
            for step in journey.steps:
                self.channels.update((channel, channel) for channel in step.channels)

    def click(self, obj: dict[str, Any], now: float | None = None) -> ClickEvent:
        """The event ``obj`` holds; InvalidEvent naming the first broken rule."""
        event = self._valid_click(obj, now)
        return event if event is not None else self._click(obj, now)

    def _valid_click(self, obj: dict[str, Any], now: float | None) -> ClickEvent | None:
        """The fast path: the event when every field is plainly valid, else None (then
        :meth:`_click` decides, and names what is wrong). It accepts nothing :meth:`_click` rejects."""
        get = obj.get
        schema, ts = get("schema"), get("ts")
        event_id, session_id, journey, step_name, channel, kind = (
            get("event_id"), get("session_id"), get("journey"), get("step"), get("channel"), get("type"),
        )  # fmt: skip
        if not (
            type(schema) is int and schema == SCHEMA_VERSION
            and (type(ts) is float or type(ts) is int) and 0 <= ts < math.inf
            and type(event_id) is str and 0 < len(event_id) <= MAX_ID_LENGTH
            and type(session_id) is str and 0 < len(session_id) <= MAX_ID_LENGTH
            and type(journey) is str and type(step_name) is str and type(channel) is str and type(kind) is str
        ):  # fmt: skip
            return None
        known = self.journey_map.journeys.get(journey)
        step = known.steps_by_name.get(step_name) if known is not None else None
        kind = self.click_types.get(kind)
        if step is None or channel not in step.channels or kind is None:
            return None
        sent_ts = get("sent_ts")
        if sent_ts is not None and not (
            (type(sent_ts) is float or type(sent_ts) is int) and ts - SENT_TS_SLACK <= sent_ts < math.inf
        ):
            return None
        if now is not None:
            limits = self.limits
            if sent_ts is None and not now - limits.max_age <= ts <= now + limits.max_future_skew:
                return None
            if sent_ts is not None and sent_ts - ts > limits.max_age:
                return None
        customer_id, device, target, code = get("customer_id"), get("device"), get("target"), get("code")
        if not (
            (customer_id is None or (type(customer_id) is str and 0 < len(customer_id) <= MAX_ID_LENGTH))
            and (device is None or (type(device) is str and 0 < len(device) <= MAX_ID_LENGTH))
            and ((target is None and kind != "click") or (type(target) is str and 0 < len(target) <= MAX_TEXT_LENGTH))
            and (code is None or (type(code) is str and 0 < len(code) <= MAX_ID_LENGTH))
        ):
            return None
        return ClickEvent(
            event_id, float(ts), session_id, known.name, step.name, self.channels[channel], kind,  # type: ignore[union-attr]
            customer_id, device, target, code, None if sent_ts is None else float(sent_ts),
        )  # fmt: skip

    def _click(self, obj: dict[str, Any], now: float | None = None) -> ClickEvent:
        _check_schema(obj)
        event_id = _id(obj, "event_id")
        ts, sent_ts = self._ts(obj, now)
        session_id = _id(obj, "session_id")
        journey = _text(obj, "journey", MAX_ID_LENGTH)
        step_name = _text(obj, "step", MAX_ID_LENGTH)
        channel = _text(obj, "channel", MAX_ID_LENGTH)
        kind = _choice(obj, "type", CLICK_TYPES)
        customer_id = _optional_id(obj, "customer_id")
        device = _optional_text(obj, "device", MAX_ID_LENGTH)
        target = (
            _text(obj, "target", MAX_TEXT_LENGTH) if kind == "click" else _optional_text(obj, "target", MAX_TEXT_LENGTH)
        )
        code = _optional_code(obj)
        known = self.journey_map.journeys.get(journey)
        if known is None:
            raise InvalidEvent(Reason.UNKNOWN_JOURNEY, "journey", f"journey {_show(journey)} is not in the journey map")
        step = known.steps_by_name.get(step_name)
        if step is None:
            raise InvalidEvent(Reason.UNKNOWN_STEP, "step", f"journey {journey!r} has no step {_show(step_name)}")
        if channel not in step.channels:
            raise InvalidEvent(
                Reason.UNKNOWN_CHANNEL, "channel", f"step {journey}/{step_name} has no channel {_show(channel)}"
            )
        return ClickEvent(
            event_id, ts, session_id, journey, step_name, channel, kind, customer_id, device, target, code, sent_ts
        )

    def contact(self, obj: dict[str, Any], now: float | None = None) -> ContactEvent:
        _check_schema(obj)
        event_id = _id(obj, "event_id")
        ts, sent_ts = self._ts(obj, now)
        contact_id = _id(obj, "contact_id")
        channel = _text(obj, "channel", MAX_ID_LENGTH)
        queue = _text(obj, "queue", MAX_ID_LENGTH)
        kind = _choice(obj, "type", CONTACT_TYPES)
        customer_id = _optional_id(obj, "customer_id")
        session_id = _optional_id(obj, "session_id")
        wait = obj.get("wait_seconds")
        if wait is not None:
            if isinstance(wait, bool) or not isinstance(wait, int | float):
                raise InvalidEvent(
                    Reason.WRONG_TYPE, "wait_seconds", f"expected a number of seconds, got {_kind(wait)}"
                )
            if not 0 <= wait <= MAX_WAIT_SECONDS:
                raise InvalidEvent(
                    Reason.INVALID_VALUE, "wait_seconds", f"{wait!r} is outside 0 to {MAX_WAIT_SECONDS:.0f} seconds"
                )
            wait = float(wait)
        if channel not in self.journey_map.contact_channels:
            raise InvalidEvent(Reason.UNKNOWN_CHANNEL, "channel", f"no contact channel {_show(channel)} in the map")
        if not self.journey_map.has_queue(channel, queue):
            raise InvalidEvent(Reason.UNKNOWN_QUEUE, "queue", f"channel {channel!r} has no queue {_show(queue)}")
        return ContactEvent(event_id, ts, contact_id, channel, queue, kind, customer_id, session_id, wait, sent_ts)

    def feedback(self, obj: dict[str, Any], now: float | None = None) -> FeedbackEvent:
        _check_schema(obj)
        event_id = _id(obj, "event_id")
        ts, sent_ts = self._ts(obj, now)
        survey = _choice(obj, "survey", tuple(SURVEY_RANGES))
        score = obj.get("score")
        if score is None:
            raise InvalidEvent(Reason.MISSING_FIELD, "score", "missing required field 'score'")
        if isinstance(score, bool) or not isinstance(score, int):
            raise InvalidEvent(Reason.WRONG_TYPE, "score", f"expected a whole number, got {_kind(score)}")
        low, high = SURVEY_RANGES[survey]
        if not low <= score <= high:
            raise InvalidEvent(Reason.INVALID_VALUE, "score", f"{survey} scores run from {low} to {high}, got {score}")
        customer_id = _optional_id(obj, "customer_id")
        journey = _optional_text(obj, "journey", MAX_ID_LENGTH)
        step_name = _optional_text(obj, "step", MAX_ID_LENGTH)
        channel = _optional_text(obj, "channel", MAX_ID_LENGTH)
        queue = _optional_text(obj, "queue", MAX_ID_LENGTH)
        if journey is not None or step_name is not None:
            if queue is not None:
                raise InvalidEvent(Reason.INVALID_VALUE, "queue", "rate either journey+step or channel+queue, not both")
            surveys = self._step_surveys(journey, step_name, channel)
        elif channel is not None or queue is not None:
            surveys = self._queue_surveys(channel, queue)
        else:
            raise InvalidEvent(
                Reason.MISSING_FIELD,
                "journey",
                "feedback must name the touchpoint it rates: journey+step or channel+queue",
            )
        if survey not in surveys:
            raise InvalidEvent(Reason.UNKNOWN_SURVEY, "survey", f"this touchpoint has no {survey} survey in the map")
        return FeedbackEvent(event_id, ts, survey, score, customer_id, journey, step_name, channel, queue, sent_ts)

    def _step_surveys(self, journey: str | None, step_name: str | None, channel: str | None) -> tuple[str, ...]:
        if journey is None:
            raise InvalidEvent(Reason.MISSING_FIELD, "journey", "missing required field 'journey' (given with 'step')")
        if step_name is None:
            raise InvalidEvent(Reason.MISSING_FIELD, "step", "missing required field 'step' (given with 'journey')")
        known = self.journey_map.journeys.get(journey)
        if known is None:
            raise InvalidEvent(Reason.UNKNOWN_JOURNEY, "journey", f"journey {_show(journey)} is not in the journey map")
        step = known.steps_by_name.get(step_name)
        if step is None:
            raise InvalidEvent(Reason.UNKNOWN_STEP, "step", f"journey {journey!r} has no step {_show(step_name)}")
        if channel is not None and channel not in step.channels:
            raise InvalidEvent(
                Reason.UNKNOWN_CHANNEL, "channel", f"step {journey}/{step_name} has no channel {_show(channel)}"
            )
        return step.surveys

    def _queue_surveys(self, channel: str | None, queue: str | None) -> tuple[str, ...]:
        if channel is None:
            raise InvalidEvent(Reason.MISSING_FIELD, "channel", "missing required field 'channel' (given with 'queue')")
        if queue is None:
            raise InvalidEvent(Reason.MISSING_FIELD, "queue", "missing required field 'queue' (given with 'channel')")
        known = self.journey_map.contact_channels.get(channel)
        if known is None:
            raise InvalidEvent(Reason.UNKNOWN_CHANNEL, "channel", f"no contact channel {_show(channel)} in the map")
        if queue not in known.queues:
            raise InvalidEvent(Reason.UNKNOWN_QUEUE, "queue", f"channel {channel!r} has no queue {_show(queue)}")
        return known.surveys

    def _ts(self, obj: dict[str, Any], now: float | None) -> tuple[float, float | None]:
        """``ts`` and ``sent_ts``; the clock bounds apply to ``ts`` as the worker's clock has it:
        with ``sent_ts``, the device's clock is read against ``now`` (the worker corrects the
        time by the record's arrival later, streams/eventtime.py)."""
        ts = parse_ts(obj.get("ts"))
        sent = obj.get("sent_ts")
        sent_ts = None if sent is None else parse_ts(sent, "sent_ts")
        if sent_ts is not None and sent_ts < ts - SENT_TS_SLACK:
            raise InvalidEvent(
                Reason.INVALID_VALUE,
                "sent_ts",
                f"sent_ts is {ts - sent_ts:.0f} s before ts: an event is sent after it happens",
            )
        if now is not None:
            held = 0.0 if sent_ts is None else sent_ts - ts  # how long the device held the event
            if sent_ts is None and ts > now + self.limits.max_future_skew:
                hint = " (milliseconds? ts is in seconds)" if ts > now * 100 else ""
                raise InvalidEvent(
                    Reason.TS_IN_FUTURE, "ts", f"ts is {ts - now:.0f} s ahead of the worker's clock{hint}"
                )
            if (sent_ts is None and ts < now - self.limits.max_age) or held > self.limits.max_age:
                age = now - ts if sent_ts is None else held
                raise InvalidEvent(Reason.TS_TOO_OLD, "ts", f"ts is {age / 86400:.1f} days old")
        return ts, sent_ts


def parse_ts(value: object, name: str = "ts") -> float:
    """Event time in epoch seconds from a number or an RFC 3339 date-time (with its offset).

    Other ISO 8601 forms (a date alone, no seconds, no offset, +0100, week dates) are refused
    with the form expected; a leap second (``23:59:60Z``) is the next day's first instant.

    >>> parse_ts(1700000000), parse_ts("2023-11-14T22:13:20.5+00:00"), parse_ts("2023-11-14t22:13:20z")
    (1700000000.0, 1700000000.5, 1700000000.0)
    >>> parse_ts("2023-11-14T22:13+00:00")
    Traceback (most recent call last):
    ...
    frictionwatch.contract.InvalidEvent: invalid_value: '2023-11-14T22:13+00:00' is not an RFC 3339 time \
(YYYY-MM-DDThh:mm:ss[.fraction] then Z or +hh:mm/-hh:mm, e.g. 2026-11-24T10:00:00Z)
    """
    if value is None:
        raise InvalidEvent(Reason.MISSING_FIELD, name, f"missing required field {name!r}")
    if isinstance(value, bool):
        raise InvalidEvent(Reason.WRONG_TYPE, name, "expected epoch seconds or an RFC 3339 string, got a boolean")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise InvalidEvent(Reason.INVALID_VALUE, name, f"{value!r} is not a valid epoch time")
        return float(value)
    if isinstance(value, str):
        if len(value) > 40:
            raise InvalidEvent(Reason.INVALID_VALUE, name, "too long for an RFC 3339 time")
        return _parse_rfc3339(value, name)
    raise InvalidEvent(Reason.WRONG_TYPE, name, f"expected epoch seconds or an RFC 3339 string, got {_kind(value)}")


def _parse_rfc3339(text: str, name: str = "ts") -> float:
    match = RFC3339.fullmatch(text)
    if match is None:
        if RFC3339.fullmatch(text + "Z"):
            raise InvalidEvent(Reason.INVALID_VALUE, name, f"{text!r} has no UTC offset (add Z or +hh:mm)")
        raise InvalidEvent(Reason.INVALID_VALUE, name, f"{text!r} is not an RFC 3339 time ({RFC3339_HINT})")
    date, hour_minute, second, fraction, offset = match.groups()
    leap = second == "60"
    offset = "+00:00" if offset in ("Z", "z") else offset
    try:
        parsed = datetime.fromisoformat(f"{date}T{hour_minute}:{'59' if leap else second}{fraction or ''}{offset}")
    except ValueError as error:
        raise InvalidEvent(Reason.INVALID_VALUE, name, f"{text!r} is not a valid time: {error}") from None
    return parsed.timestamp() + (1.0 if leap else 0.0)


def _check_schema(obj: dict[str, Any]) -> None:
    version = obj.get("schema")
    if version != SCHEMA_VERSION or isinstance(version, bool):
        detail = "missing 'schema'" if version is None else f"schema {_show(version)} is not supported"
        raise InvalidEvent(Reason.UNSUPPORTED_SCHEMA, "schema", f"{detail}; this worker reads schema 1")


def _text(obj: dict[str, Any], name: str, limit: int) -> str:
    value = obj.get(name)
    if value is None:
        raise InvalidEvent(Reason.MISSING_FIELD, name, f"missing required field {name!r}")
    if not isinstance(value, str):
        raise InvalidEvent(Reason.WRONG_TYPE, name, f"expected a string, got {_kind(value)}")
    if not value or len(value) > limit:
        raise InvalidEvent(Reason.INVALID_VALUE, name, f"must be 1 to {limit} characters, got {len(value)}")
    return value


def _id(obj: dict[str, Any], name: str) -> str:
    return _text(obj, name, MAX_ID_LENGTH)


def _optional_text(obj: dict[str, Any], name: str, limit: int) -> str | None:
    return None if obj.get(name) is None else _text(obj, name, limit)


def _optional_id(obj: dict[str, Any], name: str) -> str | None:
    return _optional_text(obj, name, MAX_ID_LENGTH)


def _optional_code(obj: dict[str, Any]) -> str | None:
    code = obj.get("code")
    if code is None:
        return None
    if isinstance(code, bool) or not isinstance(code, str | int):
        raise InvalidEvent(Reason.WRONG_TYPE, "code", f"expected a string or whole number, got {_kind(code)}")
    text = str(code)
    if not text or len(text) > MAX_ID_LENGTH:
        raise InvalidEvent(Reason.INVALID_VALUE, "code", f"must be 1 to {MAX_ID_LENGTH} characters")
    return text


def _choice(obj: dict[str, Any], name: str, choices: tuple[str, ...]) -> str:
    value = _text(obj, name, MAX_ID_LENGTH)
    if value not in choices:
        raise InvalidEvent(Reason.INVALID_VALUE, name, f"{_show(value)} is not one of: {', '.join(choices)}")
    return value


def _kind(value: object) -> str:
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list", dict: "an object"}
    return names.get(type(value), type(value).__name__)


def _show(value: object, limit: int = 60) -> str:
    """repr() of a value cut to ``limit`` characters, so hostile input can't flood logs."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
