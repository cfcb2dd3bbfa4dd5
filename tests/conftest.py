"""Shared fixtures: the example journey map, a validator, valid events of each kind."""

from __future__ import annotations

from typing import Any

import pytest

from frictionwatch.contract import EventValidator
from frictionwatch.journeymap import JourneyMap, load_journey_map

NOW = 1_795_514_400.0  # 2026-11-24T10:00:00Z


@pytest.fixture(scope="session")
def journey_map() -> JourneyMap:
    return load_journey_map()


@pytest.fixture()
def validator(journey_map: JourneyMap) -> EventValidator:
    return EventValidator(journey_map)


def click(**changes: Any) -> dict[str, Any]:
    event = {
        "schema": 1,
        "event_id": "c-1",
        "ts": NOW - 10,
        "session_id": "s-1",
        "customer_id": "cust-1",
        "journey": "purchase",
        "step": "cart",
        "channel": "web",
        "device": "desktop",
        "type": "step",
    }
    event.update(changes)
    return {key: value for key, value in event.items() if value is not ...}


def contact(**changes: Any) -> dict[str, Any]:
    event = {
        "schema": 1,
        "event_id": "k-1",
        "ts": NOW - 10,
        "contact_id": "ct-1",
        "customer_id": "cust-1",
        "channel": "phone",
        "queue": "billing",
        "type": "answered",
        "wait_seconds": 42.5,
    }
    event.update(changes)
    return {key: value for key, value in event.items() if value is not ...}


def feedback(**changes: Any) -> dict[str, Any]:
    event = {
        "schema": 1,
        "event_id": "f-1",
        "ts": NOW - 10,
        "survey": "csat",
        "score": 4,
        "journey": "purchase",
        "step": "confirmation",
    }
    event.update(changes)
    return {key: value for key, value in event.items() if value is not ...}
