"""The demo's history goes out first, and the live traffic waits for the worker to work through it."""

from __future__ import annotations

import orjson

from frictionwatch.demo import HistoryFirst
from frictionwatch.generator import GeneratorConfig, KafkaSink, generate, run
from frictionwatch.journeymap import JourneyMap

START = 1_700_000_000.0
TOPICS = {"clicks": "journey.clicks", "contacts": "journey.contacts", "feedback": "journey.feedback"}


class Producer:
    """Keeps what was produced; ``flushed_at``: how many records it held at each flush."""

    def __init__(self) -> None:
        self.values: list[bytes] = []
        self.flushed_at: list[int] = []

    def produce(self, topic: str, value: bytes | None = None, key: bytes | None = None, partition: int = -1) -> None:
        assert value is not None
        self.values.append(value)

    def poll(self, timeout: float = -1) -> int:
        return 0

    def flush(self, timeout: float = -1) -> int:
        self.flushed_at.append(len(self.values))
        return 0


def events_in(values: list[bytes]) -> int:
    """Events in produced records (arrays count their events; a malformed record counts once)."""
    count = 0
    for value in values:
        try:
            decoded = orjson.loads(value)
        except orjson.JSONDecodeError:
            decoded = None
        count += len(decoded) if isinstance(decoded, list) and value.startswith(b"[{") else 1
    return count


def test_the_history_is_produced_and_flushed_before_the_live_traffic_waits_for_the_worker(
    journey_map: JourneyMap,
) -> None:
    config = GeneratorConfig(seed=5, rate=40.0, duration=900.0, start=START, malformed_rate=0.01)
    live_start = START + 600.0
    history = sum(1 for record in generate(journey_map, config) if record.ts < live_start)
    producer = Producer()
    calls: list[tuple[int, int]] = []  # (history told, events produced by then)
    sink = HistoryFirst(
        KafkaSink(producer, TOPICS, {"clicks": 4, "contacts": 4, "feedback": 1}, batch=100),
        live_start,
        lambda told: calls.append((told, events_in(producer.values))),
    )
    summary = run(journey_map, config, sink)
    assert 5000 < history < summary.total, "the history is the first 10 of 15 minutes"
    assert calls == [(history, history)], "told once, when every history event had been produced"
    assert producer.flushed_at[0] < len(producer.values), "flushed before the first live record"
    assert events_in(producer.values[: producer.flushed_at[0]]) == history
    assert sink.records == summary.records
