"""Detectors: warm-up, direction, minimum volume, relearning, seasonality, tuning and checkpoints."""

from __future__ import annotations

import math
import random
import textwrap
from collections.abc import Sequence

import orjson
import pytest

from frictionwatch.detectors.bank import DetectorBank, resolve
from frictionwatch.detectors.base import Observation, Verdict
from frictionwatch.detectors.volume import MeanDetector, RatioDetector
from frictionwatch.journeymap import JourneyMap, parse_journey_map

MINUTE = 60.0


def feed(
    detector: RatioDetector | MeanDetector, values: Sequence[tuple[float, float]], start: float = 0.0
) -> list[Verdict]:
    return [detector.update(Observation(start + i * MINUTE, v, n)) for i, (v, n) in enumerate(values)]


def noisy_ratio(rng: random.Random, p: float, n: int) -> tuple[float, float]:
    return sum(rng.random() < p for _ in range(n)) / n, float(n)


def test_no_alert_during_warmup() -> None:
    detector = RatioDetector(direction="down", warmup=10, min_volume=10)
    verdicts = feed(detector, [(0.8, 200)] * 5 + [(0.1, 200)])
    assert not any(v.anomaly for v in verdicts) and verdicts[-1].reason == "warming up"


def test_only_the_bad_direction_alerts() -> None:
    rng = random.Random(1)
    down = RatioDetector(direction="down", warmup=20)
    up = RatioDetector(direction="up", warmup=20)
    history = [noisy_ratio(rng, 0.7, 300) for _ in range(40)]
    feed(down, history), feed(up, history)
    assert down.update(Observation(4000, 0.3, 300)).anomaly and not up.update(Observation(4000, 0.3, 300)).anomaly
    assert up.update(Observation(4060, 0.99, 300)).anomaly and not down.update(Observation(4060, 0.99, 300)).anomaly


def test_small_volume_is_not_an_incident() -> None:
    rng = random.Random(2)
    detector = RatioDetector(direction="up", min_volume=20, warmup=20)
    feed(detector, [noisy_ratio(rng, 0.2, 500) for _ in range(60)])
    small = detector.update(Observation(4000, 0.5, 4))  # half of 4 sessions dropped off
    large = detector.update(Observation(4060, 0.5, 4000))  # half of 4,000 did
    assert not small.anomaly
    assert large.anomaly and large.severity == "critical"
    medium = detector.update(Observation(4120, 0.5, 30))  # above the minimum, but the band is wide
    assert medium.upper - medium.lower > large.upper - large.lower


def test_noise_does_not_alert() -> None:
    rng = random.Random(3)
    detector = RatioDetector(direction="both", warmup=30)
    verdicts = feed(detector, [noisy_ratio(rng, 0.6, rng.randint(50, 400)) for _ in range(600)])
    assert sum(v.anomaly for v in verdicts) <= 1


def test_a_lasting_level_shift_is_relearned() -> None:
    rng = random.Random(4)
    detector = RatioDetector(direction="down", warmup=20, relearn_after=10)
    feed(detector, [noisy_ratio(rng, 0.8, 300) for _ in range(60)])
    shifted = feed(detector, [noisy_ratio(rng, 0.6, 300) for _ in range(40)], start=60 * MINUTE)
    flags = [v.anomaly for v in shifted]
    assert all(flags[:10]), "the shift alerts until it is confirmed"
    assert not any(flags[15:]), "then the new level is normal"
    assert abs(shifted[-1].expected - 0.6) < 0.03


def test_daily_cycle_does_not_alert_at_night() -> None:
    rng = random.Random(5)
    detector = MeanDetector(direction="up", warmup=50, min_slot_samples=5)
    day = 86400.0

    def wait(ts: float) -> float:  # queue waits peak in the evening: 30 s at night, 120 s at 18:00
        return 75 + 45 * math.cos(2 * math.pi * (ts % day - 18 * 3600) / day)

    verdicts = [
        detector.update(Observation(ts, wait(ts) + rng.gauss(0, 4), 40.0))
        for ts in (i * 600.0 for i in range(6 * 144))  # six days of 10-minute windows
    ]
    assert not any(v.anomaly for v in verdicts[3 * 144 :]), "the cycle is learned: peaks and troughs are normal"
    spike = detector.update(Observation(6 * day + 4 * 3600, 120.0, 40.0))  # an evening wait at 4 a.m.
    assert spike.anomaly


def test_consecutive_windows_before_firing() -> None:
    detector = RatioDetector(direction="down", warmup=5, consecutive=3)
    feed(detector, [(0.8, 1000)] * 20)
    flags = [v.anomaly for v in feed(detector, [(0.5, 1000)] * 4, start=20 * MINUTE)]
    assert flags == [False, False, True, True]


def test_state_round_trip_gives_identical_verdicts() -> None:
    rng = random.Random(6)
    history = [noisy_ratio(rng, 0.5, rng.randint(20, 200)) for _ in range(200)]
    future = [noisy_ratio(rng, 0.45, 200) for _ in range(50)]
    original = RatioDetector(direction="down")
    feed(original, history)
    copy = RatioDetector(direction="down")
    copy.restore(orjson.loads(orjson.dumps(original.state())))
    start = 200 * MINUTE
    assert feed(original, future, start) == feed(copy, future, start)


MAP = textwrap.dedent("""\
    version: 1
    journeys:
      shop:
        steps:
          - {name: cart, stage: purchase, channels: [web]}
          - {name: paid, stage: purchase, channels: [web], goal: true}
    contact_centre:
      phone: {queues: [billing]}
    detectors:
      defaults: {kind: window, sensitivity: 5, warmup: 3}
      overrides:
        - {match: {step: cart}, consecutive: 2}
        - {match: {queue: billing, metric: abandonment_ratio}, enabled: false}
    """)


def test_settings_come_from_the_map() -> None:
    journey_map = parse_journey_map(MAP)
    cart = resolve(journey_map, ("shop", "cart", "web", "", ""), "early_flow_ratio")
    assert (cart.sensitivity, cart.warmup, cart.consecutive, cart.min_volume) == (5, 3, 2, 10)
    bank = DetectorBank(journey_map)
    findings = bank.observe([(("", "", "phone", "billing", ""), "abandonment_ratio", Observation(60, 0.1, 50))])
    assert findings == []  # disabled for that queue


def test_reconfiguring_keeps_what_was_learned() -> None:
    bank = DetectorBank(parse_journey_map(MAP))
    place = ("shop", "cart", "web", "", "")
    for minute in range(30):
        bank.observe([(place, "early_flow_ratio", Observation(minute * MINUTE, 0.4, 400))])
    tuned = parse_journey_map(
        MAP.replace("consecutive: 2", "consecutive: 1").replace("sensitivity: 5", "sensitivity: 3")
    )
    assert bank.reconfigure(tuned) >= 1
    (finding,) = bank.observe([(place, "early_flow_ratio", Observation(30 * MINUTE, 0.25, 400))])
    assert finding.verdict.anomaly, "no new warm-up, and the new consecutive=1 applies at once"
    assert finding.threshold == 3 and finding.verdict.expected == pytest.approx(0.4)


def test_bank_checkpoint_per_group(journey_map: JourneyMap) -> None:
    bank = DetectorBank(journey_map)
    step = ("purchase", "payment", "web", "", "")
    queue = ("", "", "phone", "billing", "")
    for minute in range(40):
        bank.observe([
            (step, "early_flow_ratio", Observation(minute * MINUTE, 0.4, 100)),
            (queue, "abandonment_ratio", Observation(minute * MINUTE, 0.1, 80)),
        ])  # fmt: skip
    saved = orjson.loads(orjson.dumps(bank.state("purchase")))
    assert list(saved) == [
        "purchase/payment/web///early_flow_ratio",
        "purchase/payment/all///early_flow_ratio",
        "purchase/////@expected_visits",  # the journey's visits a window: its silent-window guard
    ]
    assert list(bank.state("phone")) == ["//phone/billing//abandonment_ratio"]
    fresh = DetectorBank(journey_map)
    assert fresh.restore(saved) == 2
    late = Observation(40 * MINUTE, 0.1, 100)
    assert fresh.observe([(step, "early_flow_ratio", late)]) == bank.observe([(step, "early_flow_ratio", late)])


def test_a_step_on_all_its_channels_is_one_more_series(journey_map: JourneyMap) -> None:
    """Web and app of the payment step pooled: the step as one touchpoint (channel ``all``),
    judged on every session of the window; a one-channel step is not pooled."""
    bank = DetectorBank(journey_map)
    web, app = ("purchase", "payment", "web", "", ""), ("purchase", "payment", "app", "", "")
    findings = bank.observe([
        (web, "flow_ratio", Observation(60.0, 0.9, 30)),
        (app, "flow_ratio", Observation(60.0, 0.6, 10)),
        (web, "errors_per_visit", Observation(60.0, 0.1, 30)),
        (("", "", "phone", "billing", ""), "abandonment_ratio", Observation(60.0, 0.1, 80)),
    ])  # fmt: skip
    pooled = {f.metric: f.verdict for f in findings if f.place == ("purchase", "payment", "all", "", "")}
    assert set(pooled) == {"flow_ratio", "errors_per_visit"}
    assert pooled["flow_ratio"].observed == pytest.approx((0.9 * 30 + 0.6 * 10) / 40)
    assert pooled["flow_ratio"].volume == 40
    assert pooled["errors_per_visit"].observed == pytest.approx(0.1) and pooled["errors_per_visit"].volume == 30
    single = parse_journey_map(MAP)  # the test map's steps have one channel each
    assert not [
        f
        for f in DetectorBank(single).observe(
            [(("shop", "cart", "web", "", ""), "flow_ratio", Observation(60.0, 0.9, 30))]
        )
        if f.place[2] == "all"
    ]


def _purchase_window(
    rng: random.Random, minute: int, *, clicks: bool = True, broken: str = ""
) -> list[tuple[tuple[str, str, str, str, str], str, Observation]]:
    """One window of the example map's purchase journey: flow and visits at every step.

    ``clicks=False`` is a collector holding its batch back: no visit arrives, but the flow
    deadlines of sessions under way still pass (every one stalled), at two steps a window (each
    step's progress timeout differs, so no window has them all). ``broken`` names a step that
    stops letting sessions through while its visits keep coming.
    """
    items = []
    for index, step in enumerate(("landing", "search", "product", "cart", "checkout", "payment")):
        place = ("purchase", step, "web", "", "")
        if not clicks and index % 3 != minute % 3:
            continue
        stalled = not clicks or step == broken
        flow = 0.0 if stalled else noisy_ratio(rng, 0.8, 30)[0]
        items.append((place, "flow_ratio", Observation(minute * MINUTE, flow, 30.0)))
        if clicks:
            items.append((place, "errors_per_visit", Observation(minute * MINUTE, 0.0, 30.0)))
    return items


def test_a_batch_held_back_is_missing_data_but_a_broken_step_pages(journey_map: JourneyMap) -> None:
    rng = random.Random(21)
    for kind in ("auto", "sequential"):
        with open(journey_map.source) as file:
            map_text = file.read()
        cut = map_text.find("\ndetectors:")
        bank = DetectorBank(parse_journey_map(map_text[:cut] + f"\ndetectors:\n  defaults: {{kind: {kind}}}\n"))
        for minute in range(120):
            bank.observe(_purchase_window(rng, minute))
        held = [f for minute in range(120, 140) for f in bank.observe(_purchase_window(rng, minute, clicks=False))]
        assert not any(f.verdict.anomaly for f in held), f"{kind}: a held-back batch paged"
        assert all("late or missing data" in f.verdict.reason for f in held if f.metric == "flow_ratio")
        for minute in range(140, 150):  # the batch is late: traffic goes on as before
            bank.observe(_purchase_window(rng, minute))
        windows = [_purchase_window(rng, minute, broken="payment") for minute in range(150, 160)]
        broken = [finding for window in windows for finding in bank.observe(window)]
        paged = {f.place[1] for f in broken if f.verdict.anomaly}
        assert paged == {"payment"}, f"{kind}: a broken payment step paged {paged}"


def test_a_restored_bank_still_knows_a_silent_window_is_missing_data(journey_map: JourneyMap) -> None:
    """The visits a journey's window is expected to have are checkpointed with its detectors:
    a worker that takes over the group right before a collector holds its batch back does not
    page the stalled flow (before, the guard was off until the visits were learned again)."""
    rng = random.Random(5)
    bank = DetectorBank(journey_map)
    for minute in range(120):
        bank.observe(_purchase_window(rng, minute))
    restored = DetectorBank(journey_map)
    restored.restore(bank.state("purchase"))
    assert restored.expected_visits == pytest.approx(bank.expected_visits)
    held = [f for minute in range(120, 140) for f in restored.observe(_purchase_window(rng, minute, clicks=False))]
    assert all("late or missing data" in f.verdict.reason for f in held if f.metric == "flow_ratio")
    # a bank of code that didn't know the key passes over it (the metric is no detector's)
    state = bank.state("purchase")
    assert sum(key.endswith("/@expected_visits") for key in state) == 1


def test_a_journeys_detector_checkpoint_fits_a_kafka_record_with_room_to_spare(journey_map: JourneyMap) -> None:
    """The worker checkpoints a group's detectors (a journey, or a contact channel) as one record
    of its state table after each final window, and Apache Kafka refuses records over 1 MB by
    default (message.max.bytes, the producer's max.request.size). Two days of windows at every
    series of the example map fill every hour slot of every daily profile: the biggest group's
    record stays under half of that. (A quarter-hour profile once made it 1.75 MB.)"""
    from frictionwatch.detectors.explain import series_of
    from frictionwatch.streams.series import BY_NAME

    rng = random.Random(3)
    bank = DetectorBank(journey_map)
    places = list(series_of(journey_map))
    for window in range(2 * 144):  # 10-minute windows: every slot of the day, twice
        ts = (window + 1) * 600.0
        bank.observe(
            (place, metric, Observation(ts, rng.uniform(0.2, 0.8) if BY_NAME[metric].kind == "ratio" else
                                        rng.uniform(1.0, 30.0), 50.0))
            for place, metric in places
        )  # fmt: skip
    groups = {place[0] or place[2] for place, _ in places}
    sizes = {group: len(orjson.dumps(bank.state(group))) for group in groups}
    biggest = max(sizes, key=lambda group: sizes[group])
    assert sizes[biggest] < 1_048_576 / 2, f"{biggest}: a checkpoint of {sizes[biggest]:,} bytes"
