"""Incident shapes, one-metric kinds, partial incidents, late feedback, controls and random incidents."""

from __future__ import annotations

import itertools
import math
import statistics
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest

from frictionwatch.contract import EventValidator
from frictionwatch.generator import (
    CLICKS,
    CONTACTS,
    FEEDBACK,
    GeneratedRecord,
    GeneratorConfig,
    JsonLinesSink,
    ScenarioError,
    generate,
    incidents,
    run,
    write_ground_truth,
)
from frictionwatch.generator.curves import DAY, TrafficPattern
from frictionwatch.generator.draw import GAP_SECONDS
from frictionwatch.generator.scenario import Incident, parse_scenario
from frictionwatch.generator.volume import Volume
from frictionwatch.journeymap import JourneyMap, load_journey_map

MIDNIGHT = 1795478400.0  # 2026-11-24T00:00:00Z, a Tuesday
NOON = MIDNIGHT + 12 * 3600
MINUTE = 60.0

# Incidents and controls of the new kinds, on touchpoints that don't disturb each other's measurements.
SCENARIO = """\
version: 1
incidents:
  - name: help_ramp
    kind: dropoff
    journey: support
    step: help_centre
    start: 10m
    duration: 40m
    shape: linear_ramp
    factor: 0.1
  - name: ios_cart_errors
    kind: error_burst
    journey: purchase
    step: cart
    device: ios
    start: 10m
    duration: 40m
    error_rate: 0.5
  - name: phone_hangups
    kind: abandonment_spike
    channel: phone
    start: 20m
    duration: 30m
    factor: 8
  - name: late_scores
    kind: feedback_collapse
    journey: purchase
    step: confirmation
    survey: csat
    start: 10m
    duration: 10m
    severity: 0.6
    feedback_delay: [20m, 30m]
  - name: deep_links
    kind: campaign_mix
    journey: purchase
    step: product
    start: 10m
    duration: 20m
    share: 1.5
  - name: surge
    kind: traffic_surge
    start: 40m
    duration: 10m
    factor: 3
  - name: late_contacts
    kind: late_batch
    topic: contacts
    start: 30m
    duration: 2m
    delay: 5m
"""


@pytest.fixture(scope="module")
def journey_map() -> JourneyMap:
    return load_journey_map()


@pytest.fixture(scope="module")
def scenario_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("scenario") / "new-kinds.yml"
    path.write_text(SCENARIO)
    return path


@pytest.fixture(scope="module")
def hour(journey_map: JourneyMap, scenario_path: Path) -> list[GeneratedRecord]:
    """One hour from noon at 40 events/s with the scenario above."""
    return list(generate(journey_map, GeneratorConfig(seed=3, rate=40.0, duration=3600.0, start=NOON,
                                                      scenario=scenario_path)))  # fmt: skip


def during(ts: float, start_minute: float, end_minute: float) -> bool:
    return NOON + start_minute * MINUTE <= ts < NOON + end_minute * MINUTE


def visits(hour: list[GeneratedRecord]) -> dict[str, list[dict[str, Any]]]:
    """Each session's step events in order."""
    steps: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in hour:
        if record.kind == CLICKS and record.value["type"] == "step":
            steps[record.value["session_id"]].append(record.value)
    return steps


def moved_on(sessions: dict[str, list[dict[str, Any]]], here: str, there: str, keep: Any) -> list[bool]:
    """For each visit of ``here`` that ``keep(event)`` accepts: did the session go on to ``there`` next?"""
    outcomes = []
    for events in sessions.values():
        for event, following in zip(events, [*events[1:], None], strict=True):
            if event["step"] == here and keep(event) and event["ts"] < NOON + 3300:
                outcomes.append(following is not None and following["step"] == there)
    return outcomes


# -- shapes ----------------------------------------------------------------------------------


def test_strength_follows_the_shape() -> None:
    def incident(shape: str, kind: str = "dropoff") -> Incident:
        return Incident("x", kind, 100.0, 200.0, ("step_conversion",), "purchase", "landing", shape=shape)

    step, linear, triangle = incident("step"), incident("linear_ramp"), incident("triangular_ramp")
    assert [step.strength(t) for t in (99.0, 100.0, 150.0, 199.0, 200.0)] == [0.0, 1.0, 1.0, 1.0, 0.0]
    assert [linear.strength(t) for t in (100.0, 125.0, 150.0, 200.0)] == [0.0, 0.25, 0.5, 0.0]
    assert [triangle.strength(t) for t in (100.0, 125.0, 150.0, 175.0, 200.0)] == [0.0, 0.5, 1.0, 0.5, 0.0]
    drift = incident("step", "slow_drift")
    assert [drift.strength(t) for t in (100.0, 150.0, 200.0, 10_000.0)] == [0.0, 0.5, 1.0, 1.0], "drift stays"


def test_linear_ramp_grows_the_effect(hour: list[GeneratedRecord]) -> None:
    sessions = visits(hour)
    share = {
        phase: statistics.mean(moved_on(sessions, "help_centre", "article", lambda e, p=phase: during(e["ts"], *p)))
        for phase in ((0, 10), (10, 20), (40, 50))
    }
    before, early, late = share[(0, 10)], share[(10, 20)], share[(40, 50)]
    assert before == pytest.approx(0.7, abs=0.1)
    assert late < 0.35 < early, share  # x0.1 at full strength; a quarter of the way at most early on


# -- one metric alone, one device --------------------------------------------------------------


def test_device_error_burst_leaves_the_flow_alone(hour: list[GeneratedRecord]) -> None:
    visits_by: Counter[tuple[str, bool]] = Counter()
    errors_by: Counter[tuple[str, bool]] = Counter()
    for record in hour:
        event = record.value
        if record.kind == CLICKS and event["step"] == "cart" and event["type"] in ("step", "error"):
            key = (event.get("device", ""), during(record.ts, 10, 50))
            (visits_by if event["type"] == "step" else errors_by)[key] += 1
    ios_rate = errors_by[("ios", True)] / visits_by[("ios", True)]
    android_rate = errors_by[("android", True)] / visits_by[("android", True)]
    assert ios_rate > 0.35 and android_rate < 0.05, (ios_rate, android_rate)
    sessions = visits(hour)
    ios = moved_on(sessions, "cart", "checkout", lambda e: e.get("device") == "ios" and during(e["ts"], 10, 50))
    others = moved_on(sessions, "cart", "checkout", lambda e: e.get("device") != "ios" and during(e["ts"], 10, 50))
    assert statistics.mean(ios) == pytest.approx(statistics.mean(others), abs=0.12), "harmless errors: same flow"


def test_abandonment_spike_keeps_the_waits(hour: list[GeneratedRecord]) -> None:
    outcomes: dict[bool, Counter[str]] = {True: Counter(), False: Counter()}
    waits: dict[bool, list[float]] = {True: [], False: []}
    queued: dict[str, float] = {}
    for record in hour:
        event = record.value
        if record.kind != CONTACTS or event["channel"] != "phone":
            continue
        if event["type"] == "queued":
            queued[event["contact_id"]] = record.ts
        elif event["type"] in ("answered", "abandoned") and event["contact_id"] in queued:
            inside = during(queued[event["contact_id"]], 20, 50)
            outcomes[inside][event["type"]] += 1
            if event["type"] == "answered":
                waits[inside].append(event["wait_seconds"])
    ratio = {inside: counts["abandoned"] / sum(counts.values()) for inside, counts in outcomes.items()}
    assert ratio[True] > 2 * ratio[False], ratio
    assert statistics.median(waits[True]) == pytest.approx(statistics.median(waits[False]), abs=3.0)


def test_feedback_collapse_arrives_with_its_delay(hour: list[GeneratedRecord], journey_map: JourneyMap,
                                                  scenario_path: Path) -> None:  # fmt: skip
    scores: dict[str, list[int]] = defaultdict(list)
    for record in hour:
        event = record.value
        if record.kind == FEEDBACK and event.get("step") == "confirmation" and event["survey"] == "csat":
            arrival = (record.ts - NOON) / MINUTE
            scores["early" if arrival < 29 else "affected" if 31 <= arrival < 49 else "after" if arrival >= 51 else ""]\
                .append(event["score"])  # fmt: skip
    assert statistics.mean(scores["early"]) - statistics.mean(scores["affected"]) > 0.5, "answers 20-30 min late"
    assert statistics.mean(scores["after"]) - statistics.mean(scores["affected"]) > 0.5
    line = next(
        line for incident in incidents(journey_map, GeneratorConfig(start=NOON, scenario=scenario_path))
        for line in incident.ground_truth() if line["incident"] == "late_scores"
    )  # fmt: skip
    assert (line["start"], line["end"]) == (NOON + 600, NOON + 1200), "the visits whose answers are affected"
    assert (line["evidence_from"], line["evidence_until"]) == (NOON + 1800, NOON + 3000), "when those answers arrive"
    assert (line["survey"], line["metric"]) == ("csat", "csat")
    assert line["magnitude"] == pytest.approx((0.82 - 0.6) / 0.82, abs=1e-6)


# -- controls ------------------------------------------------------------------------------------


def test_traffic_surge_brings_volume_with_normal_ratios(hour: list[GeneratedRecord]) -> None:
    per_minute = Counter(int((record.ts - NOON) // MINUTE) for record in hour if record.kind == CLICKS)
    before = statistics.mean(per_minute[m] for m in range(34, 40))  # after the campaign's sessions are over
    inside = statistics.mean(per_minute[m] for m in range(45, 50))
    assert inside > 2 * before
    sessions = visits(hour)
    surge = moved_on(sessions, "landing", "search", lambda e: during(e["ts"], 40, 50))
    calm = moved_on(sessions, "landing", "search", lambda e: during(e["ts"], 0, 40))
    assert statistics.mean(surge) == pytest.approx(statistics.mean(calm), abs=0.05)
    answered: dict[bool, list[float]] = {True: [], False: []}
    for record in hour:
        if record.kind == CONTACTS and record.value["type"] == "answered" and record.value["channel"] == "chat":
            answered[during(record.ts, 42, 52)].append(record.value["wait_seconds"])
    assert statistics.mean(answered[True]) < 3 * statistics.mean(answered[False]) + 10, "staffed for the surge"


def test_campaign_mix_adds_deep_entries_with_normal_ratios(hour: list[GeneratedRecord]) -> None:
    sessions = visits(hour)
    entries = Counter(
        (events[0]["step"], during(events[0]["ts"], 10, 30))
        for events in sessions.values()
        if events[0]["journey"] == "purchase" and NOON + 600 <= events[0]["ts"] < NOON + 2400
    )
    # Minutes 10-30 against 30-40: 1.5 x the purchase sessions more enter at product (normally a few %).
    assert entries[("product", True)] / 20 > 5 * entries[("product", False)] / 10
    assert entries[("landing", True)] / 20 == pytest.approx(entries[("landing", False)] / 10, rel=0.25)
    campaign = moved_on(sessions, "product", "cart", lambda e: during(e["ts"], 10, 30))
    normal = moved_on(sessions, "product", "cart", lambda e: during(e["ts"], 30, 40))
    assert statistics.mean(campaign) == pytest.approx(statistics.mean(normal), abs=0.06)


def test_late_batch_arrives_together_after_its_delay(hour: list[GeneratedRecord]) -> None:
    positions = [index for index, record in enumerate(hour) if record.kind == CONTACTS and during(record.ts, 30, 32)]
    assert positions and positions == list(range(positions[0], positions[0] + len(positions))), "one batch"
    due = NOON + 37 * MINUTE  # 5 min after the window's end, between the records of that moment
    assert due - 5.0 < hour[positions[0] - 1].ts < due <= hour[positions[-1] + 1].ts
    clicks_in_window = [record for record in hour[: positions[0]] if during(record.ts, 30, 32)]
    assert clicks_in_window and all(record.kind != CONTACTS for record in clicks_in_window), "other topics on time"


def test_holiday_and_surge_reshape_the_volume_only() -> None:
    pattern = TrafficPattern()
    holiday = Incident("h", "holiday", MIDNIGHT, MIDNIGHT + DAY, ("*",), parameters=(("volume", 0.8),))
    surge = Incident("s", "traffic_surge", NOON, NOON + 600, ("*",), parameters=(("factor", 3.0),),
                     shape="linear_ramp")  # fmt: skip
    volume = Volume(pattern, (holiday, surge))
    morning = MIDNIGHT + 9 * 3600
    assert volume.level(morning) < 0.8 * pattern.level(morning), "a late, quieter morning"
    assert volume.level(MIDNIGHT - 3600) == pattern.level(MIDNIGHT - 3600)
    assert volume.multiplier(NOON + 300) == pytest.approx(0.8 * 2.0 * pattern.daily(NOON + 300 - 7200)
                                                          / pattern.daily(NOON + 300))  # fmt: skip
    assert volume.peak >= max(volume.level(MIDNIGHT + s) for s in range(0, 86400, 300))
    # A real night low: 04:30 is under a third of the mean level and a sixth of the evening peak.
    night, evening = MIDNIGHT + 4.5 * 3600, MIDNIGHT + 20.5 * 3600
    assert pattern.level(night) < 0.3 < 1.5 < pattern.level(evening)


# -- ground truth, random incidents ----------------------------------------------------------------


def test_controls_and_partial_incidents_in_the_ground_truth(journey_map: JourneyMap, scenario_path: Path,
                                                            tmp_path: Path) -> None:  # fmt: skip
    path = tmp_path / "truth.jsonl"
    write_ground_truth(incidents(journey_map, GeneratorConfig(start=NOON, scenario=scenario_path)), path)
    lines = {line["incident"]: line for line in map(orjson.loads, path.read_bytes().splitlines())}
    assert lines["surge"] == {"incident": "surge", "kind": "traffic_surge", "metric": "*", "start": NOON + 2400,
                              "end": NOON + 3000, "magnitude": 3.0, "shape": "step", "control": True}  # fmt: skip
    assert lines["late_contacts"]["delay"] == 300.0 and lines["late_contacts"]["topic"] == "contacts"
    assert (lines["deep_links"]["journey"], lines["deep_links"]["step"], lines["deep_links"]["control"]) == (
        "purchase", "product", True)  # fmt: skip
    ios = lines["ios_cart_errors"]
    assert (ios["channel"], ios["device"], ios["metric"], ios["control"]) == ("app", "ios", "errors", False)
    assert ios["magnitude"] == pytest.approx(0.5 / 0.01)
    assert lines["help_ramp"]["shape"] == "linear_ramp" and lines["help_ramp"]["magnitude"] == 0.1
    assert lines["phone_hangups"]["magnitude"] == 8.0


def test_random_incidents_are_seeded_spread_and_apart(journey_map: JourneyMap) -> None:
    config = GeneratorConfig(seed=9, rate=5.0, duration=3 * DAY, start=MIDNIGHT, random_incidents=120,
                             random_controls=5)  # fmt: skip
    drawn = incidents(journey_map, config)
    assert [i.name for i in drawn] == [i.name for i in incidents(journey_map, config)], "the seed decides"
    assert drawn != incidents(journey_map, GeneratorConfig(**{**config.__dict__, "seed": 10}))
    faults = [incident for incident in drawn if not incident.control]
    controls = [incident for incident in drawn if incident.control]
    assert len(faults) == 120 and {c.kind for c in controls} == {"traffic_surge", "late_batch", "campaign_mix",
                                                                 "holiday", "slow_drift"}  # fmt: skip
    assert len({i.kind for i in faults}) == 7 and len({i.shape for i in faults}) == 3
    assert any(i.device for i in faults) and any(i.channel and i.journey and not i.device for i in faults)
    assert all(300 <= i.end - i.start <= 3600 for i in faults)
    hours = Counter(int((i.start % DAY) // 3600) for i in faults)
    assert sum(hours[h] for h in range(0, 6)) >= 10, "night incidents too"
    changes = [abs(math.log(m)) for i in faults for _, m in i.magnitudes]
    assert min(changes) < 0.1 and max(changes) > 2.0, "tiny to huge"
    by_place: dict[tuple[str | None, ...], list[Incident]] = defaultdict(list)
    for incident in drawn:
        if incident.journey or incident.queues:
            by_place[(incident.journey, incident.step, incident.channel if incident.queues else None,
                      *incident.queues)].append(incident)  # fmt: skip
    for placed in by_place.values():
        placed.sort(key=lambda incident: incident.start)
        assert all(b.start >= a.end + GAP_SECONDS for a, b in itertools.pairwise(placed))
    with pytest.raises(ValueError, match="could not fit 5000 random incidents"):
        incidents(journey_map, GeneratorConfig(start=MIDNIGHT, duration=DAY, random_incidents=5000))


def test_random_incidents_change_the_traffic_and_pass_the_contract(journey_map: JourneyMap, tmp_path: Path) -> None:
    config = GeneratorConfig(seed=4, rate=3.0, duration=6 * 3600, start=MIDNIGHT, random_incidents=12,
                             random_controls=3)  # fmt: skip
    summary = run(journey_map, config, JsonLinesSink(tmp_path / "events.jsonl"))
    assert len({i.name for i in summary.incidents}) == 15
    validator = EventValidator(journey_map)
    kinds = {CLICKS: validator.click, CONTACTS: validator.contact, FEEDBACK: validator.feedback}
    for line in (tmp_path / "events.jsonl").read_bytes().splitlines():
        item = orjson.loads(line)
        kinds[item["topic"]](item["value"], None)
    plain = GeneratorConfig(seed=4, rate=3.0, duration=6 * 3600, start=MIDNIGHT)
    assert summary.events != run(journey_map, plain, JsonLinesSink(tmp_path / "plain.jsonl")).events


@pytest.mark.parametrize(
    ("incident", "field", "message"),
    [
        ("kind: dropoff\n    journey: purchase\n    step: cart\n    shape: wave", "shape", "'wave' is not one of"),
        ("kind: error_burst\n    journey: purchase\n    step: cart\n    device: store_tablet", "device",
         "no device 'store_tablet'"),
        ("kind: error_burst\n    journey: purchase\n    step: cart\n    channel: web\n    device: ios", "device",
         "on web has no device 'ios'"),
        ("kind: holiday\n    shape: step", "shape", "not a field of holiday"),
        ("kind: late_batch\n    topic: orders", "topic", "'orders' is not one of: clicks, contacts, feedback"),
        ("kind: late_batch\n    delay: 2d", "delay", "must be between 1 s and 86400 s"),
        ("kind: feedback_collapse\n    channel: phone\n    feedback_delay: [1h, 10m]", "feedback_delay",
         "backwards"),
        ("kind: abandonment_spike\n    channel: phone\n    factor: 0.5", "factor", "between 1 and 1000"),
        ("kind: campaign_mix\n    channel: phone", "journey", "missing"),
    ],
)  # fmt: skip
def test_scenario_errors_of_the_new_fields(journey_map: JourneyMap, incident: str, field: str, message: str) -> None:
    text = f"version: 1\nincidents:\n  - start: 1h\n    duration: 10m\n    {incident}\n"
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, journey_map)
    assert any(problem.field.endswith(field) and message in problem.message for problem in caught.value.problems), (
        caught.value
    )


def test_baseline_feedback_delay(journey_map: JourneyMap, tmp_path: Path) -> None:
    path = tmp_path / "late.yml"
    path.write_text("version: 1\nbaseline:\n  feedback_delay: [30m, 40m]\n")
    records = list(generate(journey_map, GeneratorConfig(seed=2, rate=20.0, duration=1800.0, start=NOON,
                                                         scenario=path)))  # fmt: skip
    answers = [record.ts for record in records if record.kind == FEEDBACK]
    # The simulation warms up from 10 minutes before the start: no answer can come before minute 20.
    assert answers and min(answers) >= NOON + 20 * MINUTE
    plain = list(generate(journey_map, GeneratorConfig(seed=2, rate=20.0, duration=1800.0, start=NOON)))
    assert min(record.ts for record in plain if record.kind == FEEDBACK) < NOON + MINUTE


REPOSITORY = Path(__file__).resolve().parent.parent


def test_shipped_scenario_of_every_shape_is_valid(journey_map: JourneyMap) -> None:
    path = REPOSITORY / "frictionwatch" / "generator" / "scenarios" / "shapes-and-controls.yml"
    placed = incidents(journey_map, GeneratorConfig(start=MIDNIGHT, duration=DAY, scenario=path))
    assert {i.shape for i in placed} == {"step", "linear_ramp", "triangular_ramp"}
    assert {i.kind for i in placed if i.control} == {"traffic_surge", "campaign_mix", "late_batch", "slow_drift"}


def test_benchmark_telco_map_passes_check_config_and_generates(capsys: pytest.CaptureFixture[str]) -> None:
    from frictionwatch.cli import main

    path = REPOSITORY / "bench" / "maps" / "telco.yml"
    assert main(["check-config", "--journey-map", str(path)]) == 0
    assert "journey map" in capsys.readouterr().out
    telco = load_journey_map(path)
    config = GeneratorConfig(seed=1, rate=20.0, duration=1800.0, start=NOON, random_incidents=3)
    records = list(generate(telco, config))
    validator = EventValidator(telco)
    kinds = {CLICKS: validator.click, CONTACTS: validator.contact, FEEDBACK: validator.feedback}
    for record in records:
        kinds[record.kind](record.value, None)
    queues = {(r.value["channel"], r.value["queue"]) for r in records if r.kind == CONTACTS}
    assert ("email", "complaints") in queues and len(queues) >= 6


def test_slow_drift_stays_and_understaffing_ramps(journey_map: JourneyMap, tmp_path: Path) -> None:
    path = tmp_path / "drift.yml"
    path.write_text(
        "version: 1\nincidents:\n"
        "  - {name: drift, kind: slow_drift, journey: purchase, step: landing, start: 0, duration: 20m, factor: 0.3}\n"
        "  - {name: ramp, kind: understaffed, channel: phone, start: 10m, duration: 30m, shape: linear_ramp,"
        " factor: 6}\n"
    )
    config = GeneratorConfig(seed=5, rate=40.0, duration=2400.0, start=NOON, scenario=path)
    records = list(generate(journey_map, config))
    sessions = visits(records)
    start = moved_on(sessions, "landing", "search", lambda e: during(e["ts"], 0, 3))
    after = moved_on(sessions, "landing", "search", lambda e: during(e["ts"], 22, 40))
    assert statistics.mean(start) > 0.55 and statistics.mean(after) < 0.3, "the drifted level stays after its end"
    waits: dict[str, list[float]] = defaultdict(list)
    for record in records:
        event = record.value
        if record.kind == CONTACTS and event["channel"] == "phone" and event["type"] in ("answered", "abandoned"):
            phase = "early" if during(record.ts, 10, 20) else "late" if during(record.ts, 30, 40) else ""
            waits[phase].append(event["wait_seconds"])
    assert statistics.mean(waits["late"]) > 2 * statistics.mean(waits["early"]) + 5, "waits grow with the ramp"


def test_random_incidents_need_a_duration() -> None:
    with pytest.raises(ValueError, match="--random-incidents needs --duration"):
        GeneratorConfig(count=100, duration=None, random_incidents=3)
    with pytest.raises(ValueError, match="--random-controls must be a whole number"):
        GeneratorConfig(random_controls=-1)
