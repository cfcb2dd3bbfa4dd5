"""Every validation reason of the event contract, with the field it names."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import jsonschema
import pytest

from conftest import NOW, click, contact, feedback
from frictionwatch.contract import EventValidator, InvalidEvent, Reason, TimeLimits, parse_ts

CLICK_CASES = [
    (click(schema=...), Reason.UNSUPPORTED_SCHEMA, "schema"),
    (click(schema=2), Reason.UNSUPPORTED_SCHEMA, "schema"),
    (click(schema=True), Reason.UNSUPPORTED_SCHEMA, "schema"),
    (click(event_id=...), Reason.MISSING_FIELD, "event_id"),
    (click(event_id=7), Reason.WRONG_TYPE, "event_id"),
    (click(event_id=""), Reason.INVALID_VALUE, "event_id"),
    (click(event_id="x" * 201), Reason.INVALID_VALUE, "event_id"),
    (click(ts=...), Reason.MISSING_FIELD, "ts"),
    (click(ts=True), Reason.WRONG_TYPE, "ts"),
    (click(ts=[1]), Reason.WRONG_TYPE, "ts"),
    (click(ts=-1), Reason.INVALID_VALUE, "ts"),
    (click(ts="yesterday"), Reason.INVALID_VALUE, "ts"),
    (click(ts="2026-11-24T10:00:00"), Reason.INVALID_VALUE, "ts"),
    (click(ts="2026-11-24T10:00Z"), Reason.INVALID_VALUE, "ts"),  # ISO 8601, not RFC 3339: no seconds
    (click(ts="2026-11-24T10:00:00+0100"), Reason.INVALID_VALUE, "ts"),  # offset without a colon
    (click(sent_ts=True), Reason.WRONG_TYPE, "sent_ts"),
    (click(sent_ts=-1), Reason.INVALID_VALUE, "sent_ts"),
    (click(sent_ts="2026-11-24T10:00"), Reason.INVALID_VALUE, "sent_ts"),
    (click(ts="2026-11-24T10:00:00+01"), Reason.INVALID_VALUE, "ts"),  # offset without minutes
    (click(ts="20261124T100000Z"), Reason.INVALID_VALUE, "ts"),  # basic format
    (click(ts="2026-W48-2T10:00:00Z"), Reason.INVALID_VALUE, "ts"),  # week date
    (click(ts="2026-11-24"), Reason.INVALID_VALUE, "ts"),  # a date alone
    (click(ts=NOW * 1000), Reason.TS_IN_FUTURE, "ts"),
    (click(ts=NOW + 301), Reason.TS_IN_FUTURE, "ts"),
    (click(ts=0), Reason.TS_TOO_OLD, "ts"),
    (click(ts="2100-01-01T00:00:00Z"), Reason.TS_IN_FUTURE, "ts"),
    (click(session_id=...), Reason.MISSING_FIELD, "session_id"),
    (click(session_id={"a": 1}), Reason.WRONG_TYPE, "session_id"),
    (click(journey=...), Reason.MISSING_FIELD, "journey"),
    (click(journey="refund"), Reason.UNKNOWN_JOURNEY, "journey"),
    (click(step="basket"), Reason.UNKNOWN_STEP, "step"),
    (click(step="x" * 100_000), Reason.INVALID_VALUE, "step"),
    (click(channel="phone"), Reason.UNKNOWN_CHANNEL, "channel"),
    (click(type="hover"), Reason.INVALID_VALUE, "type"),
    (click(type="click"), Reason.MISSING_FIELD, "target"),
    (click(type="error", code=1.5), Reason.WRONG_TYPE, "code"),
    (click(customer_id=12), Reason.WRONG_TYPE, "customer_id"),
    (click(device=False), Reason.WRONG_TYPE, "device"),
]

CONTACT_CASES = [
    (contact(contact_id=...), Reason.MISSING_FIELD, "contact_id"),
    (contact(queue=...), Reason.MISSING_FIELD, "queue"),
    (contact(type="ringing"), Reason.INVALID_VALUE, "type"),
    (contact(wait_seconds="42"), Reason.WRONG_TYPE, "wait_seconds"),
    (contact(wait_seconds=True), Reason.WRONG_TYPE, "wait_seconds"),
    (contact(wait_seconds=-3), Reason.INVALID_VALUE, "wait_seconds"),
    (contact(wait_seconds=1e12), Reason.INVALID_VALUE, "wait_seconds"),
    (contact(channel="fax"), Reason.UNKNOWN_CHANNEL, "channel"),
    (contact(channel="email", queue="billing"), Reason.UNKNOWN_QUEUE, "queue"),
    (contact(session_id=5), Reason.WRONG_TYPE, "session_id"),
]

FEEDBACK_CASES = [
    (feedback(survey="ces5"), Reason.INVALID_VALUE, "survey"),
    (feedback(score=...), Reason.MISSING_FIELD, "score"),
    (feedback(score=4.5), Reason.WRONG_TYPE, "score"),
    (feedback(score="4"), Reason.WRONG_TYPE, "score"),
    (feedback(score=6), Reason.INVALID_VALUE, "score"),
    (feedback(survey="nps", score=11), Reason.INVALID_VALUE, "score"),
    (feedback(survey="ces", score=0), Reason.INVALID_VALUE, "score"),
    (feedback(journey=..., step=...), Reason.MISSING_FIELD, "journey"),
    (feedback(step=...), Reason.MISSING_FIELD, "step"),
    (feedback(journey=...), Reason.MISSING_FIELD, "journey"),
    (feedback(journey="nowhere"), Reason.UNKNOWN_JOURNEY, "journey"),
    (feedback(step="nowhere"), Reason.UNKNOWN_STEP, "step"),
    (feedback(channel="phone"), Reason.UNKNOWN_CHANNEL, "channel"),
    (feedback(queue="billing"), Reason.INVALID_VALUE, "queue"),
    (feedback(survey="ces", score=3), Reason.UNKNOWN_SURVEY, "survey"),
    (feedback(journey=..., step=..., channel="phone"), Reason.MISSING_FIELD, "queue"),
    (feedback(journey=..., step=..., channel="fax", queue="billing"), Reason.UNKNOWN_CHANNEL, "channel"),
    (feedback(journey=..., step=..., channel="email", queue="billing"), Reason.UNKNOWN_QUEUE, "queue"),
    (
        feedback(journey=..., step=..., channel="email", queue="general", survey="nps", score=3),
        Reason.UNKNOWN_SURVEY,
        "survey",
    ),
]


def reject(validate: Any, event: dict[str, Any]) -> InvalidEvent:
    with pytest.raises(InvalidEvent) as caught:
        validate(event, NOW)
    return caught.value


@pytest.mark.parametrize(("event", "reason", "field"), CLICK_CASES)
def test_click_rejections(validator: EventValidator, event: dict[str, Any], reason: Reason, field: str) -> None:
    error = reject(validator.click, event)
    assert (error.reason, error.field) == (reason, field), error.detail


@pytest.mark.parametrize(("event", "reason", "field"), CONTACT_CASES)
def test_contact_rejections(validator: EventValidator, event: dict[str, Any], reason: Reason, field: str) -> None:
    error = reject(validator.contact, event)
    assert (error.reason, error.field) == (reason, field), error.detail


@pytest.mark.parametrize(("event", "reason", "field"), FEEDBACK_CASES)
def test_feedback_rejections(validator: EventValidator, event: dict[str, Any], reason: Reason, field: str) -> None:
    error = reject(validator.feedback, event)
    assert (error.reason, error.field) == (reason, field), error.detail


def test_every_contract_reason_is_exercised() -> None:
    exercised = {reason for cases in (CLICK_CASES, CONTACT_CASES, FEEDBACK_CASES) for _, reason, _ in cases}
    record_level = {
        Reason.RECORD_TOO_LARGE,
        Reason.INVALID_UTF8,
        Reason.NOT_JSON,
        Reason.NOT_AN_OBJECT,
        Reason.EMPTY_BATCH,
        Reason.BATCH_TOO_LARGE,
        Reason.INTERNAL_ERROR,
    }  # tested in test_ingest.py and test_pipeline.py
    assert exercised | record_level == set(Reason)


def test_valid_events_become_typed_events(validator: EventValidator) -> None:
    event = validator.click(click(type="click", target="#pay", extra={"kept": "and ignored"}), NOW)
    assert (event.journey, event.step, event.target, event.ts) == ("purchase", "cart", "#pay", NOW - 10)
    answered = validator.contact(contact(), NOW)
    assert answered.wait_seconds == 42.5 and answered.key == "ct-1"
    queued = validator.contact(contact(type="queued", wait_seconds=...), NOW)
    assert queued.wait_seconds is None
    rated = validator.feedback(feedback(channel="web"), NOW)
    assert (rated.survey, rated.score, rated.channel) == ("csat", 4, "web")
    queue_rating = validator.feedback(
        feedback(journey=..., step=..., channel="phone", queue="billing", survey="nps", score=0), NOW
    )
    assert (queue_rating.queue, queue_rating.score) == ("billing", 0)
    coded = validator.click(click(type="error", code=502), NOW)
    assert coded.code == "502"


def test_time_bounds_are_configurable_and_skippable(journey_map: Any) -> None:
    lenient = EventValidator(journey_map, TimeLimits(max_future_skew=3600, max_age=1e10))
    assert lenient.click(click(ts=NOW + 3000), NOW).ts == NOW + 3000
    assert lenient.click(click(ts=1), NOW).ts == 1.0
    strict = EventValidator(journey_map)
    assert strict.click(click(ts=1), None).ts == 1.0  # now=None: no clock bounds (replays)


def test_rfc3339_times() -> None:
    assert parse_ts("2026-11-24T10:00:00Z") == NOW
    assert parse_ts("2026-11-24T11:30:00+01:30") == NOW
    assert parse_ts("2026-11-24T10:00:00.250Z") == NOW + 0.25


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("2026-11-24t10:00:00z", 0.0),  # RFC 3339 allows lower case
        ("2026-11-24 10:00:00Z", 0.0),  # and a space for the T (its section 5.6 note)
        ("2026-11-24T10:00:00.123456789-00:00", 0.123456),  # any number of fraction digits
        ("2026-11-24T09:59:60Z", 0.0),  # a leap second is the next second
    ],
)
def test_rfc3339_variants_are_accepted(text: str, seconds: float) -> None:
    assert parse_ts(text) == pytest.approx(NOW + seconds, abs=1e-6)


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("2026-11-24T10:00", "is not an RFC 3339 time (YYYY-MM-DDThh:mm:ss[.fraction] then Z or +hh:mm/-hh:mm"),
        ("2026-11-24T10:00:00+0100", "is not an RFC 3339 time"),
        ("2026-11-24T10:00:00+24:00", "is not an RFC 3339 time"),
        ("2026-11-24T10:00:00", "has no UTC offset (add Z or +hh:mm)"),
        ("2026-02-30T10:00:00Z", "is not a valid time: day is out of range for month"),
        ("2026-11-24T24:00:00Z", "is not a valid time: hour must be in 0..23"),
    ],
)
def test_times_that_are_not_rfc3339_are_dead_lettered_with_the_form_expected(
    validator: EventValidator, text: str, detail: str
) -> None:
    error = reject(validator.click, click(ts=text))
    assert (error.reason, error.field) == (Reason.INVALID_VALUE, "ts")
    assert detail in error.detail, error.detail


def test_millisecond_timestamps_get_a_hint(validator: EventValidator) -> None:
    error = reject(validator.click, click(ts=NOW * 1000))
    assert "milliseconds" in error.detail


def test_hostile_values_are_cut_in_messages(validator: EventValidator) -> None:
    error = reject(validator.click, click(journey="j" * 150))
    assert len(str(error)) < 200


# --- The JSON Schema says the same as the validator ------------------------------------------

SCHEMA = json.loads((resources.files("frictionwatch") / "schema" / "events-v1.json").read_text())
CHECKER = jsonschema.Draft202012Validator


def schema_accepts(kind: str, event: dict[str, Any]) -> bool:
    schema = {**SCHEMA, "$ref": f"#/$defs/{kind}"}
    return bool(CHECKER(schema, format_checker=CHECKER.FORMAT_CHECKER).is_valid(event))


def test_schema_is_valid_json_schema() -> None:
    CHECKER.check_schema(SCHEMA)


@pytest.mark.parametrize(
    ("kind", "event"),
    [
        ("click", click()),
        ("click", click(type="click", target="#buy")),
        ("click", click(ts="2026-11-24T10:00:00Z")),
        ("click", click(sent_ts=NOW + 590)),  # sent 10 minutes after it happened
        ("click", click(ts="2026-11-24T10:00:00Z", sent_ts="2026-11-24T10:00:01.5Z")),
        ("contact", contact(sent_ts=None)),
        ("contact", contact()),
        ("contact", contact(type="queued", wait_seconds=...)),
        ("feedback", feedback()),
        ("feedback", feedback(journey=..., step=..., channel="phone", queue="billing")),
        ("clicks_record", [click(), click(event_id="c-2")]),
    ],
)
def test_schema_accepts_valid_events(kind: str, event: Any) -> None:
    assert schema_accepts(kind, event)


SCHEMA_EXPRESSIBLE = {
    Reason.UNSUPPORTED_SCHEMA,
    Reason.MISSING_FIELD,
    Reason.WRONG_TYPE,
    Reason.INVALID_VALUE,
}


# Unknown journeys, steps, queues and the clock bounds depend on the journey map and the
# worker's clock, which JSON Schema can't see; every other rejection must agree.
@pytest.mark.parametrize(
    ("kind", "event"),
    [("click", e) for e, r, _ in CLICK_CASES if r in SCHEMA_EXPRESSIBLE]
    + [("contact", e) for e, r, _ in CONTACT_CASES if r in SCHEMA_EXPRESSIBLE]
    + [("feedback", e) for e, r, _ in FEEDBACK_CASES if r in SCHEMA_EXPRESSIBLE],
)
def test_schema_rejects_what_the_validator_rejects(kind: str, event: dict[str, Any]) -> None:
    assert not schema_accepts(kind, event)


@pytest.mark.parametrize(
    "change",
    [
        {}, {"schema": 1.0}, {"schema": True}, {"ts": "2026-11-24T10:00:00Z"}, {"ts": float("nan")}, {"ts": -1},
        {"ts": NOW + 10**6}, {"event_id": ""}, {"session_id": 5}, {"journey": "nope"}, {"step": "nope"},
        {"channel": "fax"}, {"type": "hover"}, {"type": "web"}, {"type": "click"}, {"type": "click", "target": "#buy"},
        {"type": "step", "target": "#buy"}, {"target": ""}, {"customer_id": None}, {"customer_id": ""},
        {"customer_id": 7}, {"device": "x" * 201}, {"code": 500}, {"code": "E1"}, {"code": True},
        {"sent_ts": None}, {"sent_ts": NOW}, {"sent_ts": NOW - 3600}, {"sent_ts": "2026-11-24T10:00:00Z"},
        {"sent_ts": True}, {"sent_ts": -1}, {"ts": NOW + 600, "sent_ts": NOW + 601},
        {"ts": NOW - 8 * 86400, "sent_ts": NOW}, {"ts": NOW - 8 * 86400, "sent_ts": NOW - 8 * 86400},
    ],
)  # fmt: skip
def test_fast_path_for_clicks_agrees_with_the_full_checks(validator: EventValidator, change: dict[str, Any]) -> None:
    event = {**click(), **change}
    try:
        expected: object = validator._click(event, NOW)
    except InvalidEvent as error:
        expected = (error.reason, error.field)
    try:
        got: object = validator.click(event, NOW)
    except InvalidEvent as error:
        got = (error.reason, error.field)
    assert got == expected
