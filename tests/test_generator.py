"""The traffic generator: valid, deterministic, realistic traffic with measurable incidents."""

from __future__ import annotations

import base64
import io
import itertools
import statistics
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest

from frictionwatch.contract import EventValidator, InvalidEvent
from frictionwatch.generator import (
    CLICKS,
    CONTACTS,
    FEEDBACK,
    GeneratedRecord,
    GeneratorConfig,
    JsonLinesSink,
    KafkaSink,
    MalformedKind,
    ScenarioError,
    Summary,
    generate,
    incidents,
    load_scenario,
    run,
    write_ground_truth,
)
from frictionwatch.generator.scenario import parse_scenario
from frictionwatch.journeymap import JourneyMap, load_journey_map, parse_journey_map
from frictionwatch.partitioning import partition_for

MIDNIGHT = 1795478400.0  # 2026-11-24T00:00:00Z, a Tuesday
NOON = MIDNIGHT + 12 * 3600
EXAMPLE_SCENARIO = Path(__file__).parent.parent / "frictionwatch" / "generator" / "scenarios" / "incidents.yml"
VALIDATE = {CLICKS: "click", CONTACTS: "contact", FEEDBACK: "feedback"}

# Every incident kind, each in its own window of a one-hour run starting at noon.
TEST_SCENARIO = """\
version: 1
incidents:
  - name: payment_down
    kind: step_outage
    journey: purchase
    step: payment
    start: 10m
    duration: 15m
  - name: chat_orders_short
    kind: understaffed
    channel: chat
    queue: orders
    start: 30m
    duration: 15m
    factor: 3
  - name: slow_search
    kind: slow_page
    journey: purchase
    step: search
    start: 20m
    duration: 15m
    factor: 4
  - name: cart_errors
    kind: error_burst
    journey: purchase
    step: cart
    start: 40m
    duration: 10m
    error_rate: 0.3
  - name: unhappy_confirmation
    kind: feedback_collapse
    journey: purchase
    step: confirmation
    start: 30m
    duration: 30m
"""

# A map the generator has never heard of: unknown names, a goal before the last step, a new channel.
OTHER_MAP = """\
version: 1
journeys:
  onboarding:
    steps:
      - {name: welcome, stage: awareness, channels: [web, smart_tv]}
      - {name: profile, stage: consideration, channels: [web]}
      - {name: verify, stage: purchase, channels: [web, whatsapp], surveys: [ces]}
      - {name: done, stage: retention, channels: [web], goal: true, surveys: [csat]}
      - {name: refer, stage: advocacy, channels: [web]}
contact_centre:
  whatsapp:
    queues: [sales, accounts]
    surveys: [nps]
"""


@pytest.fixture(scope="module")
def journey_map() -> JourneyMap:
    return load_journey_map()


@pytest.fixture(scope="module")
def scenario_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("scenario") / "incidents.yml"
    path.write_text(TEST_SCENARIO)
    return path


@pytest.fixture(scope="module")
def hour(journey_map: JourneyMap, scenario_path: Path) -> list[GeneratedRecord]:
    """One hour from noon at 60 events/s with every kind of incident (about 250,000 events)."""
    config = GeneratorConfig(seed=2, rate=60.0, duration=3600.0, start=NOON, scenario=scenario_path)
    return list(generate(journey_map, config))


def validate(validator: EventValidator, record: GeneratedRecord, now: float | None = None) -> Any:
    return getattr(validator, VALIDATE[record.kind])(record.value, now)


def jsonl(journey_map: JourneyMap, config: GeneratorConfig) -> bytes:
    stream = io.BytesIO()
    run(journey_map, config, JsonLinesSink(stream))
    return stream.getvalue()


def steps_by_session(records: list[GeneratedRecord]) -> dict[str, list[tuple[float, str]]]:
    steps: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for record in records:
        if record.kind == CLICKS and record.value["type"] == "step":
            steps[record.value["session_id"]].append((record.ts, f"{record.value['journey']}/{record.value['step']}"))
    return steps


# -- valid events -------------------------------------------------------------------------


def test_every_generated_event_passes_the_contract(journey_map: JourneyMap, scenario_path: Path) -> None:
    config = GeneratorConfig(seed=5, rate=5.0, count=5000, start=NOON, scenario=scenario_path)
    records = list(generate(journey_map, config))
    validator = EventValidator(journey_map)
    for record in records:
        event = validate(validator, record)
        assert record.malformed is None and record.raw is None
        assert record.value["schema"] == 1 and record.value["ts"] == round(record.ts, 3)
        expected_key = {CLICKS: getattr(event, "session_id", None), CONTACTS: getattr(event, "contact_id", None)}
        assert record.key == expected_key.get(record.kind, event.customer_id or event.event_id)
    assert {record.kind for record in records} == {CLICKS, CONTACTS, FEEDBACK}
    assert len({record.value["event_id"] for record in records}) == len(records)
    assert all(a.ts <= b.ts for a, b in itertools.pairwise(records))
    assert records[0].ts >= NOON and records[-1].ts < NOON + 3600


def test_any_journey_map_works() -> None:
    other = parse_journey_map(OTHER_MAP)
    records = list(generate(other, GeneratorConfig(seed=3, rate=40.0, duration=1800.0, start=NOON)))
    validator = EventValidator(other)
    for record in records:
        validate(validator, record)
    seen = Counter((record.value.get("step") or record.value.get("queue"), record.kind) for record in records)
    assert seen[("refer", CLICKS)] > 0, "steps after a goal still see traffic"
    assert any(queue in ("sales", "accounts") for queue, kind in seen if kind == CONTACTS)
    assert any(record.value.get("channel") == "smart_tv" for record in records)


def test_sessions_behave_like_people(hour: list[GeneratedRecord]) -> None:
    clicks = [record.value for record in hour if record.kind == CLICKS]
    types = Counter(event["type"] for event in clicks)
    assert types["click"] > types["step"] > types["exit"] > types["error"] > 0
    devices = Counter(event.get("device") for event in clicks if event["channel"] == "app")
    assert set(devices) == {"ios", "android"}
    by_session: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in clicks:
        by_session[event["session_id"]].append(event)
    rage = 0
    for events in by_session.values():
        targets = [(event["ts"], event.get("target")) for event in events if event["type"] == "click"]
        rage += any(
            targets[i][1] == targets[i + 2][1] and targets[i + 2][0] - targets[i][0] < 1.0
            for i in range(len(targets) - 2)
        )
    assert 0.005 < rage / len(by_session) < 0.1
    customers = Counter(event.get("customer_id") for event in clicks if event["type"] == "step")
    assert 0.4 < 1 - customers[None] / sum(customers.values()) < 0.8
    assert any(count > 10 for customer, count in customers.items() if customer), "customers come back"


def test_contacts_follow_their_lifecycle(hour: list[GeneratedRecord]) -> None:
    lives: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in hour:
        if record.kind == CONTACTS:
            lives[record.value["contact_id"]].append(record.value)
    lifecycles = (("queued", "answered", "resolved"), ("queued", "answered", "transferred"), ("queued", "abandoned"))
    # Contacts queued before the run start or still open at its end show part of their lifecycle.
    parts = {life[start:end] for life in lifecycles for start in range(3) for end in range(start + 1, len(life) + 1)}
    paths = Counter(tuple(event["type"] for event in events) for events in lives.values())
    assert set(paths) <= parts
    assert sum(count for path, count in paths.items() if path in lifecycles) > 0.6 * sum(paths.values())
    waits = [event for events in lives.values() for event in events if event["type"] in ("answered", "abandoned")]
    assert all("wait_seconds" in event for event in waits)
    assert any(event["type"] == "abandoned" and event["wait_seconds"] < 5 for event in waits), "short abandons"
    linked = [events[0] for events in lives.values() if events[0].get("session_id")]
    assert len(linked) > 100, "contacts from stalled sessions carry the session"
    channels_of: dict[str, set[str]] = defaultdict(set)
    for events in lives.values():
        if events[0]["type"] == "queued" and events[0].get("customer_id"):
            channels_of[events[0]["customer_id"]].add(events[0]["channel"])
    assert any(len(channels) > 1 for channels in channels_of.values()), "repeat contacts switch channels"


def test_feedback_is_worse_after_friction(hour: list[GeneratedRecord]) -> None:
    records = [record for record in hour if record.ts < NOON + 1800]  # before the feedback collapse
    frustrated = {
        record.value["session_id"]
        for record in records
        if record.kind == CLICKS and record.value["type"] == "error" and record.value.get("customer_id")
    }
    customers_with_errors = {
        record.value["customer_id"] for record in records if record.value.get("session_id") in frustrated
    }
    scores: dict[bool, list[int]] = {True: [], False: []}
    for record in records:
        if record.kind == FEEDBACK and record.value["survey"] == "csat" and record.value.get("step"):
            scores[record.value.get("customer_id") in customers_with_errors].append(record.value["score"])
    assert statistics.mean(scores[False]) - statistics.mean(scores[True]) > 0.5


# -- determinism ----------------------------------------------------------------------


def test_same_seed_same_bytes_other_seed_other_bytes(journey_map: JourneyMap, scenario_path: Path) -> None:
    config = GeneratorConfig(seed=4, rate=20.0, count=3000, start=NOON, malformed_rate=0.05, scenario=scenario_path)
    first, again = jsonl(journey_map, config), jsonl(journey_map, config)
    assert first == again and first.count(b"\n") == 3000
    other = jsonl(journey_map, GeneratorConfig(seed=5, rate=20.0, count=3000, start=NOON, malformed_rate=0.05))
    assert other != first


def test_malformed_records_leave_the_traffic_unchanged(journey_map: JourneyMap) -> None:
    clean = list(generate(journey_map, GeneratorConfig(seed=6, rate=20.0, count=2000, start=NOON)))
    dirty = list(generate(journey_map, GeneratorConfig(seed=6, rate=20.0, count=2000, start=NOON, malformed_rate=0.3)))
    assert [record.ts for record in clean] == [record.ts for record in dirty]


# -- volume over time -------------------------------------------------------------------


def test_daily_curve_and_mean_rate(journey_map: JourneyMap) -> None:
    config = GeneratorConfig(seed=1, rate=2.0, duration=86400.0, start=MIDNIGHT)
    per_hour = Counter(int((record.ts - MIDNIGHT) // 3600) for record in generate(journey_map, config))
    assert per_hour[20] > 4 * per_hour[4], per_hour
    assert per_hour[13] > 2 * per_hour[4]
    assert sum(per_hour.values()) / 86400 == pytest.approx(2.0, rel=0.1)


def test_flat_pattern_honours_the_rate(journey_map: JourneyMap) -> None:
    config = GeneratorConfig(seed=1, rate=30.0, duration=1800.0, start=MIDNIGHT, daily_pattern=False)
    assert sum(1 for _ in generate(journey_map, config)) / 1800 == pytest.approx(30.0, rel=0.1)


def test_flat_traffic_does_not_depend_on_the_time_of_day(journey_map: JourneyMap) -> None:
    # Tests and benchmarks run flat traffic at whatever time the clock says: the contact centre's
    # lunch break (about 13:00 UTC) must not make its queues abandon more than at 09:00.
    def contacts(start: float) -> list[tuple[Any, ...]]:
        config = GeneratorConfig(seed=3, rate=30.0, duration=1800.0, start=start, daily_pattern=False)
        records = [r for r in generate(journey_map, config) if r.kind == CONTACTS and r.value]
        return [(r.value["type"], r.value["queue"], round(r.ts - start, 3)) for r in records]

    morning, lunch = contacts(MIDNIGHT + 9 * 3600), contacts(MIDNIGHT + 12.75 * 3600)
    assert any(kind == "abandoned" for kind, _, _ in morning)
    assert lunch == morning


def test_count_mode_stops_at_exactly_n(journey_map: JourneyMap) -> None:
    config = GeneratorConfig(seed=1, rate=20.0, duration=None, count=1234, malformed_rate=0.1)
    records = list(generate(journey_map, config))
    assert len(records) == 1234
    summary = run(journey_map, config, JsonLinesSink(io.BytesIO()))
    assert summary.total == 1234
    start = config.pinned().start
    assert start is not None and records[-1].ts < start + 3600, "the default start ends the span near now"


# -- journeys and incidents ---------------------------------------------------------------


def test_continuation_probabilities_are_honoured(hour: list[GeneratedRecord], journey_map: JourneyMap) -> None:
    sessions = steps_by_session(hour).values()
    expected = {("landing", "search"): 0.7, ("product", "cart"): 0.6, ("checkout", "payment"): 0.86}
    for (here, there), probability in expected.items():
        # Sessions at `here` in the first ten minutes, before any incident, followed to the end of the run.
        early = [
            session for session in sessions if any(s == f"purchase/{here}" and ts < NOON + 600 for ts, s in session)
        ]
        share = sum(any(step == f"purchase/{there}" for _, step in session) for session in early) / len(early)
        assert share == pytest.approx(probability, abs=0.05), (here, there)


def test_step_outage_lowers_conversion(hour: list[GeneratedRecord]) -> None:
    inside: list[bool] = []
    outside: list[bool] = []
    for session in steps_by_session(hour).values():
        paid = [ts for ts, step in session if step == "purchase/payment"]
        if not paid or paid[0] > NOON + 3300:
            continue
        converted = any(step == "purchase/confirmation" for _, step in session)
        (inside if NOON + 600 <= paid[0] < NOON + 1500 else outside).append(converted)
    assert statistics.mean(inside) < 0.3 < 0.8 < statistics.mean(outside)


def test_understaffed_queue_waits_and_abandons_more(hour: list[GeneratedRecord]) -> None:
    answered: dict[bool, list[float]] = {True: [], False: []}
    outcomes: dict[bool, Counter[str]] = {True: Counter(), False: Counter()}
    queued_at: dict[str, float] = {}
    for record in hour:
        event = record.value
        if record.kind != CONTACTS or (event["channel"], event["queue"]) != ("chat", "orders"):
            continue
        if event["type"] == "queued":
            queued_at[event["contact_id"]] = record.ts
        elif event["type"] in ("answered", "abandoned") and event["contact_id"] in queued_at:
            during = NOON + 1800 <= queued_at[event["contact_id"]] < NOON + 2700
            outcomes[during][event["type"]] += 1
            if event["type"] == "answered":
                answered[during].append(event["wait_seconds"])
    assert statistics.mean(answered[True]) > 3 * statistics.mean(answered[False])
    ratio = {during: counts["abandoned"] / sum(counts.values()) for during, counts in outcomes.items()}
    assert ratio[True] > 0.3 > 0.1 > ratio[False]


def test_slow_page_and_error_burst(hour: list[GeneratedRecord]) -> None:
    dwell: dict[bool, list[float]] = {True: [], False: []}
    for session in steps_by_session(hour).values():
        for (ts, step), (next_ts, _) in itertools.pairwise(session):
            if step == "purchase/search":
                dwell[NOON + 1200 <= ts < NOON + 2100].append(next_ts - ts)
    assert statistics.median(dwell[True]) > 2.5 * statistics.median(dwell[False])
    errors = Counter(
        NOON + 2400 <= record.ts < NOON + 3000
        for record in hour
        if record.kind == CLICKS and record.value["type"] == "error" and record.value["step"] == "cart"
    )
    assert errors[True] > 5 * errors[False] * (10 / 50), "errors per minute jump during the burst"


def test_feedback_collapse_lowers_scores(hour: list[GeneratedRecord]) -> None:
    scores: dict[bool, list[int]] = {True: [], False: []}
    for record in hour:
        if record.kind == FEEDBACK and record.value.get("step") == "confirmation" and record.value["survey"] == "csat":
            scores[record.ts >= NOON + 1800].append(record.value["score"])
    assert statistics.mean(scores[False]) - statistics.mean(scores[True]) > 1.0


# -- scenarios and ground truth ------------------------------------------------------------


def test_ground_truth_of_incidents(journey_map: JourneyMap, scenario_path: Path, tmp_path: Path) -> None:
    config = GeneratorConfig(start=NOON, scenario=scenario_path)
    found = {incident.name: incident for incident in incidents(journey_map, config)}
    assert found["payment_down"].start == NOON + 600 and found["payment_down"].end == NOON + 1500
    path = tmp_path / "truth.jsonl"
    write_ground_truth(found.values(), path)
    lines = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert {
        "incident": "payment_down",
        "kind": "step_outage",
        "journey": "purchase",
        "step": "payment",
        "metric": "step_conversion",
        "start": NOON + 600,
        "end": NOON + 1500,
        "magnitude": pytest.approx(0.1 / 0.9, abs=1e-6),  # continuation 0.1 where 0.9 of the sessions move on
        "shape": "step",
        "control": False,
    } in lines
    assert {(line["incident"], line["metric"]) for line in lines} >= {
        ("chat_orders_short", "wait_seconds"),
        ("chat_orders_short", "abandonment_ratio"),
        ("slow_search", "dwell_seconds"),
        ("cart_errors", "errors"),
        ("unhappy_confirmation", "csat"),
        ("unhappy_confirmation", "nps"),
    }
    understaffed = next(line for line in lines if line["incident"] == "chat_orders_short")
    assert (understaffed["channel"], understaffed["queue"]) == ("chat", "orders") and "journey" not in understaffed
    short = GeneratorConfig(start=NOON, rate=1.0, duration=1200.0, scenario=scenario_path)
    clipped = incidents(journey_map, short)
    assert [(i.name, i.start, i.end) for i in clipped] == [("payment_down", NOON + 600, NOON + 1200)]
    summary = run(journey_map, short, JsonLinesSink(tmp_path / "x"))
    assert summary.incidents == clipped
    counted = GeneratorConfig(start=NOON, rate=1.0, count=10, scenario=scenario_path)
    assert run(journey_map, counted, JsonLinesSink(tmp_path / "y")).incidents == [], "10 events end before 10m"


def test_scenario_forms(journey_map: JourneyMap) -> None:
    scenario = parse_scenario(
        """\
version: 1
baseline:
  journeys:
    purchase: {weight: 2, continuation: {landing: 0.5}}
incidents:
  - kind: understaffed
    channel: phone
    start: "2026-11-24T18:00:00Z"
    duration: 1h
  - kind: feedback_collapse
    channel: chat
    queue: technical
    survey: ces
    start: 0
    duration: 90s
""",
        journey_map,
    )
    phone, chat = scenario.resolve(NOON)
    assert (phone.name, phone.start, phone.end) == ("understaffed-1", MIDNIGHT + 18 * 3600, MIDNIGHT + 19 * 3600)
    assert phone.queues == ("billing", "orders", "technical") and len(phone.ground_truth()) == 6
    assert (chat.start, chat.end, chat.metrics) == (NOON, NOON + 90, ("ces",))
    assert scenario.baseline.continuation_for("purchase", "landing") == 0.5
    assert load_scenario(EXAMPLE_SCENARIO, journey_map).specs, "the shipped example is valid"


def test_scenario_errors_name_file_line_and_field(journey_map: JourneyMap, tmp_path: Path) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(
        """\
version: 1
incidents:
  - name: a
    kind: step_outage
    journey: purchase
    step: basket
    start: 1h
    duration: 10m
  - kind: understaffed
    channel: phone
    queue: vip
    start: soon
    duration: 10m
  - kind: meltdown
    start: 0
    duration: 1m
  - kind: slow_page
    journey: returns
    step: label
    start: 1h
    duration: -5m
    speed: 2
"""
    )
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path, journey_map)
    problems = {(problem.line, problem.field) for problem in caught.value.problems}
    assert problems == {
        (6, "incidents[0].step"),
        (11, "incidents[1].queue"),
        (12, "incidents[1].start"),
        (14, "incidents[2].kind"),
        (18, "incidents[3].journey"),
        (21, "incidents[3].duration"),
        (22, "incidents[3].speed"),
    }
    assert f"{path}:6: incidents[0].step: journey 'purchase' has no step 'basket'" in str(caught.value)
    with pytest.raises(ScenarioError, match="unknown field"):
        generate(journey_map, GeneratorConfig(start=NOON, scenario=_write(tmp_path / "u.yml", "version: 1\nx: 1\n")))


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"rate": 0}, "--rate must be > 0"),
        ({"duration": -1.0}, "--duration must be > 0"),
        ({"duration": None}, "give --duration or --count"),
        ({"count": 0}, "--count must be"),
        ({"malformed_rate": 1.0}, "--malformed-rate must be"),
        ({"time_mode": "fast"}, "--time-mode must be one of"),
        ({"start": float("nan")}, "--start must be"),
        ({"seed": 1.5}, "--seed must be"),
    ],
)
def test_config_errors_name_the_option(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GeneratorConfig(**options)


# -- malformed records ----------------------------------------------------------------------


def rejected(validator: EventValidator, kind: str, data: bytes, now: float) -> bool:
    """Whether the worker would reject this record value (each array element judged alone)."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return True
    elements = value if isinstance(value, list) else [value]
    if not elements:
        return True
    assert len(elements) == 1, "one malformed record must be one dead letter"
    if not isinstance(elements[0], dict):
        return True
    try:
        getattr(validator, VALIDATE[kind])(elements[0], now)
    except InvalidEvent:
        return True
    return False


def test_malformed_records_are_rejected_and_counted(journey_map: JourneyMap) -> None:
    config = GeneratorConfig(seed=8, rate=20.0, count=20000, start=NOON, malformed_rate=0.3)
    stream = io.BytesIO()
    summary = run(journey_map, config, JsonLinesSink(stream))
    validator = EventValidator(journey_map)
    seen: Counter[str] = Counter()
    for line in stream.getvalue().splitlines():
        item = orjson.loads(line)
        data = orjson.dumps(item["value"]) if "value" in item else base64.b64decode(item["value_b64"])
        now = NOON + 3600.0  # the worker's clock: milliseconds as seconds are far in its future
        if rejected(validator, item["topic"], data, now):
            seen[item["topic"]] += 1
    assert seen == Counter({kind: count for kind, count in summary.malformed.items() if count})
    assert sum(summary.malformed.values()) == pytest.approx(6000, rel=0.1)
    assert summary.total == 20000 == sum(summary.records.values())
    kinds = {kind for by_kind in summary.malformed_kinds.values() for kind in by_kind}
    assert kinds == set(MalformedKind)
    assert set(summary.malformed_kinds[CLICKS]) <= set(MalformedKind) - {"negative_wait", "score_out_of_range"}
    for topic, by_kind in summary.malformed_kinds.items():
        assert sum(by_kind.values()) == summary.malformed[topic]
    assert orjson.loads(summary.to_json())["malformed"] == summary.malformed


# -- Kafka ------------------------------------------------------------------------------------


class FakeProducer:
    """Records produce() calls; raises BufferError now and then like a full librdkafka queue."""

    def __init__(self, full_every: int = 0) -> None:
        self.records: list[tuple[str, bytes, bytes | None, int]] = []
        self.full_every = full_every
        self.calls = 0
        self.polls = 0
        self.flushed = False

    def produce(self, topic: str, value: bytes | None = None, key: bytes | None = None, partition: int = -1) -> None:
        self.calls += 1
        if self.full_every and self.calls % self.full_every == 0:
            raise BufferError("Local: Queue full")
        assert value is not None
        self.records.append((topic, value, key, partition))

    def poll(self, timeout: float = -1) -> int:
        self.polls += 1
        return 0

    def flush(self, timeout: float = -1) -> int:
        self.flushed = True
        return 0


TOPICS = {CLICKS: "journey.clicks", CONTACTS: "journey.contacts", FEEDBACK: "journey.feedback"}
PARTITIONS = {CLICKS: 6, CONTACTS: 4, FEEDBACK: 3}
KEY_FIELD = {"journey.clicks": "session_id", "journey.contacts": "contact_id"}


def feedback_key(event: dict[str, Any]) -> str:
    return str(event.get("customer_id") or event["event_id"])


def test_batches_pack_events_per_partition(journey_map: JourneyMap) -> None:
    producer = FakeProducer(full_every=97)
    sink = KafkaSink(producer, TOPICS, PARTITIONS, batch=20)
    config = GeneratorConfig(seed=3, rate=30.0, count=6000, start=NOON, malformed_rate=0.02)
    summary = run(journey_map, config, sink)
    arrays = 0
    for topic, value, key, partition in producer.records:
        decoded = orjson.loads(value) if value.startswith(b"[{") else None
        if decoded is None:
            assert partition == -1, "single records are placed by the producer's partitioner"
            continue
        arrays += 1
        count = PARTITIONS[next(kind for kind, name in TOPICS.items() if name == topic)]
        keys = [e[KEY_FIELD[topic]] if topic in KEY_FIELD else feedback_key(e) for e in decoded]
        assert key == keys[0].encode() and 1 <= len(decoded) <= 20
        assert {partition_for(k.encode(), count) for k in keys} == {partition}
    assert arrays > 100 and producer.flushed and producer.polls > 0
    assert sink.events == summary.events and sink.records == summary.records
    assert sum(summary.records.values()) == len(producer.records)
    assert sum(summary.events.values()) + sum(summary.malformed.values()) == 6000


def test_batch_of_one_is_one_keyed_record_per_event(journey_map: JourneyMap) -> None:
    producer = FakeProducer()
    summary = run(
        journey_map, GeneratorConfig(seed=3, rate=10.0, count=500, start=NOON), KafkaSink(producer, TOPICS, PARTITIONS)
    )
    assert len(producer.records) == 500 == sum(summary.records.values())
    for topic, value, key, partition in producer.records:
        event = orjson.loads(value)
        assert (
            partition == -1 and key == (event[KEY_FIELD[topic]] if topic in KEY_FIELD else feedback_key(event)).encode()
        )


def test_batches_linger_only_briefly() -> None:
    now = [0.0]
    producer = FakeProducer()
    sink = KafkaSink(producer, TOPICS, PARTITIONS, batch=100, linger=0.05, clock=lambda: now[0])
    event = {"schema": 1, "event_id": "e1", "ts": NOON, "session_id": "s-1"}
    sink.write(GeneratedRecord(CLICKS, "s-1", event, None, None, NOON))
    assert producer.records == []
    now[0] = 0.06
    sink.idle()
    assert len(producer.records) == 1 and orjson.loads(producer.records[0][1]) == [event]


def test_kafka_sink_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="--batch"):
        KafkaSink(FakeProducer(), TOPICS, PARTITIONS, batch=0)
    with pytest.raises(ValueError, match="partition count"):
        KafkaSink(FakeProducer(), TOPICS, {**PARTITIONS, CLICKS: 0})


# -- wall-clock mode ---------------------------------------------------------------------------


def test_wall_mode_releases_events_at_their_time(journey_map: JourneyMap) -> None:
    clock = [NOON]
    released: list[tuple[float, float]] = []

    class Recorder(JsonLinesSink):
        def write(self, record: GeneratedRecord) -> None:
            released.append((clock[0], record.ts))
            super().write(record)

    def sleep(seconds: float) -> None:
        clock[0] += seconds

    config = GeneratorConfig(seed=1, rate=20.0, duration=30.0, time_mode="wall")
    summary = run(journey_map, config, Recorder(io.BytesIO()), clock=lambda: clock[0], sleep=sleep)
    assert summary.first_ts is not None and summary.first_ts >= NOON
    assert released and all(wall >= ts - 0.01 for wall, ts in released)
    assert clock[0] == pytest.approx(NOON + 30, abs=2.0)


def test_summary_to_json() -> None:
    summary = Summary()
    summary.add(GeneratedRecord(CLICKS, "s", {}, None, None, 5.0))
    summary.add(GeneratedRecord(FEEDBACK, "e", None, b"{", "truncated_json", 6.0))
    data = orjson.loads(summary.to_json())
    assert data["events"][CLICKS] == 1 and data["malformed"][FEEDBACK] == 1
    assert data["malformed_kinds"][FEEDBACK] == {"truncated_json": 1}
    assert (data["first_ts"], data["last_ts"], data["total"]) == (5.0, 6.0, 2)
