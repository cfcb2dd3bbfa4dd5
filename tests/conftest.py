"""Shared fixtures: the example journey map, a validator, valid events of each kind; for the
integration tests a broker (once per engine chosen with ``--broker``) and the alerting stack."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from processes import Broker
from servers import WebhookReceiver, start_alertmanager, start_prometheus

from frictionwatch.alerting_stack import Server
from frictionwatch.broker import ENGINES, local_broker
from frictionwatch.contract import EventValidator
from frictionwatch.journeymap import JourneyMap, load_journey_map

ROOT = Path(__file__).resolve().parents[1]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--broker",
        choices=(*ENGINES, "both"),
        default="both",
        help="broker of the integration tests: tansu (embedded, quick), kafka (Apache Kafka: scripts/fetch-kafka),"
        " or both (default: each such test runs once per broker)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "broker_engine" in metafunc.fixturenames:
        chosen = metafunc.config.getoption("broker")
        engines = [engine for engine in ENGINES if chosen in (engine, "both")]
        only = metafunc.definition.get_closest_marker("engines")
        if only is not None:  # a test that needs one engine's behaviour
            engines = [engine for engine in engines if engine in only.args]
        metafunc.parametrize("broker_engine", engines)


@pytest.fixture()
def broker_quirks(broker_engine: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The engine's ``broker_quirks`` setting, also put in the environment every worker inherits."""
    quirks = "tansu" if broker_engine == "tansu" else ""
    monkeypatch.setenv("FRICTIONWATCH_BROKER_QUIRKS", quirks)
    return quirks


@pytest.fixture()
def broker(broker_engine: str, broker_quirks: str, tmp_path: Path) -> Iterator[Broker]:
    """A broker of the engine under test on a free loopback port, its log in the test's folder."""
    with local_broker(broker_engine, log_path=tmp_path / f"{broker_engine}.log") as running:
        yield running


def shortened_rules(directory: Path) -> list[Path]:
    """The shipped Prometheus rule files with durations a test can wait for (for: 15 s, the hold 15 s, [1m] ranges)."""
    copies = []
    for rules in sorted((ROOT / "alerts" / "rules").glob("*.yml")):
        text = re.sub(r"\b(keep_firing_for|for): \S+", r"\1: 15s", rules.read_text())
        copy = directory / rules.name
        copy.write_text(text.replace("[5m]", "[1m]"))
        copies.append(copy)
    assert copies
    return copies


@pytest.fixture()
def receiver() -> Iterator[WebhookReceiver]:
    """A webhook standing in for the on-call tool: every notification Alertmanager sends."""
    running = WebhookReceiver()
    yield running
    running.stop()


@pytest.fixture()
def alertmanager(tmp_path: Path, receiver: WebhookReceiver) -> Iterator[Server]:
    """Debian's Alertmanager with the shipped routing, delivering to ``receiver``."""
    running = start_alertmanager(tmp_path, receiver.url)
    yield running
    running.stop()


@pytest.fixture()
def prometheus(tmp_path: Path, alertmanager: Server) -> Iterator[Callable[[list[str]], Server]]:
    """Starts Debian's Prometheus scraping the given targets, with the shortened shipped rules."""
    started: list[Server] = []

    def start(targets: list[str]) -> Server:
        started.append(start_prometheus(tmp_path, targets, shortened_rules(tmp_path), alertmanager))
        return started[-1]

    yield start
    for server in started:
        server.stop()


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
