"""The direct ingest loop's bookkeeping without a broker (streams/loop.py); with brokers: tests/test_integration_*."""

from __future__ import annotations

import asyncio
from typing import Any

from confluent_kafka import TopicPartition
from prometheus_client import CollectorRegistry

from frictionwatch.journeymap import JourneyMap
from frictionwatch.settings import Settings
from frictionwatch.streams.exposition import FrictionMetrics
from frictionwatch.streams.friction import Friction
from frictionwatch.streams.loop import IngestLoop
from frictionwatch.streams.stage import StageSettings


class Producer:
    """Publishes nothing; enough for the loop's constructor and revocations."""

    def produce(self, *args: Any, **kwargs: Any) -> None:
        pass

    def poll(self, timeout: float) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        return 0


class Consumer:
    """Every partition has a commit of the loop's own group, so no Faust offsets are asked for."""

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition, 0) for tp in partitions]


class Recovery:
    """No marks, nothing to replay."""

    def __init__(self, marks: dict[str, bytes]) -> None:
        self.marks = marks

    def plan(self, topic: str, partition: int, offset: int) -> None:
        return None

    def forget(self, topic: str, partition: int) -> None:
        pass


def friction_of(journey_map: JourneyMap, settings: Settings) -> Friction:
    """The worker's stages over two partitions of each topic."""
    kinds = {settings.topic_clicks: "clicks", settings.topic_contacts: "contacts",
             settings.topic_feedback: "feedback", settings.topic_touches: "touches"}  # fmt: skip
    return Friction(
        journey_map, FrictionMetrics(CollectorRegistry(), journey_map), kinds, dict.fromkeys(kinds, 2),  # type: ignore[arg-type]
        windows_topic=settings.topic_windows, touches_topic=settings.topic_touches,
        settings=StageSettings(allowed_lateness=0, cold_start=0),
    )  # fmt: skip


def loop_counting_marks_reads(journey_map: JourneyMap) -> tuple[IngestLoop, list[int]]:
    settings = Settings()
    friction = friction_of(journey_map, settings)
    loop = IngestLoop(settings, friction, lambda *_: None, Recovery, producer=Producer())  # type: ignore[arg-type]
    reads: list[int] = []
    loop._read_marks = lambda: reads.append(len(loop.assigned))  # type: ignore[method-assign]
    return loop, reads


def test_the_marks_topic_is_read_once_per_assignment_not_once_per_partition(journey_map: JourneyMap) -> None:
    loop, reads = loop_counting_marks_reads(journey_map)
    settings = loop.settings
    everything = [TopicPartition(topic, partition) for topic in loop.inputs for partition in range(2)]

    async def take_up_all() -> None:
        for tp in everything:
            await loop._take_up(tp.topic, tp.partition, 0)

    loop._on_assign(Consumer(), everything)  # type: ignore[arg-type]
    asyncio.run(take_up_all())
    assert reads == [6], "six partitions taken up after one assignment read the marks once"

    # a rebalance: half the partitions go, a touches partition comes; its previous owner's marks must be read
    loop._on_revoke(Consumer(), everything[:3])  # type: ignore[arg-type]
    loop._on_assign(Consumer(), [TopicPartition(settings.topic_touches, 0)])  # type: ignore[arg-type]
    asyncio.run(loop._take_up(settings.topic_touches, 0, 0))
    asyncio.run(loop._take_up(settings.topic_clicks, 1, 5))
    assert reads == [6, 4]


def test_a_failed_marks_read_is_tried_again_at_the_next_partition(journey_map: JourneyMap) -> None:
    loop, _ = loop_counting_marks_reads(journey_map)
    attempts: list[int] = []

    def broker_away() -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise TimeoutError("replaying the marks topic stopped short")

    loop._read_marks = broker_away  # type: ignore[method-assign]
    clicks = [TopicPartition(loop.settings.topic_clicks, partition) for partition in range(2)]
    loop._on_assign(Consumer(), clicks)  # type: ignore[arg-type]
    asyncio.run(loop._take_up(clicks[0].topic, 0, 0))
    asyncio.run(loop._take_up(clicks[1].topic, 1, 0))
    asyncio.run(loop._take_up(clicks[1].topic, 1, 0))
    assert len(attempts) == 2


class ClosingConsumer(Consumer):
    """Serves a rebalance that hands it partitions while it closes, as librdkafka's close() can."""

    def __init__(self, loop: IngestLoop, partitions: list[TopicPartition]) -> None:
        self.loop, self.partitions = loop, partitions
        self.committed_asked = 0

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        self.committed_asked += 1
        return super().committed(partitions, timeout)

    def commit(self, *args: Any, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        self.loop._on_assign(self, self.partitions)  # type: ignore[arg-type]


def test_partitions_given_while_the_loop_stops_are_left_to_the_next_owner(journey_map: JourneyMap) -> None:
    loop, _ = loop_counting_marks_reads(journey_map)
    clicks = [TopicPartition(loop.settings.topic_clicks, partition) for partition in range(2)]
    running = ClosingConsumer(loop, clicks)
    loop._on_assign(running, clicks[:1])  # type: ignore[arg-type]
    assert running.committed_asked == 1 and loop.assigned == {(clicks[0].topic, 0)}

    loop._consumer = running  # type: ignore[assignment]
    loop._close()
    assert running.committed_asked == 1, "no offsets asked for (up to 10 s each) on the way out"
    assert loop.assigned == {(clicks[0].topic, 0)}, "the partition given during close() is not taken up"


def test_building_the_loop_connects_nothing_until_it_publishes(journey_map: JourneyMap, monkeypatch: Any) -> None:
    made: list[dict[str, Any]] = []

    class CountedProducer(Producer):
        def __init__(self, config: dict[str, Any]) -> None:
            made.append(config)

    monkeypatch.setattr("frictionwatch.streams.loop.Producer", CountedProducer)
    settings = Settings(bootstrap_servers="127.0.0.1:9")
    loop = IngestLoop(settings, friction_of(journey_map, settings), lambda *_: None, Recovery)  # type: ignore[arg-type]
    assert made == []
    asyncio.run(loop.send(settings.topic_windows, None, b"{}", None))
    assert loop.producer is loop.producer and len(made) == 1 and made[0]["enable.idempotence"] is True
