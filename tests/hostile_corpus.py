"""A hand-made corpus of hostile records, each with what the contract says must become of it.

Shared by the pure tests (tests/test_hostile_input.py) and the integration test that pushes
the same corpus through a real worker on the embedded broker. ``expect`` has one entry per
element: ``"processed"`` or the dead-letter reason (docs/events.md). Times are relative to
``now`` so the records stay within the worker's clock bounds whenever they are built.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from frictionwatch.partitioning import partition_for

PROCESSED: Final = "processed"
TOPICS: Final = {"clicks": "journey.clicks", "contacts": "journey.contacts", "feedback": "journey.feedback"}
KEY_FIELDS: Final = {"clicks": "session_id", "contacts": "contact_id", "feedback": None}
TEN_MB: Final = 10 * 1024 * 1024
HS1_PARTITION: Final = partition_for(b"hs-1", 4)


@dataclass(frozen=True)
class Case:
    """One record: its topic kind, key and bytes, and the outcome of each of its elements."""

    name: str
    kind: str  # clicks, contacts or feedback
    value: bytes
    expect: tuple[str, ...]
    key: bytes | None = None

    @property
    def topic(self) -> str:
        return TOPICS[self.kind]


BAD_TS: Final = ("invalid_value",)


def _iso(now: float, pattern: str) -> str:
    """``now - 30`` (the corpus's event time) written with ``pattern`` in UTC."""
    return datetime.fromtimestamp(now - 30, UTC).strftime(pattern)


def click(now: float, **changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "schema": 1, "event_id": "hc-1", "ts": now - 30, "session_id": "hs-1", "customer_id": "hcust-1",
        "journey": "purchase", "step": "cart", "channel": "web", "device": "desktop", "type": "step",
    }  # fmt: skip
    event.update(changes)
    return {key: value for key, value in event.items() if value is not ...}


def contact(now: float, **changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "schema": 1, "event_id": "hk-1", "ts": now - 30, "contact_id": "hct-1", "customer_id": "hcust-1",
        "channel": "phone", "queue": "billing", "type": "answered", "wait_seconds": 42.5,
    }  # fmt: skip
    event.update(changes)
    return {key: value for key, value in event.items() if value is not ...}


def feedback(now: float, **changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "schema": 1, "event_id": "hf-1", "ts": now - 30, "survey": "csat", "score": 4,
        "journey": "purchase", "step": "confirmation",
    }  # fmt: skip
    event.update(changes)
    return {key: value for key, value in event.items() if value is not ...}


def _record(kind: str, name: str, body: dict[str, Any] | list[Any], expect: tuple[str, ...]) -> Case:
    """A JSON record keyed the way a well-behaved producer keys it (by the first element's key field)."""
    first = body[0] if isinstance(body, list) and body else body
    field = KEY_FIELDS[kind]
    key = None
    if field is not None and isinstance(first, dict) and isinstance(first.get(field), str):
        key = first[field].encode()
    return Case(name, kind, orjson.dumps(body), expect, key)


def _raw(kind: str, name: str, value: bytes, expect: str, key: bytes | None = b"hs-raw") -> Case:
    return Case(name, kind, value, (expect,), key if kind != "feedback" else None)


def corpus(now: float, *, huge: bool = True) -> list[Case]:
    """Every hand-made hostile case; ``huge`` includes the 10 MB record."""
    ok = PROCESSED
    valid = orjson.dumps(click(now, event_id="hc-trunc"))
    # ts written as text: NaN and Infinity are not JSON, orjson never writes them
    nan_ts = valid.replace(f'"ts":{now - 30}'.encode(), b'"ts":NaN')
    assert nan_ts != valid
    cases = [
        _record("clicks", "valid click", click(now, event_id="hc-ok"), (ok,)),
        _record("contacts", "valid contact", contact(now, event_id="hk-ok"), (ok,)),
        _record("feedback", "valid feedback", feedback(now, event_id="hf-ok"), (ok,)),
        # bytes that are not UTF-8 / not JSON
        _raw("clicks", "invalid UTF-8 lead bytes", b'\xff\xfe{"schema":1}', "invalid_utf8"),
        _raw("clicks", "invalid UTF-8 inside a string", b'{"schema":1,"step":"caf\xc3"}', "invalid_utf8"),
        _raw("contacts", "overlong UTF-8 encoding", b'{"queue":"\xc0\xaf"}', "invalid_utf8"),
        _raw("clicks", "lone surrogate escape", b'{"schema":1,"step":"\\ud800"}', "not_json"),
        _raw("clicks", "truncated JSON", valid[: len(valid) // 2], "not_json"),
        _raw("clicks", "truncated after the last brace", valid[:-1], "not_json"),
        _raw("clicks", "empty value", b"", "not_json"),
        _raw("clicks", "whitespace only", b"  \n ", "not_json"),
        _raw("clicks", "NaN ts", nan_ts, "not_json"),
        _raw("contacts", "Infinity wait", orjson.dumps(contact(now))[:-1] + b',"x":Infinity}', "not_json"),
        _raw("contacts", "-Infinity", b"-Infinity", "not_json"),
        _raw("clicks", "number beyond double", b'{"schema":1,"ts":1e400}', "not_json"),
        _raw("clicks", "nesting deeper than the parser allows", b"[" * 5000 + b"]" * 5000, "not_json"),
        _raw("clicks", "deep object nesting", b'{"a":' * 3000 + b"1" + b"}" * 3000, "not_json"),
        _raw("clicks", "JSON null", b"null", "not_an_object"),
        _raw("clicks", "a bare string", b'"hello"', "not_an_object"),
        _raw("clicks", "a bare number", b"42", "not_an_object"),
        _raw("clicks", "an empty array", b"[]", "empty_batch"),
        _record(
            "clicks", "too many elements", [click(now, event_id=f"hc-m{i}") for i in range(1001)], ("batch_too_large",)
        ),
        _record(
            "clicks",
            "an array with a non-object",
            [click(now, event_id="hc-a1"), 7, [1]],
            (ok, "not_an_object", "not_an_object"),
        ),
        _record(
            "clicks",
            "moderate nesting in an unknown field is kept, not a problem",
            click(now, event_id="hc-nest", extra=_nested(200)),
            (ok,),
        ),
        # waits
        _record("contacts", "negative wait", contact(now, event_id="hk-w1", wait_seconds=-5), ("invalid_value",)),
        _record("contacts", "absurd wait", contact(now, event_id="hk-w2", wait_seconds=1e12), ("invalid_value",)),
        _record("contacts", "wait as text", contact(now, event_id="hk-w3", wait_seconds="42"), ("wrong_type",)),
        _record("contacts", "wait as boolean", contact(now, event_id="hk-w4", wait_seconds=True), ("wrong_type",)),
        _record("contacts", "wait of a week is allowed", contact(now, event_id="hk-w5", wait_seconds=604800), (ok,)),
        # event time
        _record("clicks", "ts 0 (1970)", click(now, event_id="hc-t1", ts=0), ("ts_too_old",)),
        _record("clicks", "ts 1970 as text", click(now, event_id="hc-t2", ts="1970-01-01T00:00:00Z"), ("ts_too_old",)),
        _record("clicks", "ts 2100", click(now, event_id="hc-t3", ts=4102444800), ("ts_in_future",)),
        _record(
            "clicks", "ts 2100 as text", click(now, event_id="hc-t4", ts="2100-01-01T00:00:00+00:00"), ("ts_in_future",)
        ),
        _record("clicks", "ts in milliseconds", click(now, event_id="hc-t5", ts=int(now * 1000)), ("ts_in_future",)),
        _record("clicks", "ts year 1", click(now, event_id="hc-t9", ts="0001-01-01T00:00:00+14:00"), ("ts_too_old",)),
        _record("clicks", "negative ts", click(now, event_id="hc-t6", ts=-1), ("invalid_value",)),
        _record(
            "clicks", "ts without offset", click(now, event_id="hc-t7", ts="2026-11-24T10:00:00"), ("invalid_value",)
        ),
        _record("clicks", "ts as words", click(now, event_id="hc-t8", ts="yesterday"), ("invalid_value",)),
        # ISO 8601 but not RFC 3339 (Python's fromisoformat takes both): dead-lettered, not processed
        _record("clicks", "ts without seconds", click(now, event_id="hc-t12", ts=_iso(now, "%Y-%m-%dT%H:%MZ")), BAD_TS),
        _record(
            "clicks", "ts offset +0000", click(now, event_id="hc-t13", ts=_iso(now, "%Y-%m-%dT%H:%M:%S+0000")), BAD_TS
        ),
        _record("clicks", "ts basic format", click(now, event_id="hc-t14", ts=_iso(now, "%Y%m%dT%H%M%SZ")), BAD_TS),
        _record("clicks", "ts a huge integer", click(now, event_id="hc-t10", ts=2**64 - 1), ("ts_in_future",)),
        _record("clicks", "ts missing", click(now, event_id="hc-t11", ts=...), ("missing_field",)),
        # huge strings where labels come from
        _record("clicks", "1 MB journey", click(now, event_id="hc-l1", journey="j" * 1_000_000), ("invalid_value",)),
        _record("clicks", "long step", click(now, event_id="hc-l2", step="s" * 201), ("invalid_value",)),
        _record(
            "clicks", "200-char unknown journey", click(now, event_id="hc-l3", journey="j" * 200), ("unknown_journey",)
        ),
        _record("clicks", "huge channel", click(now, event_id="hc-l4", channel="c" * 100_000), ("invalid_value",)),
        _record("contacts", "huge queue", contact(now, event_id="hk-l5", queue="q" * 100_000), ("invalid_value",)),
        _record("clicks", "huge device", click(now, event_id="hc-l6", device="d" * 100_000), ("invalid_value",)),
        _record(
            "clicks", "huge customer id", click(now, event_id="hc-l7", customer_id="u" * 100_000), ("invalid_value",)
        ),
        _record("clicks", "huge event id", click(now, event_id="e" * 100_000), ("invalid_value",)),
        _record(
            "clicks", "NUL in the journey", click(now, event_id="hc-l8", journey="purchase\u0000"), ("unknown_journey",)
        ),
        _record(
            "clicks", "look-alike journey", click(now, event_id="hc-l9", journey="purchаse"), ("unknown_journey",)
        ),  # (a Cyrillic a)
        # not in the journey map
        _record("clicks", "unknown journey", click(now, event_id="hc-u1", journey="refunds"), ("unknown_journey",)),
        _record("clicks", "unknown step", click(now, event_id="hc-u2", step="basket"), ("unknown_step",)),
        _record("clicks", "unknown channel", click(now, event_id="hc-u3", channel="fax"), ("unknown_channel",)),
        _record("contacts", "unknown queue", contact(now, event_id="hk-u4", queue="sales"), ("unknown_queue",)),
        _record(
            "contacts",
            "unknown contact channel",
            contact(now, event_id="hk-u5", channel="pigeon"),
            ("unknown_channel",),
        ),
        _record(
            "feedback", "unknown survey at a step", feedback(now, event_id="hf-u6", step="cart"), ("unknown_survey",)
        ),
        _record("feedback", "score out of range", feedback(now, event_id="hf-u7", score=9), ("invalid_value",)),
        _record("feedback", "score as text", feedback(now, event_id="hf-u8", score="4"), ("wrong_type",)),
        _record("feedback", "score fractional", feedback(now, event_id="hf-u9", score=4.5), ("wrong_type",)),
        # types and required fields
        _record("clicks", "session id a number", click(now, event_id="hc-y1", session_id=42), ("wrong_type",)),
        _record("clicks", "unknown event type", click(now, event_id="hc-y2", type="hover"), ("invalid_value",)),
        _record("clicks", "click without target", click(now, event_id="hc-y3", type="click"), ("missing_field",)),
        _record("clicks", "missing event id", click(now, event_id=...), ("missing_field",)),
        _record(
            "clicks",
            "null optional fields are absent",
            click(now, event_id="hc-y4", device=None, customer_id=None),
            (ok,),
        ),
        # schema versions
        _record("clicks", "schema 2", click(now, event_id="hc-s1", schema=2), ("unsupported_schema",)),
        _record("clicks", "schema as text", click(now, event_id="hc-s2", schema="1"), ("unsupported_schema",)),
        _record("clicks", "schema true", click(now, event_id="hc-s3", schema=True), ("unsupported_schema",)),
        _record("clicks", "schema missing", click(now, event_id="hc-s4", schema=...), ("unsupported_schema",)),
        _record("contacts", "schema 0", contact(now, event_id="hk-s5", schema=0), ("unsupported_schema",)),
        # a batch mixing everything: each element on its own
        _record(
            "clicks",
            "mixed batch",
            [
                click(now, event_id="hc-b1", session_id="hs-b"),
                click(now, event_id="hc-b2", session_id="hs-b", step="x"),
                click(now, event_id="hc-b3", session_id="hs-b", schema=3),
                "text",
                click(now, event_id="hc-b4", session_id="hs-b", ts=0),
            ],
            (ok, "unknown_step", "unsupported_schema", "not_an_object", "ts_too_old"),
        ),
    ]
    if huge:
        big = orjson.dumps(click(now, event_id="hc-huge", device="d" * TEN_MB))
        cases.append(Case("10 MB record", "clicks", big, ("record_too_large",), b"hs-1"))
    return cases


def ordered_cases(now: float) -> list[Case]:
    """Valid events that arrive out of order, late, or twice (same event_id).

    All are processed today. Duplicates are processed twice until re-deliveries are
    de-duplicated by event_id (issue 8, part 2): see the duplicate test to tighten then.
    """
    session = [("landing", 600), ("search", 590), ("product", 580), ("cart", 570)]
    shuffled = [session[i] for i in (3, 0, 2, 1)]
    cases = [
        _record(
            "clicks",
            f"out of order {step}",
            click(now, event_id=f"ho-{step}", session_id="hs-order", step=step, ts=now - age),
            (PROCESSED,),
        )
        for step, age in shuffled
    ]
    # on the partition of hs-1, whose watermark the other cases moved to now - 30: an hour late
    late = next(f"hs-late-{i}" for i in range(1000) if partition_for(f"hs-late-{i}".encode(), 4) == HS1_PARTITION)
    cases.append(
        _record("clicks", "an hour late", click(now, event_id="ho-late", session_id=late, ts=now - 3600), (PROCESSED,))
    )
    return cases


def duplicate_cases(now: float) -> list[Case]:
    """The same event three times, and a batch holding one event twice."""
    event = click(now, event_id="hd-1", session_id="hs-dup", step="landing", ts=now - 20)
    twice = [event, event]
    return [
        _record("clicks", "duplicate 1", event, (PROCESSED,)),
        _record("clicks", "duplicate 2", event, (PROCESSED,)),
        _record("clicks", "duplicate within a batch", twice, (PROCESSED, PROCESSED)),
    ]


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value
