"""End to end on the embedded broker: generator -> Kafka -> a real worker process -> metrics
and the dead-letter topic. Nothing produced goes missing."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient
from processes import Broker, Worker, frictionwatch, total, wait_until

from frictionwatch.broker import EmbeddedBroker
from frictionwatch.kafka import (
    KafkaUnavailable,
    committed_offsets,
    consumer_config,
    ensure_topics,
    first_offsets,
    librdkafka_config,
    producer_config,
)
from frictionwatch.metrics_page import Samples
from frictionwatch.partitioning import partition_for
from frictionwatch.settings import Settings
from frictionwatch.streams.app import table_changelogs
from frictionwatch.streams.worker import wait_for_topics

pytestmark = pytest.mark.integration
INPUTS = ("journey.clicks", "journey.contacts", "journey.feedback")


def settings_for(broker: Broker) -> Settings:
    return Settings.load(env={}, cli={"bootstrap_servers": broker.bootstrap_servers})


def test_librdkafka_places_keys_where_the_worker_expects(broker: Broker) -> None:
    settings = settings_for(broker)
    ensure_topics(settings, ["placement"])
    producer = Producer(producer_config(settings))
    placed: dict[bytes, int] = {}

    def delivered(error: object, message: object) -> None:
        assert error is None, error
        placed[message.key()] = message.partition()  # type: ignore[attr-defined]

    keys = [f"session-{i}".encode() for i in range(200)]
    for key in keys:
        producer.produce("placement", key=key, value=b"{}", on_delivery=delivered)
    assert producer.flush(30) == 0
    assert placed == {key: partition_for(key, 4) for key in keys}


def test_a_new_group_is_known_to_start_at_each_partitions_first_record(broker: Broker) -> None:
    # a new group has no offsets; the worker compares a partition's first record here with the
    # partition's first offset, or Faust's dropping of the records it fetched during the group's
    # first rebalance goes unnoticed (two workers on Apache Kafka lost 1.3% of the events)
    settings = settings_for(broker)
    ensure_topics(settings, ["starts"])
    producer = Producer(producer_config(settings))
    for offset in range(5):
        producer.produce("starts", key=b"k", value=str(offset).encode(), partition=0)
    assert producer.flush(30) == 0
    partitions = [("starts", 0), ("starts", 1)]

    def committed() -> dict[tuple[str, int], int | None] | None:
        try:
            return committed_offsets(settings, "a-new-group", partitions)
        except KafkaUnavailable:  # a broker just started: its group coordinator is not ready yet
            return None

    assert wait_until(committed, 60, "the group coordinator") == {("starts", 0): None, ("starts", 1): None}
    assert first_offsets(settings, partitions) == {("starts", 0): 0, ("starts", 1): 0}


def test_the_tables_changelogs_exist_before_faust_starts(broker: Broker) -> None:
    # Faust reads a changelog's partition count once, at its table's first record; a changelog it
    # had just created showed 0 partitions on Apache Kafka, and the worker's agent crashed
    settings = Settings.load(env={}, cli={"bootstrap_servers": broker.bootstrap_servers, "partitions": 6})
    partitions = wait_for_topics(settings, 30)
    assert partitions[settings.topic_windows] == 6
    changelogs = table_changelogs(settings, partitions)
    assert changelogs == {"frictionwatch-replay-marks-changelog": 6, "frictionwatch-detector-state-changelog": 6}
    metadata = AdminClient(librdkafka_config(settings)).list_topics(timeout=30).topics
    for name, count in changelogs.items():
        assert len(metadata[name].partitions) == count
        assert all(partition.leader >= 0 for partition in metadata[name].partitions.values())


def read_topic(settings: Settings, topic: str, expected: int, timeout: float = 60.0) -> list[bytes]:
    """Read ``expected`` records from the start of ``topic`` (fails after ``timeout`` s)."""
    consumer = Consumer(consumer_config(settings, "test-reader", **{"enable.auto.commit": False}))
    consumer.subscribe([topic])
    values: list[bytes] = []
    try:
        wait_until(lambda: _poll_into(consumer, values) >= expected, timeout, f"{expected} records on {topic}", 0)
        extra = consumer.consume(1000, timeout=1.0)  # anything beyond what was expected is an error
        values.extend(message.value() or b"" for message in extra if message.error() is None)
    finally:
        consumer.close()
    return values


def lags(samples: Samples) -> dict[tuple[str, int], float]:
    """``frictionwatch_consumer_lag`` of each input partition on the page."""
    return {
        (labels["topic"], int(labels["partition"])): value
        for (name, pairs), value in samples.items()
        if name == "frictionwatch_consumer_lag" and (labels := dict(pairs))["topic"] in INPUTS
    }


def _poll_into(consumer: Consumer, values: list[bytes]) -> int:
    for message in consumer.consume(1000, timeout=0.5):
        if message.error() is None:
            values.append(message.value() or b"")
    return len(values)


@pytest.mark.parametrize("ingest", ["faust", "direct"])
def test_every_generated_event_is_processed_or_dead_lettered(broker: Broker, tmp_path: Path, ingest: str) -> None:
    # ingest=direct: the worker reads the input topics with a consumer loop of its own (streams/loop.py)
    settings = settings_for(broker)
    summary_path = tmp_path / "summary.json"
    frictionwatch(
        "generate", "--output", "kafka", "--bootstrap-servers", broker.bootstrap_servers,
        "--count", "100000", "--batch", "25", "--malformed-rate", "0.02", "--seed", "11",
        "--time", "simulated", "--duration", "6h", "--summary", str(summary_path), "--quiet",
    )  # fmt: skip
    summary = json.loads(summary_path.read_text())
    produced = {topic: summary["events"][kind] + summary["malformed"][kind] for kind, topic in
                zip(("clicks", "contacts", "feedback"), INPUTS, strict=True)}  # fmt: skip
    malformed = sum(summary["malformed"].values())
    assert sum(produced.values()) >= 100_000
    assert malformed >= 0.01 * sum(produced.values())

    worker = Worker(broker.bootstrap_servers, tmp_path, "--ingest", ingest)
    most_lag: dict[tuple[str, int], float] = {}  # the largest consumer lag seen per input partition
    began: list[float] = []  # when the worker's first event was counted
    try:

        def settled() -> bool:
            samples = worker.samples()
            for (topic, partition), lag in lags(samples).items():
                most_lag[topic, partition] = max(lag, most_lag.get((topic, partition), 0.0))
            if not began and any(total(samples, "frictionwatch_events_received_total", topic=t) for t in INPUTS):
                began.append(time.monotonic())
            return all(
                total(samples, "frictionwatch_events_processed_total", topic=topic)
                + total(samples, "frictionwatch_events_deadlettered_total", topic=topic)
                >= produced[topic]
                for topic in INPUTS
            )

        wait_until(settled, 900, "the worker to process every generated event")  # generous: a busy machine
        caught_up_in = time.monotonic() - began[0]
        every_partition = {(topic, partition) for topic in INPUTS for partition in range(settings.partitions)}

        def lag_gone() -> dict[tuple[str, int], float]:  # read by a timer: every 1 s (Tansu), 5 s (Kafka)
            now = lags(worker.samples())
            return now if set(now) == every_partition and not any(now.values()) else {}

        wait_until(lag_gone, 120, "the consumer lag of every input partition to read 0")
        samples = worker.samples()
    finally:
        exit_code = worker.stop()
    assert exit_code == 0, worker.tail()

    # The lag counts records, so it never exceeds the events produced to the topic; a backlog
    # that lasts several of the lag timer's ticks shows in it.
    assert all(0 <= lag <= produced[topic] for (topic, _), lag in most_lag.items()), most_lag
    ticks = caught_up_in / (1.0 if isinstance(broker, EmbeddedBroker) else 5.0)
    if ticks >= 3:  # a backlog worked through within a tick or two may never be read
        assert max(most_lag.values(), default=0.0) > 0, f"no lag seen in {caught_up_in:.0f} s of backlog"
    for topic in INPUTS:
        processed = total(samples, "frictionwatch_events_processed_total", topic=topic)
        deadlettered = total(samples, "frictionwatch_events_deadlettered_total", topic=topic)
        received = total(samples, "frictionwatch_events_received_total", topic=topic)
        rerouted = total(samples, "frictionwatch_events_rerouted_total", topic=topic)
        assert processed + deadlettered == produced[topic], topic
        assert received == processed + deadlettered + rerouted, topic
        kind = topic.split(".")[1]
        assert deadlettered == summary["malformed"][kind], topic
    by_reason: Counter[str] = Counter()
    for (name, labels), value in samples.items():
        if name == "frictionwatch_events_deadlettered_total" and value:
            by_reason[dict(labels)["reason"]] += int(value)

    deadletters = [orjson.loads(value) for value in read_topic(settings, "journey.deadletter", malformed)]
    assert len(deadletters) == malformed == sum(by_reason.values())
    assert Counter(d["reason"] for d in deadletters) == by_reason
    assert "internal_error" not in by_reason
    for record in deadletters:
        assert record["topic"] in INPUTS and record["offset"] >= 0 and record["value_b64"] is not None


def test_a_direct_worker_carries_on_where_the_faust_agents_left_off(broker: Broker, tmp_path: Path) -> None:
    # A deployment switched from ingest=faust to ingest=direct: the loop's own group has no
    # offsets yet, so it starts where the Faust agents' group committed. Starting at the first
    # records instead would count every event of the first half twice.
    settings = settings_for(broker)
    partitions = [(topic, partition) for topic in INPUTS for partition in range(settings.partitions)]
    kinds = {topic: topic.split(".")[1] for topic in INPUTS}  # the generator's summary counts per kind

    def generate(seed: int, start: float, name: str) -> dict[str, Any]:
        path = tmp_path / f"{name}.json"
        frictionwatch(
            "generate", "--output", "kafka", "--bootstrap-servers", broker.bootstrap_servers, "--count", "20000",
            "--batch", "25", "--seed", str(seed), "--start", str(start), "--duration", "30m",
            "--summary", str(path), "--quiet",
        )  # fmt: skip
        summary: dict[str, Any] = json.loads(path.read_text())
        return summary

    first = generate(21, time.time() - 7200, "first")
    agents = Worker(broker.bootstrap_servers, tmp_path, "--ingest", "faust", name="faust")
    try:

        def all_committed() -> bool:  # the offsets start at 0: a topic's records are its end offset
            try:
                offsets = committed_offsets(settings, settings.group_id, partitions)
            except KafkaUnavailable:
                return False
            return all(
                sum(offsets[topic, partition] or 0 for partition in range(settings.partitions))
                == first["records"][kind]
                for topic, kind in kinds.items()
            )

        wait_until(all_committed, 600, "the Faust agents to commit every record of the first half")
    finally:
        assert agents.stop() == 0, agents.tail()

    second = generate(22, first["last_ts"] + 1, "second")
    produced = {topic: second["events"][kind] + second["malformed"][kind] for topic, kind in kinds.items()}
    loop = Worker(broker.bootstrap_servers, tmp_path, "--ingest", "direct", name="direct")
    try:

        def handled(samples: Samples, topic: str) -> float:
            return total(samples, "frictionwatch_events_processed_total", topic=topic) + total(
                samples, "frictionwatch_events_deadlettered_total", topic=topic
            )

        wait_until(
            lambda: all(handled(loop.samples(), topic) >= produced[topic] for topic in INPUTS),
            600, "the direct worker to handle the second half",
        )  # fmt: skip

        def lag_gone() -> bool:  # nothing left to read: whatever it would count twice is counted
            now = lags(loop.samples())
            return set(now) == set(partitions) and not any(now.values())

        wait_until(lag_gone, 120, "the consumer lag of every input partition to read 0")
        samples = loop.samples()
    finally:
        exit_code = loop.stop()
    assert exit_code == 0, loop.tail()
    assert {topic: handled(samples, topic) for topic in INPUTS} == produced
    assert "where the Faust agents' group frictionwatch left off" in loop.log_path.read_text()
    # the agents stopped before the switch: their group's offsets no longer move (streams/ingest_guard.py)
    assert total(samples, "frictionwatch_other_ingest_reading") == 0
    assert "another worker reads the input topics" not in loop.log_path.read_text()


def test_workers_with_both_ingest_settings_at_once_are_reported(broker: Broker, tmp_path: Path) -> None:
    # A direct and a faust worker in one group each read every input partition (their input
    # offsets live in different consumer groups): each must see the other's commits move on,
    # say so in its log and set the gauge that alert FrictionwatchMixedIngest pages on.
    settings = settings_for(broker)
    ensure_topics(settings, list(INPUTS))
    producer = Producer(producer_config(settings))
    sent = 0

    def send_some() -> None:  # traffic that keeps coming, so that both groups keep committing
        nonlocal sent
        for n in range(sent, sent + 200):
            event: dict[str, Any] = {
                "schema": 1, "event_id": f"m-{n}", "ts": time.time() - 5, "session_id": f"ms-{n % 300}",
                "journey": "purchase", "step": ("landing", "search", "product")[n % 3], "channel": "web",
                "type": "step",
            }  # fmt: skip
            producer.produce("journey.clicks", key=event["session_id"].encode(), value=orjson.dumps(event))
        sent += 200
        assert producer.flush(60) == 0

    workers = [Worker(broker.bootstrap_servers, tmp_path, "--ingest", kind, name=kind) for kind in ("direct", "faust")]
    try:

        def both_report() -> bool:
            send_some()
            return all(total(worker.samples(), "frictionwatch_other_ingest_reading") == 1 for worker in workers)

        wait_until(both_report, 600, "both workers to report a worker with the other ingest setting", poll=2)
        logs = {worker: worker.log_path.read_text() for worker in workers}
    finally:
        codes = [worker.stop() for worker in workers]
    assert codes == [0, 0], [worker.tail() for worker in workers]
    direct, faust = workers
    said = "another worker reads the input topics with ingest = {} while this one has ingest = {}"
    assert said.format("faust", "direct") in logs[direct]
    assert said.format("direct", "faust") in logs[faust]
    assert "consumer group frictionwatch-ingest moved on" in logs[faust]
    for worker in workers:
        assert not worker.crashes(), worker.tail()
