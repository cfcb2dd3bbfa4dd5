"""Hostile input at the pure level: the ingest path and both friction stages, no Kafka.

Records go through :class:`IngestPipeline` (decode, validate, dead-letter, re-route) into
the friction stages, with a fake Kafka that delivers re-routed events to their home
partition and feeds the internal topics (partial windows, customer touches) back in. The
counters live in an injected ``CollectorRegistry``. For every input:

* nothing raises, and no record is dead-lettered as ``internal_error`` (that is a bug);
* each element is processed, or dead-lettered with the reason the contract gives it;
* received = processed + dead-lettered + re-routed for every topic, and end to end
  produced = processed + dead-lettered.

The same hand-made corpus (tests/hostile_corpus.py) runs through a real worker in
tests/test_integration_hostile.py.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from typing import Any

import orjson
import pytest
from hostile_corpus import (
    PROCESSED,
    TOPICS,
    Case,
    click,
    contact,
    corpus,
    duplicate_cases,
    feedback,
    ordered_cases,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from conftest import NOW
from frictionwatch.contract import CLICK_TYPES, CONTACT_TYPES, MAX_ID_LENGTH, MAX_WAIT_SECONDS, Reason
from frictionwatch.journeymap import JourneyMap, load_journey_map
from frictionwatch.partitioning import partition_for
from frictionwatch.settings import Settings
from frictionwatch.streams.app import IngestPipeline, RecordRef, build_decoders, build_friction
from frictionwatch.streams.metrics import IngestMetrics

PARTITIONS = 4
INPUTS = tuple(TOPICS.values())
JOURNEY_MAP = load_journey_map()


class Harness:
    """One worker's ingest path and friction stages, with Kafka played by queues."""

    def __init__(self, journey_map: JourneyMap = JOURNEY_MAP, now: float = NOW) -> None:
        self.settings = Settings.load(env={})
        self.registry = CollectorRegistry()
        topics = [*INPUTS, self.settings.topic_windows, self.settings.topic_touches]
        partitions = dict.fromkeys(topics, PARTITIONS)
        self.friction = build_friction(self.settings, journey_map, self.registry, partitions)
        self.pipeline = IngestPipeline(
            build_decoders(self.settings, journey_map, partitions),
            IngestMetrics(self.registry, INPUTS),
            self._send,
            self.settings.topic_deadletter,
            self.friction.events,
            deadletter_max_bytes=self.settings.deadletter_max_bytes,
            clock=lambda: now,
        )
        self.deadletters: list[dict[str, Any]] = []
        self.queue: deque[RecordRef] = deque()
        self.offsets: Counter[tuple[str, int]] = Counter()
        self.produced: Counter[str] = Counter()  # elements produced per input topic (not counting re-routes)

    async def _send(self, topic: str, key: bytes | None, value: bytes, partition: int | None) -> None:
        if topic == self.settings.topic_deadletter:
            self.deadletters.append(orjson.loads(value))
        elif topic in INPUTS:  # a re-routed event, delivered to its home partition
            assert partition is not None and key is not None
            self._enqueue(topic, partition, key, value)
        elif topic == self.settings.topic_windows:
            self.friction.partial(value)
        elif topic == self.settings.topic_touches:
            assert key is not None
            for item in self.friction.touches(partition_for(key, PARTITIONS), [value]):
                await self._send(item.topic, item.key, item.value, None)
        else:
            raise AssertionError(f"sent to an unexpected topic {topic}")

    def _enqueue(self, topic: str, partition: int, key: bytes | None, value: bytes) -> None:
        offset = self.offsets[(topic, partition)]
        self.offsets[(topic, partition)] += 1
        self.queue.append(RecordRef(topic, partition, offset, key, value))

    async def produce(self, topic: str, key: bytes | None, value: bytes, elements: int = 1) -> list[dict[str, Any]]:
        """Deliver one record (partitioned by its key as Kafka would) and everything it causes.

        Returns the dead-letter records it produced.
        """
        self.produced[topic] += elements
        partition = partition_for(key, PARTITIONS) if key is not None else 0
        before = len(self.deadletters)
        self._enqueue(topic, partition, key, value)
        while self.queue:
            await self.pipeline.handle(self.queue.popleft())
        return self.deadletters[before:]

    async def case(self, case: Case) -> list[str]:
        """Deliver a corpus case; the outcome of each element, in element order."""
        deadletters = await self.produce(case.topic, case.key, case.value, len(case.expect))
        by_index = {d["index"]: d["reason"] for d in deadletters}
        if None in by_index:  # the record as a whole, or its only event
            return [by_index[None]]
        return [by_index.get(index, PROCESSED) for index in range(len(case.expect))]

    def value(self, name: str, **labels: str) -> float:
        found = self.registry.get_sample_value(name, labels)
        assert found is not None, f"{name}{labels} is not exported"
        return found

    def ingest_samples(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        """The ingestion counters, collected once (get_sample_value collects every metric per call)."""
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for metric in self._ingest_metrics()
            for sample in metric.collect()[0].samples
        }

    def _ingest_metrics(self) -> list[Any]:
        metrics = self.pipeline.metrics
        return [metrics.events_received, metrics.events_processed, metrics.events_rerouted, metrics.events_deadlettered]

    def check_accounting(self) -> None:
        """The identity per topic, end-to-end conservation, and no internal errors."""
        samples = self.ingest_samples()

        def value(name: str, **labels: str) -> float:
            return samples[(name, frozenset(labels.items()))]

        for topic in INPUTS:
            received = value("frictionwatch_events_received_total", topic=topic)
            processed = value("frictionwatch_events_processed_total", topic=topic)
            rerouted = value("frictionwatch_events_rerouted_total", topic=topic)
            deadlettered = sum(
                value("frictionwatch_events_deadlettered_total", topic=topic, reason=reason.value) for reason in Reason
            )
            assert received == processed + deadlettered + rerouted, topic
            assert processed + deadlettered == self.produced[topic], topic
            assert value("frictionwatch_events_deadlettered_total", topic=topic, reason="internal_error") == 0
        reasons = {reason.value for reason in Reason}
        assert all(d["reason"] in reasons for d in self.deadletters)
        assert not any(d["reason"] == Reason.INTERNAL_ERROR for d in self.deadletters), self.deadletters


# -- the hand-made corpus ------------------------------------------------------------------------


@pytest.mark.parametrize("case", corpus(NOW), ids=lambda case: case.name)
async def test_each_hostile_record_gets_its_contract_outcome(case: Case) -> None:
    harness = Harness()
    assert await harness.case(case) == list(case.expect)
    harness.check_accounting()


async def test_the_whole_corpus_in_one_stream_adds_up() -> None:
    harness = Harness()
    cases = [*corpus(NOW), *ordered_cases(NOW), *duplicate_cases(NOW)]
    outcomes = [await harness.case(case) for case in cases]
    assert outcomes == [list(case.expect) for case in cases]
    harness.check_accounting()
    expected = Counter(outcome for case in cases for outcome in case.expect if outcome != PROCESSED)
    assert Counter(d["reason"] for d in harness.deadletters) == expected


async def test_the_10_mb_record_is_dead_lettered_cut_to_the_limit() -> None:
    harness = Harness()
    (case,) = [case for case in corpus(NOW) if case.name == "10 MB record"]
    (deadletter,) = await harness.produce(case.topic, case.key, case.value)
    assert deadletter["reason"] == "record_too_large" and deadletter["size"] == len(case.value) > 10_000_000
    assert deadletter["truncated"] is True
    assert len(deadletter["value_b64"]) <= math.ceil(harness.settings.deadletter_max_bytes / 3) * 4


async def test_out_of_order_and_late_events_are_processed_and_late_ones_counted() -> None:
    harness = Harness()
    for case in corpus(NOW, huge=False):  # moves hs-1's partition watermark to NOW - 30
        await harness.case(case)
    late_before = harness.value("frictionwatch_events_late_total", topic="journey.clicks")
    for case in ordered_cases(NOW):
        assert await harness.case(case) == [PROCESSED], case.name
    harness.check_accounting()
    assert harness.value("frictionwatch_events_late_total", topic="journey.clicks") > late_before


async def test_duplicate_event_ids_are_accepted_once_and_counted() -> None:
    """Re-delivered events (the same event_id again) are accepted (the identity holds), and
    every copy after the first is recognised and skipped (docs/reliability.md: dedup)."""
    harness = Harness()
    outcomes = [await harness.case(case) for case in duplicate_cases(NOW)]
    assert outcomes == [[PROCESSED], [PROCESSED], [PROCESSED, PROCESSED]]
    harness.check_accounting()
    assert harness.value("frictionwatch_events_processed_total", topic="journey.clicks") == 4
    assert harness.value("frictionwatch_events_duplicate_total", topic="journey.clicks") == 3
    assert sum(len(ids) for ids in harness.friction.recent.values()) == 1  # one id remembered


# -- property-based ------------------------------------------------------------------------------

HEAVY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)  # fmt: skip
# Strings that are not names in the journey map, from empty to far over the length limit.
STRANGE_TEXT = st.one_of(
    st.text(max_size=30),
    st.text(min_size=MAX_ID_LENGTH - 2, max_size=MAX_ID_LENGTH + 2),
    st.integers(1000, 300_000).map(lambda n: "x" * n),
).filter(lambda text: text not in KNOWN_NAMES)
KNOWN_NAMES: set[str] = {
    *JOURNEY_MAP.journeys,
    *(step.name for journey in JOURNEY_MAP.journeys.values() for step in journey.steps),
    *(channel for _, _, channel in JOURNEY_MAP.touchpoints()),
    *JOURNEY_MAP.contact_channels,
    *(queue for _, queue in JOURNEY_MAP.queues()),
}

# Any JSON value but a name of the journey map (which would be valid, or another reason).
NOT_A_NAME = (STRANGE_TEXT | JSONISH).filter(lambda value: not (isinstance(value, str) and value in KNOWN_NAMES))


def expected_label_reason(value: Any, unknown: str) -> str:
    """The contract's verdict on a hostile value in a journey-map name field."""
    if value is None:
        return "missing_field"
    if not isinstance(value, str):
        return "wrong_type"
    if not value or len(value) > MAX_ID_LENGTH:
        return "invalid_value"
    return unknown


def expected_ts_reason(value: Any, now: float) -> str:
    if value is None:
        return "missing_field"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "wrong_type" if not isinstance(value, str) else "invalid_value"
    if value < 0:
        return "invalid_value"
    if value > now + 300:
        return "ts_in_future"
    if value < now - 7 * 86400:
        return "ts_too_old"
    return PROCESSED


def expected_wait_reason(value: Any) -> str:
    if value is None:
        return PROCESSED
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "wrong_type"
    return PROCESSED if 0 <= value <= MAX_WAIT_SECONDS else "invalid_value"


def expected_schema_reason(value: Any) -> str:
    return PROCESSED if value == 1 and not isinstance(value, bool) else "unsupported_schema"


HOSTILE_FIELDS = st.one_of(
    st.tuples(st.just("clicks"), st.just("journey"), NOT_A_NAME).map(
        lambda t: (*t, expected_label_reason(t[2], "unknown_journey"))
    ),
    st.tuples(st.just("clicks"), st.just("step"), NOT_A_NAME).map(
        lambda t: (*t, expected_label_reason(t[2], "unknown_step"))
    ),
    st.tuples(st.just("clicks"), st.just("channel"), NOT_A_NAME).map(
        lambda t: (*t, expected_label_reason(t[2], "unknown_channel"))
    ),
    st.tuples(st.just("contacts"), st.just("queue"), NOT_A_NAME).map(
        lambda t: (*t, expected_label_reason(t[2], "unknown_queue"))
    ),
    st.tuples(st.just("contacts"), st.just("channel"), NOT_A_NAME).map(
        lambda t: (*t, expected_label_reason(t[2], "unknown_channel"))
    ),
    st.tuples(
        st.just("clicks"),
        st.just("ts"),
        st.one_of(
            st.floats(allow_nan=False, allow_infinity=False),
            st.floats(NOW - 8 * 86400, NOW + 600),
            st.integers(-(2**63), 2**64 - 1),
            st.sampled_from([None, True, [NOW], {"s": NOW}]),
        ),
    ).map(lambda t: (*t, expected_ts_reason(t[2], NOW))),
    st.tuples(
        st.just("contacts"),
        st.just("wait_seconds"),
        st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.floats(-10, 2 * MAX_WAIT_SECONDS), JSONISH),
    ).map(lambda t: (*t, expected_wait_reason(t[2]))),
    st.tuples(st.sampled_from(["clicks", "contacts", "feedback"]), st.just("schema"), JSONISH).map(
        lambda t: (*t, expected_schema_reason(t[2]))
    ),
)
BUILDERS = {"clicks": click, "contacts": contact, "feedback": feedback}


@HEAVY
@given(hostile=HOSTILE_FIELDS)
async def test_a_hostile_field_value_gets_the_contract_reason(hostile: tuple[str, str, Any, str]) -> None:
    kind, name, value, expected = hostile
    event = BUILDERS[kind](NOW, **{name: value})
    key = event.get({"clicks": "session_id", "contacts": "contact_id"}.get(kind, ""))
    harness = Harness()
    outcome = await harness.case(
        Case("hypothesis", kind, orjson.dumps(event), (expected,), key.encode() if key else None)
    )
    assert outcome == [expected], (name, value)
    harness.check_accounting()


@HEAVY
@given(cut=st.integers(0, 10**6), event=st.builds(lambda text: click(NOW, device=text or "d"), st.text(max_size=60)))
async def test_a_truncated_record_is_not_json_or_invalid_utf8(cut: int, event: dict[str, Any]) -> None:
    whole = orjson.dumps(event)
    value = whole[: cut % len(whole)]
    try:
        value.decode("utf-8")
        expected = "not_json"
    except UnicodeDecodeError:  # cut inside a multi-byte character
        expected = "invalid_utf8"
    harness = Harness()
    assert await harness.case(Case("truncated", "clicks", value, (expected,), b"hs-1")) == [expected]
    harness.check_accounting()


TOUCHPOINTS = [(journey, step.name, channel) for journey, step, channel in JOURNEY_MAP.touchpoints()]
QUEUES = list(JOURNEY_MAP.queues())
# Mostly the last two hours (out of order, late), sometimes up to the 7-day limit (far jumps back).
AGES = st.floats(0, 7200) | st.floats(0, 7 * 86400 - 60)
VALID_CLICKS = st.builds(
    lambda place, kind, age, session, n: click(
        NOW, event_id=f"pc-{n}", journey=place[0], step=place[1], channel=place[2], type=kind,
        target="button" if kind == "click" else None, ts=NOW - age, session_id=f"ps-{session}",
        customer_id=f"pcust-{session % 5}",
    ),
    st.sampled_from(TOUCHPOINTS), st.sampled_from(CLICK_TYPES), AGES, st.integers(0, 8),
    st.integers(0, 50),
)  # fmt: skip
VALID_CONTACTS = st.builds(
    lambda place, kind, age, contact_id, wait: contact(
        NOW, event_id=f"pk-{contact_id}-{kind}", channel=place[0], queue=place[1], type=kind, ts=NOW - age,
        contact_id=f"pct-{contact_id}", wait_seconds=wait,
    ),
    st.sampled_from(QUEUES), st.sampled_from(CONTACT_TYPES), AGES, st.integers(0, 8),
    st.none() | st.floats(0, MAX_WAIT_SECONDS),
)  # fmt: skip
RECORDS = st.one_of(
    st.tuples(st.just("clicks"), st.lists(VALID_CLICKS, min_size=1, max_size=6)),
    st.tuples(st.just("contacts"), st.lists(VALID_CONTACTS, min_size=1, max_size=6)),
    st.tuples(
        st.just("feedback"),
        st.lists(st.builds(lambda s: feedback(NOW, score=s), st.integers(-2, 7)), min_size=1, max_size=3),
    ),
    st.tuples(st.sampled_from(["clicks", "contacts", "feedback"]), st.lists(JSONISH, min_size=1, max_size=4)),
    st.tuples(st.sampled_from(["clicks", "contacts"]), st.binary(max_size=64)),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=st.lists(RECORDS, min_size=1, max_size=30), as_arrays=st.booleans())
async def test_any_stream_of_records_never_crashes_and_adds_up(records: list[tuple[str, Any]], as_arrays: bool) -> None:
    """Valid events in any order (out of order, late, duplicated, on wrong partitions) mixed with junk."""
    harness = Harness()
    for kind, body in records:
        topic = TOPICS[kind]
        if isinstance(body, bytes):
            await harness.produce(topic, b"junk", body)
            continue
        elements = body if as_arrays else body[:1]
        first = elements[0]
        key_field = {"clicks": "session_id", "contacts": "contact_id"}.get(kind)
        key = first.get(key_field) if key_field and isinstance(first, dict) else None
        value = orjson.dumps(elements if as_arrays else first)
        items = len(elements) if as_arrays else (len(first) if isinstance(first, list) and first else 1)
        await harness.produce(topic, key.encode() if isinstance(key, str) else None, value, items)
    harness.check_accounting()
    harness.friction.tick()
