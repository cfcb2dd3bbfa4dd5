"""The compiled click decoder (native/, ``frictionwatch-native``) against the Python code, the reference.

Both must give identical records: the same events (every field, strings and floats to the
bit), rejections, strays and clock readings, on generated traffic and on hostile input. The
compiled path may only decline a record (the Python code then decodes it); the tests also
check it declines no more than it must, or it would be a compiled path in name only.
"""

from __future__ import annotations

import gc
import math
import sys
from collections import defaultdict
from typing import Any

import frictionwatch_native
import orjson
import pytest
from hostile_corpus import corpus
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import NOW, click
from frictionwatch.contract import ClickEvent, EventValidator, TimeLimits
from frictionwatch.generator import GeneratorConfig, generate
from frictionwatch.generator.clocks import parse_clock_skew
from frictionwatch.journeymap import JourneyMap
from frictionwatch.partitioning import partition_for, python_partition_for
from frictionwatch.settings import Settings, SettingsError
from frictionwatch.streams import app, ingest
from frictionwatch.streams.app import build_decoders
from frictionwatch.streams.ingest import DecodedRecord, RecordDecoder

PARTITIONS = 4


def decoders(validator: EventValidator, **options: Any) -> tuple[RecordDecoder, RecordDecoder]:
    """(compiled, Python) decoders of the clicks topic."""
    compiled = RecordDecoder("clicks", validator, partitions=PARTITIONS, compiled=True, **options)
    python = RecordDecoder("clicks", validator, partitions=PARTITIONS, compiled=False, **options)
    assert compiled.compiled is not None and python.compiled is None
    return compiled, python


def fields(record: DecodedRecord) -> tuple[Any, ...]:
    """Everything a record holds, floats by their bits (0.0 and -0.0 differ, as for the worker's sums)."""
    events = [
        tuple(value.hex() if isinstance(value, float) else value for value in _values(event)) for event in record.events
    ]
    return events, record.rejected, record.strays, record.clock_readings


def _values(event: Any) -> list[Any]:
    return [getattr(event, name) for name in event.__slots__]


def generated_records(journey_map: JourneyMap, batch: int, seed: int) -> list[tuple[int, bytes]]:
    """(partition, value) of generated clicks, packed per partition as the contract asks; some devices' clocks off."""
    config = GeneratorConfig(
        seed=seed, rate=50, duration=1800, start=NOW - 3600, random_incidents=3,
        clock_skews=(parse_clock_skew("share=0.05,offset=-600,sent_ts"), parse_clock_skew("share=0.05,offset=900")),
    )  # fmt: skip
    pending: dict[int, list[bytes]] = defaultdict(list)
    out: list[tuple[int, bytes]] = []
    for record in generate(journey_map, config):
        if record.kind != "clicks" or record.key is None:
            continue
        partition = partition_for(record.key.encode(), PARTITIONS)
        parts = pending[partition]
        parts.append(orjson.dumps(record.value))
        if len(parts) == batch:
            out.append((partition, parts[0] if batch == 1 else b"[" + b",".join(parts) + b"]"))
            parts.clear()
    return out


def test_the_partitioner_is_kafkas() -> None:
    keys = [b"", b"a", b"ab", b"abc", b"abcd", b"session-42", "séance-ü".encode(), bytes(range(256))]
    keys += [f"s-{n}".encode() for n in range(2000)]
    for partitions in (1, 3, 4, 12, 100):
        assert [frictionwatch_native.partition_for(key, partitions) for key in keys] == [
            python_partition_for(key, partitions) for key in keys
        ]
    assert partition_for is frictionwatch_native.partition_for  # what the worker uses, where it is installed


@pytest.mark.parametrize("batch", [1, 7, 100])
@pytest.mark.parametrize("now", [NOW, None])
def test_generated_traffic_decodes_the_same_both_ways(journey_map: JourneyMap, batch: int, now: float | None) -> None:
    compiled, python = decoders(EventValidator(journey_map))
    records = generated_records(journey_map, batch, seed=batch)
    declined = 0
    for partition, value in records:
        arrival = None if now is None else now - 5
        expected = python.decode(value, partition, now, arrival)
        assert fields(compiled.decode(value, partition, now, arrival)) == fields(expected)
        assert expected.events and not expected.rejected and not expected.strays
        declined += compiled.compiled.decode(value, partition, now) is None  # type: ignore[union-attr]
    assert len(records) > 20
    assert declined == 0, f"the compiled path declined {declined} of {len(records)} valid records"


def test_records_from_another_partition_are_strays_both_ways(journey_map: JourneyMap) -> None:
    compiled, python = decoders(EventValidator(journey_map))
    for partition, value in generated_records(journey_map, 10, seed=3)[:20]:
        wrong = (partition + 1) % PARTITIONS
        expected = python.decode(value, wrong, NOW)
        assert expected.strays and fields(compiled.decode(value, wrong, NOW)) == fields(expected)


def test_hostile_records_decode_the_same_both_ways(journey_map: JourneyMap) -> None:
    compiled, python = decoders(EventValidator(journey_map))
    cases = [case for case in corpus(NOW, huge=True) if case.kind == "clicks"]
    assert len(cases) > 10
    for case in cases:
        partition = partition_for(case.key, PARTITIONS) if case.key else 0
        assert fields(compiled.decode(case.value, partition, NOW)) == fields(python.decode(case.value, partition, NOW))


def test_limits_of_the_record_and_the_clock_are_the_pythons(journey_map: JourneyMap) -> None:
    validator = EventValidator(journey_map, TimeLimits(max_future_skew=60.0, max_age=3600.0))
    compiled, python = decoders(validator, max_record_bytes=2000, max_batch_events=5)
    home = partition_for(b"s-1", PARTITIONS)
    for body in (
        [click()] * 5, [click()] * 6, [click()] * 20, [], click(ts=NOW + 61), click(ts=NOW - 3601),
        click(ts=NOW - 3599), click(ts=NOW - 7200, sent_ts=NOW - 7200 + 2), click(ts=NOW, sent_ts=NOW + 3601),
    ):  # fmt: skip
        value = orjson.dumps(body)
        assert fields(compiled.decode(value, home, NOW)) == fields(python.decode(value, home, NOW)), body


# Values of each field: valid ones, and each way the contract can be broken by a JSON value.
TEXT = st.one_of(
    st.sampled_from(["", "s-1", "x" * 200, "x" * 201, "é" * 200, "é" * 201, "\u2028", "\x00", "purchase"]),
    st.text(max_size=5),
)
ANY_JSON = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(allow_nan=False), TEXT)
TIMES = st.one_of(
    st.sampled_from([NOW, NOW - 10, NOW + 299, NOW + 301, NOW - 7 * 86400 - 1, 0, -0.0, 2**53, 2**53 + 1, 2**64 - 1]),
    st.integers(-(2**63), 2**64 - 1), st.floats(allow_nan=False, allow_infinity=False), st.floats(NOW - 900, NOW + 900),
)  # fmt: skip
FIELD_VALUES: dict[str, Any] = {
    "schema": st.one_of(st.sampled_from([1, 1.0, 2, True, 0]), ANY_JSON),
    "ts": st.one_of(TIMES, ANY_JSON),
    "sent_ts": st.one_of(TIMES, st.just(NOW - 9), ANY_JSON),
    "event_id": st.one_of(TEXT, ANY_JSON),
    "session_id": st.one_of(st.sampled_from(["s-1", "s-2", "s-3"]), TEXT, ANY_JSON),
    "journey": st.one_of(st.sampled_from(["purchase", "support", "nope"]), ANY_JSON),
    "step": st.one_of(st.sampled_from(["cart", "payment", "product", "help_centre", "nope"]), ANY_JSON),
    "channel": st.one_of(st.sampled_from(["web", "app", "phone", "fax", "click"]), ANY_JSON),
    "type": st.one_of(st.sampled_from(["step", "click", "error", "exit", "web", "hover"]), ANY_JSON),
    "customer_id": st.one_of(TEXT, ANY_JSON),
    "device": st.one_of(TEXT, ANY_JSON),
    "target": st.one_of(TEXT, ANY_JSON),
    "code": st.one_of(TEXT, ANY_JSON),
    "extra": ANY_JSON,
}
MISSING = object()


@st.composite
def elements(draw: st.DrawFn) -> Any:
    """A click with some fields changed or removed, or now and then not an object at all."""
    if draw(st.integers(0, 20)) == 0:
        return draw(ANY_JSON)
    event: dict[str, Any] = click(session_id=draw(st.sampled_from(["s-1", "s-2", "s-3"])))
    for name in draw(st.lists(st.sampled_from(sorted(FIELD_VALUES)), max_size=3, unique=True)):
        value = draw(st.one_of(st.just(MISSING), FIELD_VALUES[name]))
        if value is MISSING:
            event.pop(name, None)
        else:
            event[name] = value
    return event


@settings(max_examples=600, deadline=None)
@given(
    st.lists(elements(), min_size=1, max_size=4),
    st.booleans(),
    st.sampled_from([NOW, None]),
    st.integers(0, PARTITIONS - 1),
)
def test_any_record_decodes_the_same_both_ways(
    journey_map: JourneyMap, body: list[Any], single: bool, now: float | None, partition: int
) -> None:
    compiled, python = decoders(EventValidator(journey_map))
    value = orjson.dumps(body[0] if single else body)
    assert fields(compiled.decode(value, partition, now, now)) == fields(python.decode(value, partition, now, now))


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_damaged_bytes_decode_the_same_both_ways(journey_map: JourneyMap, data: st.DataObject) -> None:
    """Bytes cut, doubled or replaced in a valid record: JSON the two parsers must read alike or both refuse."""
    compiled, python = decoders(EventValidator(journey_map))
    value = bytearray(orjson.dumps([click(), click(event_id="c-2", type="click", target="#buy")]))
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(value) - 1))
        action = data.draw(st.sampled_from(["cut", "double", "replace"]))
        if action == "cut":
            del value[at]
        elif action == "double":
            value.insert(at, value[at])
        else:
            value[at] = data.draw(st.sampled_from(b' "\\{}[],:0123456789-.eE+tfnu\xc3\xa9\xff\x00'))
    home = partition_for(b"s-1", PARTITIONS)
    got, expected = compiled.decode(bytes(value), home, NOW), python.decode(bytes(value), home, NOW)
    assert fields(got) == fields(expected)


def test_numbers_are_read_to_the_bit(journey_map: JourneyMap) -> None:
    """Floats that need correct rounding, and integers past 2**53, come out as orjson reads them."""
    compiled, python = decoders(EventValidator(journey_map))
    home = partition_for(b"s-1", PARTITIONS)
    texts = [
        "1795514390.1", "1795514390.123456789012345678", "1.795514390e9", "17955143901e-1", "1795514390.0000001",
        "9007199254740993", "9007199254740993.0", "123456789012345678901234567890", "4.9e-324", "1e308",
    ]  # fmt: skip
    for text in texts:
        value = orjson.dumps(click()).replace(f'"ts":{NOW - 10}'.encode(), f'"ts":{text}'.encode())
        assert text.encode() in value
        got, expected = compiled.decode(value, home, None), python.decode(value, home, None)
        assert fields(got) == fields(expected), text
        assert expected.events and math.isfinite(expected.events[0].ts)


def test_compiled_true_without_the_module_names_the_fix(
    journey_map: JourneyMap, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingest, "COMPILED_AVAILABLE", False)
    with pytest.raises(ValueError, match=r"frictionwatch-native is not installed.*scripts/setup"):
        RecordDecoder("clicks", EventValidator(journey_map), partitions=PARTITIONS, compiled=True)
    assert RecordDecoder("clicks", EventValidator(journey_map), partitions=PARTITIONS).compiled is None


def test_other_topics_stay_in_python(journey_map: JourneyMap) -> None:
    for kind in ("contacts", "feedback"):
        assert RecordDecoder(kind, EventValidator(journey_map), partitions=PARTITIONS).compiled is None


def test_the_worker_setting_chooses_the_decoder(journey_map: JourneyMap, monkeypatch: pytest.MonkeyPatch) -> None:
    partitions = {"journey.clicks": PARTITIONS, "journey.contacts": PARTITIONS, "journey.feedback": PARTITIONS}
    chosen = {
        setting: build_decoders(Settings(click_decoder=setting), journey_map, partitions)["journey.clicks"].compiled
        for setting in ("auto", "compiled", "python")
    }
    assert chosen["auto"] is not None and chosen["compiled"] is not None and chosen["python"] is None
    monkeypatch.setattr(app, "COMPILED_AVAILABLE", False)
    with pytest.raises(SettingsError, match="click_decoder is compiled, but frictionwatch-native is not installed"):
        build_decoders(Settings(click_decoder="compiled"), journey_map, partitions)
    with pytest.raises(SettingsError, match="click_decoder 'rust' is not one of auto, compiled, python"):
        Settings(click_decoder="rust")


def test_events_are_made_as_their_class_makes_them(journey_map: JourneyMap) -> None:
    """The compiled decoder allocates an event by its class and stores each value in its slot
    directly: the event is a ClickEvent like any other (tracked by the garbage collector, each
    value held once more by it, equal to the Python decoder's)."""

    compiled, python = decoders(EventValidator(journey_map))
    value = orjson.dumps(click(session_id="s-slots", target="#pay"))
    partition = partition_for(b"s-slots", PARTITIONS)
    event, reference = compiled.decode(value, partition, NOW).events[0], python.decode(value, partition, NOW).events[0]
    assert isinstance(event, ClickEvent) and isinstance(reference, ClickEvent)
    assert type(event) is type(reference) and event == reference and gc.is_tracked(event)
    assert sys.getrefcount(event.session_id) == sys.getrefcount(reference.session_id)


@pytest.mark.parametrize("replace", ["property", "base"])
def test_a_field_that_is_not_an_object_slot_of_the_class_is_refused(replace: str) -> None:
    """The direct store into a slot is only safe for the class's own object slots: a decoder for
    a class whose field is anything else is refused, naming the field, instead of made."""
    names = tuple(ClickEvent.__slots__)
    if replace == "property":
        fake: type = type("FakeEvent", (), {"__slots__": names})
        fake.event_id = property(lambda self: "e")  # type: ignore[attr-defined]  # a property where a slot was
    else:
        base = type("Base", (), {"__slots__": names})
        fake = type("FakeEvent", (base,), {"__slots__": ()})
        fake.__slots__ = names  # type: ignore[attr-defined]  # as if its own: the check must look deeper
    limits = {
        "partitions": 1, "max_record_bytes": 1, "max_batch_events": 1, "max_age": 1.0, "max_future_skew": 1.0,
        "schema_version": 1, "max_id_length": 1, "max_text_length": 1, "sent_ts_slack": 1.0,
    }  # fmt: skip
    with pytest.raises(ValueError, match="event_id"):
        frictionwatch_native.ClickDecoder(fake, {}, {}, limits)
