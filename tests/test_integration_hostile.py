"""The hand-made hostile corpus through a real worker on the embedded broker, and the
dead-letter topic read back: every element processed or dead-lettered with its reason.

Record size limits along the way (measured): librdkafka producers refuse a record over
``message.max.bytes`` (default 1,000,000) client-side with MSG_SIZE_TOO_LARGE; the
embedded broker accepts 10 MB; aiokafka (the worker) fetches it although it is larger than
its ``max_partition_fetch_bytes``; the worker dead-letters it as ``record_too_large`` with
its first ``deadletter_max_bytes`` kept. Apache Kafka's broker default (message.max.bytes
1,048,588) would refuse it at produce time instead.
"""

from __future__ import annotations

import base64
from collections import Counter
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from hostile_corpus import PROCESSED, TEN_MB, TOPICS, corpus, duplicate_cases, ordered_cases
from processes import Broker, Worker, total, wait_until

from frictionwatch.kafka import consumer_config, ensure_topics, producer_config
from frictionwatch.settings import Settings

pytestmark = pytest.mark.integration


def read_all(settings: Settings, topic: str, expected: int, timeout: float = 90.0) -> list[bytes]:
    """``expected`` records from the start of ``topic``, and any beyond them that arrive within a second."""
    consumer = Consumer(consumer_config(settings, "hostile-reader", **{"enable.auto.commit": False}))
    consumer.subscribe([topic])
    values: list[bytes] = []

    def more() -> bool:
        values.extend(m.value() or b"" for m in consumer.consume(1000, timeout=0.5) if m.error() is None)
        return len(values) >= expected

    try:
        wait_until(more, timeout, f"{expected} records on {topic}", 0)
        values.extend(m.value() or b"" for m in consumer.consume(1000, timeout=1.0) if m.error() is None)
    finally:
        consumer.close()
    return values


def test_the_hostile_corpus_through_a_worker(broker: Broker, tmp_path: Path) -> None:
    import time

    settings = Settings.load(env={}, cli={"bootstrap_servers": broker.bootstrap_servers})
    ensure_topics(settings, [*TOPICS.values(), settings.topic_deadletter])
    now = time.time()
    cases = [*corpus(now), *ordered_cases(now), *duplicate_cases(now)]
    huge = next(case for case in cases if case.name == "10 MB record")
    assert len(huge.value) > TEN_MB

    # The client-side error path: a producer with default limits refuses the 10 MB record.
    with pytest.raises(KafkaException, match="MSG_SIZE_TOO_LARGE"):
        Producer(producer_config(settings)).produce(huge.topic, key=huge.key, value=huge.value)

    producer = Producer(producer_config(settings, **{"message.max.bytes": 16 * 1024 * 1024}))
    failures: list[object] = []

    def delivered(error: KafkaError | None, _: object) -> None:
        if error is not None:
            failures.append(error)

    for case in cases:
        producer.produce(case.topic, key=case.key, value=case.value, on_delivery=delivered)
    assert producer.flush(60) == 0 and not failures, failures
    produced = Counter[str]()
    for case in cases:
        produced[case.topic] += len(case.expect)
    expected_reasons = Counter(o for case in cases for o in case.expect if o != PROCESSED)

    worker = Worker(broker.bootstrap_servers, tmp_path)
    try:

        def settled() -> bool:
            samples = worker.samples()
            return all(
                total(samples, "frictionwatch_events_processed_total", topic=topic)
                + total(samples, "frictionwatch_events_deadlettered_total", topic=topic)
                >= produced[topic]
                for topic in TOPICS.values()
            )

        wait_until(settled, 600, "the worker to account for every hostile element")
        samples = worker.samples()
    finally:
        exit_code = worker.stop()
    assert exit_code == 0, worker.tail()

    for topic in TOPICS.values():
        processed = total(samples, "frictionwatch_events_processed_total", topic=topic)
        deadlettered = total(samples, "frictionwatch_events_deadlettered_total", topic=topic)
        received = total(samples, "frictionwatch_events_received_total", topic=topic)
        rerouted = total(samples, "frictionwatch_events_rerouted_total", topic=topic)
        assert processed + deadlettered == produced[topic], topic
        assert received == processed + deadlettered + rerouted, topic
    assert total(samples, "frictionwatch_events_deadlettered_total", reason="internal_error") == 0

    deadletters = [orjson.loads(v) for v in read_all(settings, settings.topic_deadletter, expected_reasons.total())]
    assert Counter(d["reason"] for d in deadletters) == expected_reasons
    (too_large,) = [d for d in deadletters if d["reason"] == "record_too_large"]
    assert too_large["size"] == len(huge.value) and too_large["truncated"] is True
    kept = base64.b64decode(too_large["value_b64"])
    assert kept == huge.value[: settings.deadletter_max_bytes]
    for record in deadletters:
        assert record["topic"] in TOPICS.values() and record["offset"] >= 0
