"""Record decoding: arrays, strays, record-level rejections, and that every item is accounted for."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import NOW, click, contact, feedback
from frictionwatch.contract import EventValidator, Reason
from frictionwatch.partitioning import partition_for
from frictionwatch.streams.ingest import RecordDecoder


def decoder(validator: EventValidator, kind: Any = "clicks", **options: Any) -> RecordDecoder:
    return RecordDecoder(kind, validator, partitions=4, **options)


def home(session_id: str) -> int:
    return partition_for(session_id.encode(), 4)


def test_a_single_event_on_its_partition(validator: EventValidator) -> None:
    record = decoder(validator).decode(orjson.dumps(click()), home("s-1"), NOW)
    assert [event.event_id for event in record.events] == ["c-1"] and record.items == 1


def test_a_bad_element_is_rejected_alone(validator: EventValidator) -> None:
    batch = [click(event_id="a"), click(event_id="b", step="basket"), 42, click(event_id="c")]
    record = decoder(validator).decode(orjson.dumps(batch), home("s-1"), NOW)
    assert [event.event_id for event in record.events] == ["a", "c"]
    assert [(r.reason, r.index) for r in record.rejected] == [(Reason.UNKNOWN_STEP, 1), (Reason.NOT_AN_OBJECT, 2)]
    assert orjson.loads(record.rejected[0].raw)["step"] == "basket"  # the element's own bytes travel on


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"", Reason.NOT_JSON),
        (b'{"schema": 1, "event_id": ', Reason.NOT_JSON),
        (b"\xff\xfe{}", Reason.INVALID_UTF8),
        (b'{"step": "caf\xc3"}', Reason.INVALID_UTF8),
        (b"[]", Reason.EMPTY_BATCH),
        (b'"just a string"', Reason.NOT_AN_OBJECT),
        (b"NaN", Reason.NOT_JSON),
        (b'{"ts": Infinity}', Reason.NOT_JSON),
        (b"[" * 2000 + b"]" * 2000, Reason.NOT_JSON),  # deeper than orjson's nesting limit
    ],
)
def test_records_that_cannot_be_split(validator: EventValidator, value: bytes, reason: Reason) -> None:
    record = decoder(validator).decode(value, 0, NOW)
    assert [r.reason for r in record.rejected] == [reason] and record.items == 1
    assert record.rejected[0].raw == value and record.rejected[0].index is None


def test_size_limits(validator: EventValidator) -> None:
    big = orjson.dumps(click(target="x" * 5000, type="click"))
    assert decoder(validator, max_record_bytes=4096).decode(big, 0, NOW).rejected[0].reason is Reason.RECORD_TOO_LARGE
    many = orjson.dumps([click(event_id=str(i)) for i in range(11)])
    record = decoder(validator, max_batch_events=10).decode(many, home("s-1"), NOW)
    assert [r.reason for r in record.rejected] == [Reason.BATCH_TOO_LARGE] and record.items == 1


def test_strays_are_sent_home_by_their_own_key(validator: EventValidator) -> None:
    sessions = [f"s-{i}" for i in range(40)]
    batch = [click(event_id=f"e{i}", session_id=s) for i, s in enumerate(sessions)]
    record = decoder(validator).decode(orjson.dumps(batch), 0, NOW)
    assert {event.key for event in record.events} == {s for s in sessions if home(s) == 0}
    assert {stray.key.decode() for stray in record.strays} == {s for s in sessions if home(s) != 0}
    for stray in record.strays:
        assert stray.partition == home(stray.key.decode()) != 0
        assert orjson.loads(stray.raw)["session_id"] == stray.key.decode()
    assert record.items == 40


def test_feedback_has_no_partition_rule(validator: EventValidator) -> None:
    batch = [feedback(event_id=str(i), customer_id=f"cust-{i}") for i in range(20)]
    record = decoder(validator, "feedback").decode(orjson.dumps(batch), 3, NOW)
    assert len(record.events) == 20 and not record.strays


def test_contacts_are_placed_by_contact_id(validator: EventValidator) -> None:
    event = contact(contact_id="ct-77")
    right = partition_for(b"ct-77", 4)
    assert decoder(validator, "contacts").decode(orjson.dumps(event), right, NOW).events
    assert decoder(validator, "contacts").decode(orjson.dumps(event), (right + 1) % 4, NOW).strays


ELEMENTS = st.one_of(
    st.builds(lambda i: click(event_id=str(i), session_id=f"s-{i % 7}"), st.integers(0, 10_000)),
    st.builds(lambda i: click(event_id=str(i), step="nowhere"), st.integers(0, 10**9)),
    st.builds(lambda v: click(ts=v), st.one_of(st.floats(allow_nan=False), st.text(max_size=30), st.booleans())),
    st.integers(-(2**63), 2**64 - 1),
    st.text(max_size=20),
    st.dictionaries(st.text(max_size=10), st.integers(-(2**63), 2**64 - 1), max_size=4),
)


@settings(max_examples=300, deadline=None)
@given(elements=st.lists(ELEMENTS, min_size=1, max_size=30), partition=st.integers(0, 3), as_array=st.booleans())
def test_every_element_is_processed_rejected_or_rerouted(
    journey_map: Any, elements: list[Any], partition: int, as_array: bool
) -> None:
    value = orjson.dumps(elements if as_array else elements[0])
    record = decoder(EventValidator(journey_map)).decode(value, partition, NOW)
    assert record.items == (len(elements) if as_array else 1)


@settings(max_examples=300, deadline=None)
@given(value=st.binary(max_size=200))
def test_arbitrary_bytes_never_raise(journey_map: Any, value: bytes) -> None:
    record = decoder(EventValidator(journey_map)).decode(value, 0, NOW)
    assert record.items >= 1
