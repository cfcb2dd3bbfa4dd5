"""IngestPipeline: dead-letter records, re-routing and the counters, with a fake producer."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from conftest import NOW, click
from frictionwatch.contract import EventValidator, Reason
from frictionwatch.partitioning import partition_for
from frictionwatch.settings import Settings
from frictionwatch.streams.app import IngestPipeline, RecordRef, build_decoders
from frictionwatch.streams.metrics import IngestMetrics

TOPICS = ["journey.clicks", "journey.contacts", "journey.feedback"]


class Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes, int | None]] = []

    async def send(self, topic: str, key: bytes | None, value: bytes, partition: int | None) -> None:
        self.sent.append((topic, key, value, partition))


def make_pipeline(journey_map: Any, on_events: Any = None) -> tuple[IngestPipeline, Producer, CollectorRegistry]:
    registry = CollectorRegistry()
    producer = Producer()
    decoders = build_decoders(Settings.load(env={}), journey_map, dict.fromkeys(TOPICS, 4))
    pipeline = IngestPipeline(
        decoders,
        IngestMetrics(registry, TOPICS),
        producer.send,
        "journey.deadletter",
        on_events,
        deadletter_max_bytes=1000,
        clock=lambda: NOW,
    )
    return pipeline, producer, registry


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    assert value is not None, f"{name}{labels} is not exported"
    return value


@pytest.mark.asyncio
async def test_counters_add_up_and_dead_letters_carry_the_origin(journey_map: Any) -> None:
    pipeline, producer, registry = make_pipeline(journey_map)
    here = partition_for(b"s-1", 4)
    stray_session = next(f"s-{i}" for i in range(100) if partition_for(f"s-{i}".encode(), 4) != here)
    batch = [click(event_id="a"), click(event_id="b", journey="refunds"), click(event_id="c", session_id=stray_session)]
    await pipeline.handle(RecordRef("journey.clicks", here, 17, b"s-1", orjson.dumps(batch)))
    await pipeline.handle(RecordRef("journey.clicks", here, 18, b"s-1", b"\x00garbage" * 500))

    deadletters = [orjson.loads(value) for topic, _, value, _ in producer.sent if topic == "journey.deadletter"]
    assert [(d["reason"], d["field"], d["offset"], d["index"]) for d in deadletters] == [
        ("unknown_journey", "journey", 17, 1),
        ("not_json", None, 18, None),
    ]
    assert orjson.loads(base64.b64decode(deadletters[0]["value_b64"]))["event_id"] == "b"
    assert deadletters[1]["size"] == 4000 and deadletters[1]["truncated"] is True
    assert len(base64.b64decode(deadletters[1]["value_b64"])) == 1000
    assert deadletters[0]["topic"] == "journey.clicks" and deadletters[0]["partition"] == here
    assert deadletters[0]["key"] == "s-1" and deadletters[0]["rejected_at"] == NOW

    rerouted = [(key, partition) for topic, key, _, partition in producer.sent if topic == "journey.clicks"]
    assert rerouted == [(stray_session.encode(), partition_for(stray_session.encode(), 4))]

    topic = {"topic": "journey.clicks"}
    assert sample(registry, "frictionwatch_records_consumed_total", **topic) == 2
    assert sample(registry, "frictionwatch_events_received_total", **topic) == 4
    assert sample(registry, "frictionwatch_events_processed_total", **topic) == 1
    assert sample(registry, "frictionwatch_events_rerouted_total", **topic) == 1
    assert sample(registry, "frictionwatch_events_deadlettered_total", reason="unknown_journey", **topic) == 1
    assert sample(registry, "frictionwatch_events_deadlettered_total", reason="not_json", **topic) == 1
    assert sample(registry, "frictionwatch_events_deadlettered_total", reason="ts_too_old", **topic) == 0


@pytest.mark.asyncio
async def test_a_failing_stage_dead_letters_the_record_instead_of_crashing(journey_map: Any) -> None:
    def broken(topic: str, partition: int, events: Any) -> Any:
        raise RuntimeError("bug in a later stage")

    pipeline, producer, registry = make_pipeline(journey_map, on_events=broken)
    value = orjson.dumps(click())
    await pipeline.handle(RecordRef("journey.clicks", partition_for(b"s-1", 4), 3, b"s-1", value))
    (deadletter,) = [orjson.loads(v) for _, _, v, _ in producer.sent]
    assert deadletter["reason"] == Reason.INTERNAL_ERROR.value and "bug in a later stage" in deadletter["detail"]
    assert base64.b64decode(deadletter["value_b64"]) == value
    assert sample(registry, "frictionwatch_events_received_total", topic="journey.clicks") == 1
    assert sample(registry, "frictionwatch_events_processed_total", topic="journey.clicks") == 0


def test_series_are_pre_initialised(journey_map: Any) -> None:
    _, _, registry = make_pipeline(journey_map)
    for topic in TOPICS:
        for reason in Reason:
            assert sample(registry, "frictionwatch_events_deadlettered_total", topic=topic, reason=reason.value) == 0


def test_validator_is_shared_with_the_configured_limits(journey_map: Any) -> None:
    settings = Settings.load(env={"FRICTIONWATCH_MAX_FUTURE_SKEW": "5"})
    decoders = build_decoders(settings, journey_map, dict.fromkeys(TOPICS, 2))
    assert decoders["journey.clicks"].partitions == 2
    validator: EventValidator = decoders["journey.clicks"].validate.__self__  # type: ignore[attr-defined]
    assert validator.limits.max_future_skew == 5
