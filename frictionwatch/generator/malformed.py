"""Realistic bad input: what buggy producers, old clients and broken proxies really send.

:func:`corrupt` turns a valid event into one malformed record of a kind that applies to
its topic (the valid event is lost, as it would be). Every malformed record is rejected
exactly once by the worker: by JSON or UTF-8 decoding, as not an object (arrays hold at
most one element, since each element of an array is judged on its own), or by
:class:`~frictionwatch.contract.EventValidator` (``ts_in_milliseconds`` only when the
validator is given the current time, as the live worker is).
"""

from __future__ import annotations

from enum import StrEnum
from random import Random
from typing import Any, Final

import orjson

from frictionwatch.contract import SURVEY_RANGES
from frictionwatch.generator.records import CLICKS, CONTACTS, FEEDBACK


class MalformedKind(StrEnum):
    """The kinds of malformed records (the ``malformed`` counters of the summary)."""

    TRUNCATED_JSON = "truncated_json"
    INVALID_UTF8 = "invalid_utf8"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    UNKNOWN_NAME = "unknown_name"
    UNSUPPORTED_SCHEMA = "unsupported_schema"
    TS_IN_MILLISECONDS = "ts_in_milliseconds"
    NEGATIVE_WAIT = "negative_wait"
    SCORE_OUT_OF_RANGE = "score_out_of_range"


_COMMON: Final = (
    MalformedKind.TRUNCATED_JSON,
    MalformedKind.INVALID_UTF8,
    MalformedKind.NOT_AN_OBJECT,
    MalformedKind.MISSING_FIELD,
    MalformedKind.WRONG_TYPE,
    MalformedKind.UNKNOWN_NAME,
    MalformedKind.UNSUPPORTED_SCHEMA,
    MalformedKind.TS_IN_MILLISECONDS,
)
KINDS_BY_TOPIC: Final[dict[str, tuple[MalformedKind, ...]]] = {
    CLICKS: _COMMON,
    CONTACTS: (*_COMMON, MalformedKind.NEGATIVE_WAIT),
    FEEDBACK: (*_COMMON, MalformedKind.SCORE_OUT_OF_RANGE),
}
_REQUIRED: Final = {
    CLICKS: ("ts", "session_id", "journey", "step", "channel", "type"),
    CONTACTS: ("ts", "contact_id", "channel", "queue", "type"),
    FEEDBACK: ("ts", "survey", "score"),
}
# Names are lower case in every journey map, so a capitalised or hyphenated name is never known.
_NAMED_FIELDS: Final = {CLICKS: ("step", "step", "journey", "channel"), CONTACTS: ("queue", "queue", "channel")}


def corrupt(rng: Random, topic: str, event: dict[str, Any]) -> tuple[MalformedKind, Any, bytes | None]:
    """(kind, JSON value or None, raw bytes or None) of a malformed record made from ``event``."""
    kind = rng.choice(KINDS_BY_TOPIC[topic])
    if kind is MalformedKind.TRUNCATED_JSON:
        data = orjson.dumps(event)
        return kind, None, data[: rng.randrange(1, len(data) - 1)]
    if kind is MalformedKind.INVALID_UTF8:
        # A Latin-1 "é" (one byte, 0xE9) where UTF-8 needs two: an old client's encoding.
        identifier = str(event["event_id"]).encode()
        return kind, None, orjson.dumps(event).replace(identifier, identifier + b"-caf\xe9", 1)
    if kind is MalformedKind.NOT_AN_OBJECT:
        # At most one element: the worker dead-letters each element of an array on its own.
        return kind, rng.choice((event["ts"], event["event_id"], [event["ts"]], [], [[event["event_id"]]])), None
    broken = dict(event)
    if kind is MalformedKind.MISSING_FIELD:
        del broken[rng.choice(_REQUIRED[topic])]
    elif kind is MalformedKind.WRONG_TYPE:
        _wrong_type(rng, topic, broken)
    elif kind is MalformedKind.UNKNOWN_NAME:
        _unknown_name(rng, topic, broken)
    elif kind is MalformedKind.UNSUPPORTED_SCHEMA:
        broken["schema"] = 2
    elif kind is MalformedKind.TS_IN_MILLISECONDS:
        broken["ts"] = round(event["ts"] * 1000)
    elif kind is MalformedKind.NEGATIVE_WAIT:
        broken["wait_seconds"] = -round(rng.uniform(1.0, 120.0), 3)
    elif kind is MalformedKind.SCORE_OUT_OF_RANGE:
        low, high = SURVEY_RANGES[event["survey"]]
        broken["score"] = rng.choice((low - 1, high + 1, high * 10))
    return kind, broken, None


def _wrong_type(rng: Random, topic: str, event: dict[str, Any]) -> None:
    if rng.random() < 0.5:
        event["ts"] = True
    elif topic == CONTACTS:
        event["wait_seconds"] = str(event.get("wait_seconds", 12.5))
    elif topic == FEEDBACK:
        event["score"] = str(event["score"])
    else:
        event["session_id"] = 42


def _unknown_name(rng: Random, topic: str, event: dict[str, Any]) -> None:
    field = ("step" if "step" in event else "queue") if topic == FEEDBACK else rng.choice(_NAMED_FIELDS[topic])
    name = str(event[field])
    event[field] = name.capitalize() if rng.random() < 0.5 else name.replace("_", "-") + "-v2"
