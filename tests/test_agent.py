"""The Faust agents without a broker (``agent.test_context()``), tables and all in memory."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from conftest import click, contact
from frictionwatch.settings import Settings
from frictionwatch.streams.app import build_app, sent_everything

TOPICS = [
    "journey.clicks", "journey.contacts", "journey.feedback", "journey.deadletter",
    "frictionwatch.windows", "frictionwatch.customer-touches",
]  # fmt: skip


@pytest.mark.asyncio
async def test_agents_ingest_through_faust(journey_map: Any) -> None:
    registry = CollectorRegistry()
    settings = Settings.load(env={}, cli={"bootstrap_servers": "127.0.0.1:9", "store": "memory://", "ingest": "faust"})
    built = build_app(settings, journey_map, registry, dict.fromkeys(TOPICS, 1))
    sent: list[tuple[str, bytes | None]] = []

    async def send(topic: str, key: bytes | None, value: bytes, partition: int | None) -> None:
        sent.append((topic, key))  # the pipeline's producer is tested in test_pipeline.py

    built.pipeline.send = send
    app = built.app
    app.finalize()
    app.flow_control.resume()
    clicks = app.agents["ingest-journey.clicks"]
    contacts = app.agents["ingest-journey.contacts"]
    async with clicks.test_context() as agent:
        now = time.time()  # the worker judges ts against its own clock
        await agent.put(orjson.dumps([click(ts=now), click(event_id="c-2", type="exit", ts=now)]), key=b"s-1")
        await agent.put(b"{not json", key=b"s-2")
    async with contacts.test_context() as agent:
        await agent.put(orjson.dumps(contact(ts=now)), key=b"ct-1")
    processed = registry.get_sample_value("frictionwatch_events_processed_total", {"topic": "journey.clicks"})
    rejected = registry.get_sample_value(
        "frictionwatch_events_deadlettered_total", {"topic": "journey.clicks", "reason": "not_json"}
    )
    assert (processed, rejected) == (2, 1)
    assert registry.get_sample_value("frictionwatch_events_processed_total", {"topic": "journey.contacts"}) == 1
    assert sent == [
        ("frictionwatch.customer-touches", b"cust-1"),  # the session's start, re-keyed by customer
        ("journey.deadletter", b"s-2"),
    ]


@pytest.mark.asyncio
async def test_a_rebalance_reaching_a_stopping_worker_leaves_its_consumer_open(
    journey_map: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Faust closed it, and the commit it made next while stopping retried forever (streams/app.py)
    settings = Settings.load(env={}, cli={"bootstrap_servers": "127.0.0.1:9", "store": "memory://"})
    app = build_app(settings, journey_map, CollectorRegistry(), dict.fromkeys(TOPICS, 1)).app
    closed: list[str] = []
    monkeypatch.setattr(app.consumer, "close", lambda: closed.append("closed"))
    app._stopped.set()  # stopping, as after SIGTERM (Faust's private state: there is no public way)
    assert app.should_stop
    await app._on_partitions_revoked(set())
    await app._on_partitions_assigned(set())
    assert closed == []


class SlowBuffer:
    """Faust's producer buffer as its stop sees it: a queue, and a task sending one record at a time."""

    state = "running"

    def __init__(self, seconds_per_send: float) -> None:
        self.pending: asyncio.Queue[str] = asyncio.Queue()
        self.sent: list[str] = []
        self.seconds = seconds_per_send

    @property
    def size(self) -> int:
        return self.pending.qsize()

    async def handle_pending(self) -> None:  # as ProducerBuffer._handle_pending
        while True:
            record = await self.pending.get()
            await asyncio.sleep(self.seconds)  # the send
            self.sent.append(record)


@pytest.mark.asyncio
async def test_a_stopping_worker_waits_for_the_record_faust_is_sending() -> None:
    # Faust's flush gave up on a send over 0.1 s and ignored the one in flight (streams/app.py)
    buffer = SlowBuffer(seconds_per_send=0.15)
    sender = asyncio.create_task(buffer.handle_pending())
    for record in ("a", "b", "c"):
        buffer.pending.put_nowait(record)
    await asyncio.sleep(0)  # the task takes "a" and sends it
    assert await sent_everything(buffer, timeout=10.0)
    assert buffer.sent == ["a", "b", "c"]
    buffer.pending.put_nowait("d")
    assert not await sent_everything(buffer, timeout=0.05)  # still sending when the time is up
    sender.cancel()
