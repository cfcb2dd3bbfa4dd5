"""Identifiers and alerts: customer ids never reach an alert; example ids are pseudonymised
(keyed HMAC-SHA256) when a pseudonym key is set; the key is a secret like the SASL password.

Where an id could reach an alert (traced in the code): labels come from the journey map
(alerts/immediate.py); annotations from the finding, its verdict and the settings; the
``examples`` annotation from the window examples, which only sessions.py (session_id)
and contacts.py (contact_id) record. The test below drives generated traffic, customer ids
included, through both friction stages and makes every series of every final window alert.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from conftest import NOW
from frictionwatch.alerts.immediate import AlertSettings, AlertTracker
from frictionwatch.contract import Event, EventValidator
from frictionwatch.detectors.bank import DEFAULTS, Finding
from frictionwatch.detectors.base import Verdict
from frictionwatch.journeymap import DetectorSettings, load_journey_map
from frictionwatch.partitioning import partition_for
from frictionwatch.pseudonym import Pseudonymiser
from frictionwatch.settings import Settings, SettingsError
from frictionwatch.streams.app import build_friction
from frictionwatch.streams.reduce import FinalWindow

PLACE = ("", "", "phone", "billing", "")


def test_pseudonyms_are_keyed_stable_and_short() -> None:
    first, second = Pseudonymiser(b"key-one"), Pseudonymiser(b"key-two")
    assert first("cust-1") == first("cust-1") != first("cust-2")
    assert first("cust-1") != second("cust-1")
    assert re.fullmatch(r"p-[0-9a-f]{16}", first("cust-1"))
    assert "key-one" not in repr(first)
    with pytest.raises(ValueError):
        Pseudonymiser(b"")


def test_the_pseudonym_key_is_a_secret_setting(tmp_path: Path) -> None:
    settings = Settings.load(env={"FRICTIONWATCH_PSEUDONYM_KEY": "s3cr3t-key"})
    assert settings.pseudonym_key == "s3cr3t-key"
    assert "s3cr3t-key" not in repr(settings) and "s3cr3t-key" not in str(settings.describe())
    with pytest.raises(SettingsError, match="FRICTIONWATCH_PSEUDONYM_KEY"):
        Settings.load(env={}, cli={"pseudonym_key": "on-the-command-line"})
    config = tmp_path / "fw.toml"
    config.write_text('pseudonym_key = "in-a-file"\n')
    with pytest.raises(SettingsError, match="must come from"):
        Settings.load(env={}, config_file=config)
    key_file = tmp_path / "key"
    key_file.write_text("from-a-mounted-secret\n")
    assert Settings.load(env={"FRICTIONWATCH_PSEUDONYM_KEY_FILE": str(key_file)}).pseudonym_key == (
        "from-a-mounted-secret"
    )


def verdict() -> Verdict:
    return Verdict(0, 0.4, 0.1, 0.05, 0.15, 9.0, 120, True, "critical")


def test_example_ids_are_pseudonymised_when_a_key_is_set() -> None:
    pseudonymise = Pseudonymiser(b"k")
    tracker = AlertTracker(AlertSettings(), pseudonymise=pseudonymise)
    finding = Finding(PLACE, "abandonment_ratio", verdict(), 4.0)
    (alert,) = tracker.update([finding], 1000, 1065, {}, {PLACE: ["ct-1", "ct-2"]})
    assert alert["annotations"]["examples"] == f"{pseudonymise('ct-1')}, {pseudonymise('ct-2')}"
    assert "ct-1" not in orjson.dumps(alert).decode()
    (plain,) = AlertTracker().update([finding], 1000, 1065, {}, {PLACE: ["ct-1"]})
    assert plain["annotations"]["examples"] == "ct-1"  # without a key: as issue 5 allows


@pytest.mark.parametrize("keyed", [False, True], ids=["no key", "keyed"])
def test_no_customer_id_reaches_any_alert(tmp_path: Path, keyed: bool) -> None:
    journey_map = load_journey_map()
    settings = Settings.load(env={}, cli={"window_size": 10, "flow_cold_start": 0})
    topics = [settings.topic_clicks, settings.topic_contacts, settings.topic_feedback]
    partitions = dict.fromkeys([*topics, settings.topic_windows, settings.topic_touches], 2)
    friction = build_friction(settings, journey_map, CollectorRegistry(), partitions)
    pseudonymise = Pseudonymiser(b"test-key") if keyed else None
    tracker = AlertTracker(AlertSettings(), pseudonymise=pseudonymise)
    stages = {(j.name, s.name): s.stage for j in journey_map.journeys.values() for s in j.steps}
    alerts: list[dict[str, Any]] = []

    class EveryPlaceFires:
        """Stands in for the detectors: every observed series of every final window is anomalous."""

        def observe(self, items: Any) -> list[Finding]:
            return [Finding(place, metric, verdict(), 4.0) for place, metric, _ in items]

        def settings_for(self, place: Any, metric: str) -> DetectorSettings:  # the evidence path's budgets
            return DEFAULTS

    def alert_on(window: FinalWindow, findings: list[Finding]) -> None:
        alerts.extend(tracker.update(findings, window.start, NOW, stages, window.examples))

    friction.detectors = EveryPlaceFires()  # type: ignore[assignment]
    friction.on_findings = alert_on
    friction.on_evidence = lambda found: alerts.extend(
        alert
        for since, finding in found
        for alert in tracker.update([finding], since, NOW, stages, friction.evidence.examples)
    )

    events = _generate(tmp_path)
    customers = {e["customer_id"] for _, e in events if e.get("customer_id")}
    ids = {e[name] for _, e in events for name in ("session_id", "contact_id") if e.get(name)}
    assert len(customers) > 50 and len(ids) > 200

    def deliver(items: list[Any]) -> None:
        for item in items:
            if item.topic == settings.topic_windows:
                friction.partial(item.value)
            else:
                deliver(friction.touches(partition_for(item.key, 2), [item.value]))

    validator = EventValidator(journey_map)
    validate: dict[str, Callable[[dict[str, Any]], Event]] = {
        "clicks": validator.click, "contacts": validator.contact, "feedback": validator.feedback,
    }  # fmt: skip
    for kind, event in events:
        topic = {"clicks": settings.topic_clicks, "contacts": settings.topic_contacts}.get(
            kind, settings.topic_feedback
        )
        key = event.get({"clicks": "session_id", "contacts": "contact_id"}.get(kind, ""), event["event_id"])
        deliver(friction.events(topic, partition_for(key.encode(), 2), [validate[kind](event)]))
    friction.reducer.max_wait = 0
    friction.tick()

    text = orjson.dumps(alerts).decode()
    assert len(alerts) > 100
    assert any(a["annotations"].get("examples") for a in alerts)  # examples do flow into alerts
    leaked = {customer for customer in customers if customer in text}
    assert not leaked, f"customer ids in alerts: {sorted(leaked)[:5]}"
    if keyed:  # then no session or contact id either: only their pseudonyms
        assert not {i for i in ids if i in text}
        assert re.search(r"p-[0-9a-f]{16}", text)


def _generate(directory: Path) -> list[tuple[str, dict[str, Any]]]:
    """(kind, event) of 20 minutes of generated traffic (malformed records left out)."""
    from processes import frictionwatch

    path = directory / "events.jsonl"
    frictionwatch("generate", "--output", str(path), "--duration", "20m", "--rate", "30", "--seed", "5", "--quiet")
    lines = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    return [(doc["topic"], doc["value"]) for doc in lines if isinstance(doc.get("value"), dict)]
