"""Friction metrics end to end: a seeded generator run through real workers on the embedded
broker; the scraped counters must equal an independent computation from the same events,
written here from the definitions in docs/metrics.md (not by calling the code under test)."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka.partitioner import murmur2
from confluent_kafka import Producer
from processes import Broker, Worker, frictionwatch, total, wait_until

from frictionwatch.journeymap import load_journey_map
from frictionwatch.kafka import ensure_topics, producer_config
from frictionwatch.settings import Settings

pytestmark = pytest.mark.integration
TOPICS = {"clicks": "journey.clicks", "contacts": "journey.contacts", "feedback": "journey.feedback"}
PARTITIONS = 4
TIMEOUT = 1800.0  # the example map's session timeout


@pytest.fixture(scope="module")
def traffic(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """An hour of seeded traffic that ended two hours ago, plus events that close every window."""
    path = tmp_path_factory.mktemp("traffic") / "hour.jsonl"
    start = time.time() - 3 * 3600
    frictionwatch("generate", "--output", str(path), "--start", str(start), "--duration", "1h", "--rate", "15",
                  "--seed", "21", "--quiet")  # fmt: skip
    lines = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    last = max(line["value"]["ts"] for line in lines)
    return lines + closing_events(last + TIMEOUT + 300)


def home(key: str) -> int:
    return int(murmur2(key.encode()) & 0x7FFFFFFF) % PARTITIONS


def keys_for_every_partition(prefix: str) -> list[str]:
    found: dict[int, str] = {}
    for index in range(1000):
        found.setdefault(home(f"{prefix}-{index}"), f"{prefix}-{index}")
    return [found[p] for p in range(PARTITIONS)]


def closing_events(ts: float) -> list[dict[str, Any]]:
    """One event per partition of every topic (and customer-touch partition), late enough to close
    every window of the traffic; they fall in windows that stay open, so they count nowhere."""
    events = []
    customers = keys_for_every_partition("closing-customer")
    for index, session in enumerate(keys_for_every_partition("closing-session")):
        value = {"schema": 1, "event_id": f"close-{session}", "ts": ts, "session_id": session, "journey": "purchase",
                 "step": "landing", "channel": "web", "type": "step", "customer_id": customers[index]}  # fmt: skip
        events.append({"topic": "clicks", "key": session, "value": value})
    for contact in keys_for_every_partition("closing-contact"):
        value = {"schema": 1, "event_id": f"close-{contact}", "ts": ts, "contact_id": contact, "channel": "email",
                 "queue": "general", "type": "resolved"}  # fmt: skip
        events.append({"topic": "contacts", "key": contact, "value": value})
    for key in keys_for_every_partition("closing-feedback"):
        value = {"schema": 1, "event_id": f"close-{key}", "ts": ts, "survey": "csat", "score": 5,
                 "channel": "email", "queue": "general"}  # fmt: skip
        events.append({"topic": "feedback", "key": key, "value": value})
    return events


def produce(bootstrap: str, lines: list[dict[str, Any]]) -> None:
    settings = Settings.load(env={}, cli={"bootstrap_servers": bootstrap})
    producer = Producer(producer_config(settings))
    for line in lines:
        producer.produce(TOPICS[line["topic"]], key=line["key"].encode(), value=orjson.dumps(line["value"]))
        producer.poll(0)
    assert producer.flush(60) == 0


# --- the independent computation ----------------------------------------------------------------


def expected_counts(lines: list[dict[str, Any]]) -> dict[str, Counter[tuple[str, ...]]]:
    journey_map = load_journey_map()
    goals = {(j.name, s.name) for j in journey_map.journeys.values() for s in j.steps if s.goal}
    counts: dict[str, Counter[tuple[str, ...]]] = defaultdict(Counter)
    by_session: dict[str, list[dict[str, Any]]] = defaultdict(list)
    closing = [line for line in lines if line["value"]["event_id"].startswith("close-")]
    for line in lines:
        if line in closing:
            continue
        event = line["value"]
        if line["topic"] == "clicks":
            by_session[event["session_id"]].append(event)
            if event["type"] in ("click", "error"):
                counts[event["type"] + "s"][event["journey"], event["step"], event["channel"]] += 1
        elif line["topic"] == "contacts":
            queue = (event["channel"], event["queue"])
            if event["type"] == "queued":
                counts["offered"][queue] += 1
            elif event["type"] == "answered":
                counts["answered"][queue] += 1
            elif event["type"] == "abandoned":
                short = event.get("wait_seconds") is not None and event["wait_seconds"] < 5
                counts["short_abandoned" if short else "abandoned"][queue] += 1
        else:
            place = (event.get("journey") or "", event.get("step") or "", event.get("channel") or "",
                     event.get("queue") or "", event["survey"])  # fmt: skip
            counts["responses"][place] += 1
            counts["score"][place] += event["score"]
    for events in by_session.values():
        events.sort(key=lambda event: event["ts"])
        visits: list[list[dict[str, Any]]] = [[events[0]]]
        for event in events[1:]:  # more than the timeout of silence starts a new session
            if event["ts"] - visits[-1][-1]["ts"] >= TIMEOUT or visits[-1][-1]["type"] == "exit":
                visits.append([event])
            else:
                visits[-1].append(event)
        for session in visits:
            reached: set[str] = set()
            for event in session:
                if event["step"] not in reached:
                    reached.add(event["step"])
                    counts["sessions_entered"][event["journey"], event["step"], event["channel"]] += 1
            last = session[-1]
            converted = any((last["journey"], step) in goals for step in reached)
            if converted:
                goal = next(step for step in reached if (last["journey"], step) in goals)
                counts["conversions"][last["journey"], goal, last["channel"]] += 1
            elif (last["journey"], last["step"]) not in goals:
                counts["dropoffs"][last["journey"], last["step"], last["channel"]] += 1
    return counts


METRICS = {
    "sessions_entered": ("frictionwatch_step_sessions_entered_total", ("journey", "step", "channel")),
    "clicks": ("frictionwatch_step_clicks_total", ("journey", "step", "channel")),
    "errors": ("frictionwatch_step_errors_total", ("journey", "step", "channel")),
    "conversions": ("frictionwatch_step_conversions_total", ("journey", "step", "channel")),
    "dropoffs": ("frictionwatch_step_dropoffs_total", ("journey", "step", "channel")),
    "offered": ("frictionwatch_contacts_offered_total", ("channel", "queue")),
    "answered": ("frictionwatch_contacts_answered_total", ("channel", "queue")),
    "abandoned": ("frictionwatch_contacts_abandoned_total", ("channel", "queue")),
    "short_abandoned": ("frictionwatch_contacts_short_abandoned_total", ("channel", "queue")),
    "responses": ("frictionwatch_feedback_responses_total", ("journey", "step", "channel", "queue", "survey")),
    "score": ("frictionwatch_feedback_score_total", ("journey", "step", "channel", "queue", "survey")),
}


def scraped_counts(workers: list[Worker]) -> dict[str, Counter[tuple[str, ...]]]:
    counts: dict[str, Counter[tuple[str, ...]]] = defaultdict(Counter)
    for worker in workers:
        for (name, labels), value in worker.samples().items():
            for field, (metric, label_names) in METRICS.items():
                if name == metric and value:
                    found = dict(labels)
                    counts[field][tuple(found[label] for label in label_names)] += int(value)
    return counts


def make_topics(bootstrap: str) -> None:
    """The worker's topics, made beforehand with the test's partition count."""
    settings = Settings.load(env={}, cli={"bootstrap_servers": bootstrap})
    ensure_topics(settings, [*TOPICS.values(), "journey.deadletter", "frictionwatch.windows",
                             "frictionwatch.customer-touches"])  # fmt: skip


def run_workers(
    broker: Broker, traffic: list[dict[str, Any]], tmp_path: Path, count: int, ingest: str = "faust"
) -> None:
    make_topics(broker.bootstrap_servers)
    # the traffic is complete from its first session: count every session from the first event
    args = ("--flow-cold-start", "0", "--ingest", ingest)
    workers = [Worker(broker.bootstrap_servers, tmp_path, *args, name=f"worker-{n}") for n in range(count)]
    try:

        def all_assigned() -> bool:
            owned = [total(w.samples(), "frictionwatch_assigned_partitions", topic="journey.clicks") for w in workers]
            return sum(owned) == PARTITIONS and all(owned)

        wait_until(all_assigned, 300, f"{count} worker(s) to share the partitions")
        produce(broker.bootstrap_servers, traffic)
        expected = expected_counts(traffic)
        assert sum(expected["sessions_entered"].values()) > 1000

        def counted() -> bool:
            scraped = scraped_counts(workers)
            return all(scraped[field] == expected[field] for field in METRICS)

        try:
            wait_until(counted, 600, "the scraped counters to equal the independent computation")
        except AssertionError:
            scraped = scraped_counts(workers)
            for field in METRICS:
                difference = {k: (scraped[field][k], v) for k, v in expected[field].items() if scraped[field][k] != v}
                assert not difference, f"{field}: (scraped, expected) {dict(list(difference.items())[:5])}"
            raise
        if count > 1:
            processed = [total(w.samples(), "frictionwatch_events_processed_total") for w in workers]
            assert all(processed), f"every worker should have processed events: {processed}"
        # Stage 2 merges the partitions' windows after stage 1 counted them: wait for it too.
        wait_until(
            lambda: sum(total(w.samples(), "frictionwatch_windows_final_total", complete="true") for w in workers) > 0,
            300, "stage 2 to make complete final windows",
        )  # fmt: skip
    finally:
        for worker in workers:
            assert worker.stop() == 0, worker.tail()


def test_one_worker_counts_exactly(broker: Broker, traffic: list[dict[str, Any]], tmp_path: Path) -> None:
    run_workers(broker, traffic, tmp_path, 1)


@pytest.mark.parametrize("ingest", ["faust", "direct"])
def test_two_workers_split_the_partitions_and_sum_exactly(
    broker: Broker, traffic: list[dict[str, Any]], tmp_path: Path, ingest: str
) -> None:
    # ingest=direct: the input topics read by the workers' own consumer loops (streams/loop.py)
    run_workers(broker, traffic, tmp_path, 2, ingest)
