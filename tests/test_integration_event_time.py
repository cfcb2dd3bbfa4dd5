"""Device clocks that are off, through a real worker on the embedded broker (issue 15).

On one partition of journey.clicks: a session's first step, one event 290 s ahead from
another device, then the first session's next step, a device an hour behind; and a batch
record whose sent_ts says its device's clock is 10 minutes fast. The worker takes the
Kafka record timestamps as the arrivals (tests/test_event_time.py covers the pure code).
"""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
from aiokafka.partitioner import murmur2
from confluent_kafka import Producer
from processes import Broker, Worker, total, wait_until

from frictionwatch.kafka import ensure_topics, producer_config
from frictionwatch.settings import Settings

pytestmark = pytest.mark.integration
CLICKS = "journey.clicks"
PARTITIONS = 4  # the worker's default


def keys_on(partition: int, prefix: str, count: int) -> list[str]:
    keys = (f"{prefix}-{index}" for index in range(10_000))
    return [key for key in keys if (murmur2(key.encode()) & 0x7FFFFFFF) % PARTITIONS == partition][:count]


def step(session: str, name: str, ts: float, channel: str = "web", **extra: Any) -> dict[str, Any]:
    return {"schema": 1, "event_id": f"{session}-{name}-{ts}", "ts": ts, "session_id": session,
            "journey": "purchase", "step": name, "channel": channel, "type": "step", **extra}  # fmt: skip


@pytest.mark.engines("tansu")
def test_a_worker_corrects_skewed_clocks_and_counts_nothing_late_for_others(broker: Broker, tmp_path: Any) -> None:
    settings = Settings.load(env={}, cli={"bootstrap_servers": broker.bootstrap_servers})
    ensure_topics(settings, [CLICKS, "journey.contacts", "journey.feedback", "journey.deadletter",
                             "frictionwatch.windows", "frictionwatch.customer-touches"])  # fmt: skip
    worker = Worker(broker.bootstrap_servers, tmp_path, "--window-size", "10")
    try:
        wait_until(
            lambda: total(worker.samples(), "frictionwatch_assigned_partitions", topic=CLICKS) == PARTITIONS,
            300, "the worker to own the clicks partitions",
        )  # fmt: skip
        customer, outlier, behind = keys_on(0, "s", 3)
        (fast,) = keys_on(1, "fast", 1)
        now = time.time()
        # 590 s fast, not 600: the skew is sent_ts minus the record's timestamp (whole ms, so up to
        # 1 ms before `now`), and it must stay inside the histogram's 600-s bucket
        batch = [step(fast, name, now + 590 - 5 + i, "app", sent_ts=now + 590) for i, name in
                 enumerate(("landing", "search", "product"))]  # fmt: skip
        records = [
            (customer, [step(customer, "landing", now)]),
            (outlier, [step(outlier, "landing", now + 290)]),  # inside max_future_skew: valid
            (behind, [step(behind, "landing", now - 3600)]),
            (fast, batch),  # 10 min ahead: without sent_ts it would be ts_in_future
        ]
        producer = Producer(producer_config(settings))
        for key, events in records:
            producer.produce(CLICKS, key=key.encode(), value=orjson.dumps(events if len(events) > 1 else events[0]))
        assert producer.flush(60) == 0
        after = time.time()
        # the session moves on after the outlier arrived: with the watermark at the outlier's ts,
        # this step's amounts would be too late for their window
        producer.produce(CLICKS, key=customer.encode(), value=orjson.dumps(step(customer, "search", after)))
        assert producer.flush(60) == 0

        wait_until(lambda: total(worker.samples(), "frictionwatch_events_processed_total", topic=CLICKS) == 7,
                   300, "the 7 events to be processed")  # fmt: skip
        samples = worker.samples()
        received = total(samples, "frictionwatch_events_received_total", topic=CLICKS)
        deadlettered = total(samples, "frictionwatch_events_deadlettered_total", topic=CLICKS)
        assert received == 7 + deadlettered and deadlettered == 0

        watermarks = {
            labels: value for (name, labels), value in samples.items()
            if name == "frictionwatch_watermark_timestamp_seconds" and ("topic", CLICKS) in labels
        }  # fmt: skip
        assert watermarks and max(watermarks.values()) <= after + 5, watermarks  # clock_tolerance: 5 s

        def corrected(**labels: str) -> float:
            return total(samples, "frictionwatch_events_time_corrected_total", topic=CLICKS, **labels)

        assert corrected(channel="web", direction="ahead") == 1  # the outlier: at its arrival now
        assert corrected(channel="app", direction="ahead") == 3  # the batch: by its sent_ts
        assert corrected() == 4 and total(samples, "frictionwatch_clock_skew_seconds_count", topic=CLICKS) == 4
        assert total(samples, "frictionwatch_clock_skew_seconds_bucket", topic=CLICKS, channel="app", le="300.0") == 0
        assert total(samples, "frictionwatch_clock_skew_seconds_bucket", topic=CLICKS, channel="app", le="600.0") == 3

        # Only the device an hour behind is late: its session's first step (entered, visit);
        # nothing of the other sessions on its partition.
        assert total(samples, "frictionwatch_events_late_total", topic=CLICKS) == 2
    finally:
        exit_code = worker.stop()
    assert exit_code == 0, worker.tail()
