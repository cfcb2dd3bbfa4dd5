"""The Faust agents without a broker (``agent.test_context()``), tables and all in memory."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from conftest import click, contact
from frictionwatch.settings import Settings
from frictionwatch.streams.app import build_app

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
