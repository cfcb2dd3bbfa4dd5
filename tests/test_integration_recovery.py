"""A worker killed with SIGKILL mid-stream, and a new one in its place: nothing lost, nothing twice.

The second worker rebuilds the state of every partition by replaying it (streams/recovery.py),
carries on from the first worker's last committed offsets, and re-processes what the first
processed after them. Every window of every partition is published to the windows topic at
least once; a window published twice must be the same window (re-delivered events did not
inflate it), and the windows together must hold exactly what an independent computation from
the same events gives (docs/metrics.md definitions, tests/test_integration_metrics.py). Some
events are also produced twice, as a retrying producer would: their event_id gives them away.
"""

from __future__ import annotations

import random
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition
from processes import Broker, Worker, frictionwatch, total, wait_until
from test_integration_metrics import METRICS, PARTITIONS, closing_events, expected_counts, make_topics, produce

from frictionwatch.kafka import committed_offsets, consumer_config
from frictionwatch.settings import Settings
from frictionwatch.streams.loop import ingest_group

pytestmark = pytest.mark.integration
WINDOWS_TOPIC = "frictionwatch.windows"
# The worker's settings: every session counts from the first event (the traffic is complete).
WORKER_ARGS = ("--flow-cold-start", "0")
# A window's touchpoint (journey, step, channel, queue, survey) -> the labels of METRICS.
PLACE = {"journey": 0, "step": 1, "channel": 2, "queue": 3, "survey": 4}
FIELDS = {"score_sum": "score", **{name: name for name in METRICS}}  # window field -> METRICS field


def committed_clicks(bootstrap: str, ingest: str) -> int:
    """Records of journey.clicks the workers' group has committed, over every partition."""
    settings = Settings.load(env={}, cli={"bootstrap_servers": bootstrap})
    group = ingest_group(settings) if ingest == "direct" else settings.group_id
    found = committed_offsets(settings, group, [("journey.clicks", p) for p in range(PARTITIONS)])
    return sum(offset or 0 for offset in found.values())


def read_all(bootstrap: str, topic: str) -> list[bytes]:
    """Every record of ``topic`` now, from the beginning of each partition."""
    settings = Settings.load(env={}, cli={"bootstrap_servers": bootstrap})
    consumer = Consumer(consumer_config(settings, "recovery-test", **{"enable.partition.eof": True}))
    consumer.assign([TopicPartition(topic, partition, 0) for partition in range(PARTITIONS)])
    values: list[bytes] = []
    at_end: set[int] = set()
    deadline = time.monotonic() + 60
    try:
        while len(at_end) < PARTITIONS and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                assert error.code() == KafkaError._PARTITION_EOF, error
                at_end.add(message.partition() or 0)
                continue
            values.append(message.value() or b"")
    finally:
        consumer.close()
    assert len(at_end) == PARTITIONS, "the windows topic could not be read to its end"
    return values


def published_windows(bootstrap: str) -> tuple[dict[str, Counter[tuple[str, ...]]], list[str]]:
    """The windows of the windows topic, each once, as the independent computation's fields;
    and every window published twice with different counts."""
    first: dict[tuple[Any, ...], dict[tuple[str, ...], dict[str, float]]] = {}
    differing = []
    for value in read_all(bootstrap, WINDOWS_TOPIC):
        partial = orjson.loads(value)
        if "evidence_schema" in partial:
            continue  # the evidence path's records share the topic (tests/test_evidence.py covers replays)
        identity = (partial["source"], partial["group"], partial["start"], partial["partition"])
        counts = {
            tuple(row[:5]): {FIELDS[name]: amount for name, amount in row[5].items() if name in FIELDS and amount}
            for row in partial["counts"]
        }
        counts = {place: fields for place, fields in counts.items() if fields}
        if identity not in first:
            first[identity] = counts
        elif first[identity] != counts:
            differing.append(f"{identity}: first {first[identity]}, again {counts}")
    merged: dict[str, Counter[tuple[str, ...]]] = defaultdict(Counter)
    for counts in first.values():
        for place, fields in counts.items():
            for name, amount in fields.items():
                merged[name][tuple(place[PLACE[label]] for label in METRICS[name][1])] += int(amount)
    return merged, differing


@pytest.mark.parametrize("ingest", ["faust", "direct"])
def test_a_killed_worker_is_replaced_without_losing_or_doubling_events(
    broker: Broker, tmp_path: Path, ingest: str
) -> None:
    # ingest=direct: the input topics read by the worker's own consumer loop (streams/loop.py)
    args = (*WORKER_ARGS, "--ingest", ingest)
    make_topics(broker.bootstrap_servers)
    start = time.time() - 3 * 3600
    path = tmp_path / "hour.jsonl"
    frictionwatch("generate", "--output", str(path), "--start", str(start), "--duration", "1h", "--rate", "15",
                  "--seed", "34", "--quiet")  # fmt: skip
    traffic = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    traffic += closing_events(max(line["value"]["ts"] for line in traffic) + 1800 + 300)
    expected = expected_counts(traffic)
    # A retrying producer: 300 click events sent twice, the copy right after the original.
    twice = set(random.Random(34).sample([i for i, line in enumerate(traffic) if line["topic"] == "clicks"], 300))
    produced = [copy for i, line in enumerate(traffic) for copy in ([line, line] if i in twice else [line])]

    # Produced in three parts, so that the kill falls mid-stream however fast the worker is: the
    # first worker handles the first part and commits, is killed once it has begun the second
    # (what it handled after its last commit is handled again by the second worker), and the
    # third part is produced only after the kill.
    cuts = (int(0.3 * len(produced)), int(0.6 * len(produced)))
    parts = (produced[: cuts[0]], produced[cuts[0] : cuts[1]], produced[cuts[1] :])
    first = Worker(broker.bootstrap_servers, tmp_path, *args, name="first")
    try:
        wait_until(lambda: total(first.samples(), "frictionwatch_assigned_partitions", topic="journey.clicks") == 4,
                   180, "the first worker to own every partition")  # fmt: skip
        produce(broker.bootstrap_servers, parts[0])
        wait_until(lambda: total(first.samples(), "frictionwatch_events_processed_total") >= cuts[0], 600,
                   "the first worker to handle the first part")  # fmt: skip
        wait_until(
            lambda: committed_clicks(broker.bootstrap_servers, ingest) > 0, 120, "the first worker to commit offsets"
        )
        produce(broker.bootstrap_servers, parts[1])
        processed = wait_until(
            lambda: (n := total(first.samples(), "frictionwatch_events_processed_total")) > cuts[0] and n,
            600, "the first worker to begin the second part",
        )  # fmt: skip
    finally:
        first.process.kill()  # SIGKILL: no commit, no goodbye (and no worker left behind if the waits failed)
    killed_at = time.monotonic()
    first.process.wait()
    first.log.close()
    committed = committed_clicks(broker.bootstrap_servers, ingest)
    produce(broker.bootstrap_servers, parts[2])

    second = Worker(broker.bootstrap_servers, tmp_path, *args, name="second")
    try:
        wait_until(lambda: total(second.samples(), "frictionwatch_events_processed_total") > 0, 400,
                   "the second worker to resume processing")  # fmt: skip
        resumed = time.monotonic() - killed_at
        # Each partition is rebuilt before its own first record, and counted when its replay ends:
        # another partition's records can be processed first, so wait for the count.
        rebuilt = wait_until(
            lambda: (n := total(second.samples(), "frictionwatch_state_rebuilt_records_total")) > 0 and n,
            300, "the second worker to rebuild state from the records before where the first left off",
        )  # fmt: skip

        def complete() -> bool:
            merged, _ = published_windows(broker.bootstrap_servers)
            return all(merged[field] == expected[field] for field in METRICS)

        try:
            wait_until(complete, 900, "the published windows to hold every event exactly once", poll=3)
        finally:
            merged, differing = published_windows(broker.bootstrap_servers)
            wrong = [
                f"{field} {place}: published {merged[field][place]}, expected {amount}"
                for field in METRICS
                for place, amount in expected[field].items()
                if merged[field][place] != amount
            ]
            assert not wrong and not differing, f"{wrong[:5]}; windows published twice, differently: {differing[:3]}"
        caught_up = time.monotonic() - killed_at
        duplicates = total(second.samples(), "frictionwatch_events_duplicate_total")
        print(f"\nkilled after {processed:,.0f} of {len(produced):,} events ({committed:,} clicks committed); "
              f"the second worker rebuilt {rebuilt:,.0f} records, resumed {resumed:.0f} s "
              f"and caught up {caught_up:.0f} s after the kill; "
              f"it skipped {duplicates:,.0f} duplicates")  # fmt: skip
        assert duplicates > 0  # the copies it saw after the crash were recognised
    finally:
        assert second.stop() == 0, second.tail()
