"""Sequential detectors: calibrated on normal traffic, quick on busy touchpoints, patient on
quiet ones, and calm about what is not friction (level shifts, drift, one long wait)."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import orjson
import pytest

from frictionwatch.detectors.base import Observation, Verdict
from frictionwatch.detectors.budget import FalseAlarmBudget, average_run_length, cusum_threshold
from frictionwatch.detectors.sequential import Model, SequentialDetector

MINUTE = 60.0
Window = Callable[[random.Random], tuple[float, float]]


def binomial(p: float, n: int) -> Window:
    return lambda rng: (sum(rng.random() < p for _ in range(n)) / n, float(n))


def poisson(rate: float, n: int) -> Window:
    def draw(rng: random.Random) -> tuple[float, float]:
        count, total = 0, rng.expovariate(1.0)
        while total < rate * n:
            count += 1
            total += rng.expovariate(1.0)
        return count / n, float(n)

    return draw


def normal(mean: float, unit_sd: float, n: int) -> Window:
    return lambda rng: (rng.gauss(mean, unit_sd / math.sqrt(n)), float(n))


def log_normal_waits(median: float, sigma: float, n: int) -> Window:
    return lambda rng: (sum(rng.lognormvariate(math.log(median), sigma) for _ in range(n)) / n, float(n))


def run(
    detector: SequentialDetector, window: Window, windows: int, rng: random.Random, start: int = 0
) -> list[Verdict]:
    verdicts = []
    for i in range(start, start + windows):
        value, volume = window(rng)
        verdicts.append(detector.update(Observation(i * MINUTE, value, volume)))
    return verdicts


def alarms(verdicts: list[Verdict]) -> int:
    """Alarm episodes: windows that alarm after one that didn't."""
    return sum(v.anomaly and not (i and verdicts[i - 1].anomaly) for i, v in enumerate(verdicts))


def test_siegmund_threshold_matches_a_simulated_cusum() -> None:
    """The closed form behind every threshold, checked against the CUSUM it describes."""
    rng = random.Random(3)
    h = cusum_threshold(500.0, shift=1.0)
    assert average_run_length(h, 1.0) == pytest.approx(500.0, rel=1e-6)
    lengths = []
    for _ in range(300):
        s, t = 0.0, 0
        while s < h:
            t += 1
            s = max(0.0, s + rng.gauss(0.0, 1.0) - 0.5)
        lengths.append(t)
    assert sum(lengths) / len(lengths) == pytest.approx(500.0, rel=0.2)


def test_budget_reads_as_people_write_it() -> None:
    assert FalseAlarmBudget.parse("1 per 30d") == FalseAlarmBudget(1.0, 30 * 86400.0)
    assert FalseAlarmBudget.parse("2 per week") == FalseAlarmBudget(2.0, 7 * 86400.0)
    assert FalseAlarmBudget.parse("1/12h").windows_between_alarms(60.0) == 720.0
    assert str(FalseAlarmBudget.parse("1 per month")) == "1 per 30d"
    with pytest.raises(ValueError, match="'sometimes' is not a false-alarm budget"):
        FalseAlarmBudget.parse("sometimes")


CALIBRATION: list[tuple[str, Model, str, Window]] = [
    ("conversion, 50 sessions a window", "binomial", "both", binomial(0.7, 50)),
    ("abandonment, 5 contacts a window", "binomial", "up", binomial(0.1, 5)),
    ("errors per visit, 10 visits a window", "poisson", "up", poisson(0.2, 10)),
    ("survey score, 8 answers a window", "normal", "down", normal(30.0, 40.0, 8)),
    ("waits of 3 contacts a window, heavy tails", "log_normal", "up", log_normal_waits(60.0, 1.2, 3)),
]


@pytest.mark.parametrize(("name", "model", "direction", "window"), CALIBRATION, ids=[c[0] for c in CALIBRATION])
def test_false_alarms_on_normal_traffic_are_within_a_factor_of_two_of_the_budget(
    name: str, model: Model, direction: str, window: Window
) -> None:
    """The budget means what it says: ~1 false alarm per 200 windows here, over 60,000 windows."""
    detector = SequentialDetector(model, direction=direction, false_alarms="1 per 200m", warmup=0)  # type: ignore[arg-type]
    rng = random.Random(11)
    run(detector, window, 2000, rng)  # learn first
    observed = alarms(run(detector, window, 60_000, rng, start=2000))
    assert 150 <= observed <= 600, f"{name}: {observed} false alarms where the budget allows 300"


def queue_waits(busy: float, median: float) -> Window:
    """A queue that answers most contacts at once (0.5-3 s); in a ``busy`` share of windows
    all of that window's 1-5 contacts wait (log-normal about ``median``)."""

    def draw(rng: random.Random) -> tuple[float, float]:
        n = rng.choice((1, 1, 1, 2, 2, 3, 4, 5))
        waiting = rng.random() < busy
        waits = [rng.lognormvariate(math.log(median), 1.0) if waiting else rng.uniform(0.5, 3.0) for _ in range(n)]
        return sum(waits) / n, float(n)

    return draw


def test_waits_of_a_queue_that_answers_most_contacts_at_once_keep_the_budget() -> None:
    """Waits are two kinds of wait, not one skewed one: no skewness or kurtosis correction turns
    their evidence into a standard normal (here its mean is about 0.25), and the 0.5-sd CUSUM,
    whose drift is only -0.125 a window, spent the budget faster than allowed (163-179 false
    alarms where 150 are allowed). The evidence is standardised by what normal traffic showed."""
    detector = SequentialDetector("log_normal", direction="up", false_alarms="1 per 200m", warmup=0)
    rng = random.Random(11)
    draw = queue_waits(0.1, 40.0)
    run(detector, draw, 2000, rng)
    observed = alarms(run(detector, draw, 30_000, rng, start=2000))
    assert observed <= 150, f"{observed} false alarms where the budget allows 150"
    learned = detector.learned.calibration
    assert all(0.1 < mean < 0.5 for _, mean, _ in learned.values()), learned  # what was corrected


def test_a_quiet_series_spends_its_budget_in_time_not_in_windows() -> None:
    """Volume in 2 windows of 10 (a pair every 10 minutes): the budget, 1 per 1000 minutes, is
    one alarm per 200 judged windows, not per 1000; over 60,000 judged windows ~300 alarms."""
    detector = SequentialDetector("binomial", direction="both", false_alarms="1 per 1000m", warmup=0)
    rng = random.Random(12)
    draw = binomial(0.7, 5)
    minutes = [10 * (i // 2) + i % 2 for i in range(62_000)]
    verdicts = [detector.update(Observation(m * MINUTE, *draw(rng))) for m in minutes]
    observed = alarms(verdicts[2000:])
    assert 150 <= observed <= 600, f"{observed} false alarms where the budget allows 300"


def test_a_busy_touchpoint_alarms_within_one_window() -> None:
    rng = random.Random(5)
    detector = SequentialDetector("binomial", direction="down")
    run(detector, binomial(0.8, 400), 300, rng)
    (verdict,) = run(detector, binomial(0.6, 400), 1, rng, start=300)
    assert verdict.anomaly and verdict.severity == "critical"
    assert verdict.lower > 0.6, "the band says what a single window may do"


def test_a_quiet_touchpoint_alarms_on_a_deviation_that_lasts() -> None:
    """Three contacts a window: no window alone proves anything; twenty of them do."""
    rng = random.Random(8)
    detector = SequentialDetector("binomial", direction="up")
    run(detector, binomial(0.08, 3), 1500, rng)
    incident = run(detector, binomial(0.35, 3), 40, rng, start=1500)
    first = next((i for i, v in enumerate(incident) if v.anomaly), None)
    assert first is not None and 3 <= first <= 30, first


def test_a_lasting_level_shift_becomes_the_new_normal() -> None:
    rng = random.Random(9)
    detector = SequentialDetector("binomial", direction="down", relearn_after=3600.0)
    run(detector, binomial(0.8, 100), 1440, rng)  # a day: every hour of the day has been seen
    shifted = run(detector, binomial(0.7, 100), 600, rng, start=1440)
    assert shifted[5].anomaly, "a new level is friction first"
    assert not any(v.anomaly for v in shifted[-300:]), "after an hour it is the normal"
    assert shifted[-1].expected == pytest.approx(0.7, abs=0.02)


def test_slow_drift_is_learned_not_paged() -> None:
    """Conversion drifting from 80% to 65% over three days of 60-s windows."""
    rng = random.Random(10)
    detector = SequentialDetector("binomial", direction="down", false_alarms="1 per 30d")
    days = 3 * 1440
    verdicts = []
    for i in range(days):
        p = 0.8 - 0.15 * i / days
        value, volume = binomial(p, 60)(rng)
        verdicts.append(detector.update(Observation(i * MINUTE, value, volume)))
    assert alarms(verdicts) <= 1


def test_one_hour_long_email_wait_never_pages() -> None:
    rng = random.Random(12)
    detector = SequentialDetector("log_normal", direction="up")
    run(detector, log_normal_waits(3600.0, 0.8, 1), 1500, rng)
    verdicts = [detector.update(Observation(1500 * MINUTE, 5 * 3600.0, 1.0))]
    verdicts += run(detector, log_normal_waits(3600.0, 0.8, 1), 30, rng, start=1501)
    assert not any(v.anomaly for v in verdicts)


def daily_swing(seed: int, days: int = 5) -> list[Verdict]:
    """A queue whose median wait swings from 36 to 99 s over every day, 10 contacts a minute."""
    rng = random.Random(seed)
    detector = SequentialDetector("log_normal", direction="up")
    verdicts = []
    for i in range(days * 1440):
        median = 60.0 * math.exp(0.5 * math.sin(2 * math.pi * i / 1440))
        value, volume = log_normal_waits(median, 0.5, 10)(rng)
        verdicts.append(detector.update(Observation(i * MINUTE, value, volume)))
    return verdicts


def test_a_daily_cycle_is_learned() -> None:
    """Waits that swing from 36 to 99 s over every day are normal once three days are learned."""
    assert alarms(daily_swing(13)[4 * 1440 :]) == 0


def test_the_days_after_the_first_do_not_page_on_a_daily_swing() -> None:
    """The same swing of waits over 12 seeds, days 2 to 5: 13 false alarms in all (2026-12-01),
    where the budget allows 1.6; the test holds it under 20. Offsets learned on the first day
    used to be held against the mean of the hours seen so far, and shrunk by a prior of 300
    contacts: the morning peak was learned against the morning, and days 2-5 paged 7-8, 2-4,
    about 2 and 0.75 times a seed (about 160 in all)."""
    paged = [alarms(daily_swing(seed)[1440:]) for seed in range(12)]
    assert max(paged) <= 3 and sum(paged) <= 20, paged


def test_a_checkpoint_of_offsets_against_a_raw_daily_mean_carries_on() -> None:
    """Checkpoints written before the hour slots kept their means hold offsets against a raw
    daily mean (``offsets``, ``daily_sum``, ``daily_volume``): restored, the profile is the same."""
    rng = random.Random(3)
    learned = SequentialDetector("binomial", direction="down")
    for i in range(2 * 1440):
        p = 0.8 + 0.1 * math.sin(2 * math.pi * i / 1440)
        learned.update(Observation(i * MINUTE, *binomial(p, 40)(rng)))
    state = learned.state()
    day, means = state["day_mean"], state.pop("slot_means")
    total = state.pop("slot_total")
    shrink = {slot: total[slot] / (total[slot] + 100.0) for slot in means}
    state.pop("day_mean")
    old = {**state, "offsets": {slot: shrink[slot] * (mean - day) for slot, mean in means.items()},
           "daily_sum": day * 1000.0, "daily_volume": 1000.0}  # fmt: skip
    restored = SequentialDetector("binomial", direction="down")
    restored.restore(orjson.loads(orjson.dumps(old)))
    for hour in range(24):
        ts = 2 * 86400.0 + hour * 3600.0
        assert restored.expected(ts) == pytest.approx(learned.expected(ts), abs=0.01)


def test_state_round_trips_through_json_and_continues_identically() -> None:
    rng = random.Random(14)
    original = SequentialDetector("poisson", direction="up")
    run(original, poisson(0.05, 20), 500, rng)
    copy = SequentialDetector("poisson", direction="up")
    copy.restore(orjson.loads(orjson.dumps(original.state())))
    future = [poisson(0.2, 20)(rng) for _ in range(50)]
    first = [original.update(Observation((500 + i) * MINUTE, v, n)) for i, (v, n) in enumerate(future)]
    second = [copy.update(Observation((500 + i) * MINUTE, v, n)) for i, (v, n) in enumerate(future)]
    assert first == second and any(v.anomaly for v in first)


def test_sensitivity_stays_as_an_advanced_override() -> None:
    """4 sd means the false alarms of a one-window test at 4 sd: one per 31,574 windows."""
    detector = SequentialDetector("binomial", false_alarms=4.0)
    assert detector.windows_between_alarms() == pytest.approx(31574, rel=1e-3)
    with pytest.raises(ValueError, match="false_alarms"):
        SequentialDetector("binomial", false_alarms=-1.0)


SMALL_MAP = (
    "version: 1\n"
    "journeys:\n"
    "  shop:\n"
    "    steps:\n"
    "      - {name: cart, stage: purchase, channels: [web, app]}\n"
    "      - {name: paid, stage: purchase, channels: [web], goal: true}\n"
    "contact_centre:\n"
    "  phone: {queues: [billing]}\n"
)


def test_check_config_explains_what_the_budget_allows_for_the_map() -> None:
    from frictionwatch.detectors.explain import explain, series_of
    from frictionwatch.journeymap import parse_journey_map

    detectors = "detectors:\n  defaults: {kind: sequential, false_alarms: 1 per 100d}\n"
    journey_map = parse_journey_map(SMALL_MAP + detectors)
    series = sum(1 for _ in series_of(journey_map))
    lines = explain(journey_map, window_seconds=60.0)
    assert lines[0] == f"detectors: {series} series ({series} sequential), 0 disabled"
    assert f"at most {series / 100:.2g} false alarms a day" in lines[1]
    assert any("30 sessions a window" in line for line in lines)


def test_a_budget_for_the_whole_map_is_split_over_its_sequential_series() -> None:
    from frictionwatch.detectors.bank import resolve
    from frictionwatch.detectors.explain import explain, series_of
    from frictionwatch.journeymap import JourneyMapError, parse_journey_map

    head = SMALL_MAP
    journey_map = parse_journey_map(
        head + "detectors:\n  map_false_alarms: 1 per 7d\n  defaults: {kind: sequential}\n"
        "  overrides:\n    - {match: {channel: phone}, kind: window}\n"
    )
    places = list(series_of(journey_map))
    sequential = [p for p in places if resolve(journey_map, *p).kind == "sequential"]
    assert 0 < len(sequential) < len(places)  # the phone queue's series keep window detectors
    budgets = [resolve(journey_map, *p).false_alarms for p in sequential]
    assert None not in budgets
    per_day = sum(86400.0 / budget.period for budget in budgets if budget is not None)
    assert per_day == pytest.approx(1 / 7)
    assert "map budget 1 per 7d" in "\n".join(explain(journey_map, window_seconds=60.0))
    with pytest.raises(JourneyMapError, match=r"detectors\.map_false_alarms: give the budget for the whole map or"):
        parse_journey_map(head + "detectors:\n  map_false_alarms: 1 per 7d\n  defaults: {false_alarms: 1 per 30d}\n")


def test_check_config_says_one_false_alarm_in_the_singular() -> None:
    from frictionwatch.detectors.explain import explain
    from frictionwatch.journeymap import parse_journey_map

    def said(budget: str) -> str:
        detectors = f"detectors:\n  map_false_alarms: {budget}\n  defaults: {{kind: sequential}}\n"
        return "\n".join(explain(parse_journey_map(SMALL_MAP + detectors), window_seconds=60.0))

    assert "at most 1 false alarm a day across the map" in said("1 per 1d")
    assert "at most 2 false alarms a day across the map" in said("2 per 1d")


def test_series_draw_their_own_randomisation_in_the_same_window() -> None:
    """Discrete counts are randomised within their atom; the draw depends on the window's time
    *and* the series (the windows it has seen), so one unlucky window can't raise the evidence
    of every series of the map at once (with the time alone, all drew the same u, and a window
    whose u was 0.999997 gave 5 false alerts in 4 benchmark sets in the same minute)."""
    from frictionwatch.detectors.sequential import _randomised_z

    ts = 1_794_000_000.0
    quantiles = [_normal_cdf(_randomised_z(0.0, 1.0, ts, salt)) for salt in range(4000)]
    assert 0.47 < sum(quantiles) / len(quantiles) < 0.53
    assert sum(q > 0.99 for q in quantiles) < 80  # 40 expected
    assert _randomised_z(0.2, 0.5, ts, 7) == _randomised_z(0.2, 0.5, ts, 7), "a replay draws the same"


def _normal_cdf(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))
