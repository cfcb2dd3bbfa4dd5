"""kind: auto, FirstDayHandover: window detectors on a series' first day, sequential evidence after."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest

from frictionwatch.detectors.bank import DetectorBank, build
from frictionwatch.detectors.base import Observation, Verdict
from frictionwatch.detectors.handover import HANDOVER_AFTER, FirstDayHandover
from frictionwatch.detectors.sequential import SequentialDetector
from frictionwatch.detectors.volume import RatioDetector
from frictionwatch.journeymap import DetectorSettings, load_journey_map

DAY = 86400.0
WINDOW = 60.0


def conversion(ts: float) -> float:
    """A step whose conversion dips every afternoon (12:00-16:00, from 80% to 70% at 14:00), when
    the queue behind it is busy."""
    hour = (ts % DAY) / 3600.0
    return 0.8 - (0.1 * math.cos(math.pi * (hour - 14.0) / 4.0) if 12.0 <= hour < 16.0 else 0.0)


def windows(days: float, seed: int, incident: tuple[float, float] | None = None) -> list[Observation]:
    rng = random.Random(seed)
    out = []
    for i in range(int(days * DAY / WINDOW)):
        ts = (i + 1) * WINDOW
        p = 0.5 if incident and incident[0] <= ts < incident[1] else conversion(ts)
        out.append(Observation(ts, sum(rng.random() < p for _ in range(100)) / 100, 100.0))
    return out


def guard() -> FirstDayHandover:
    return FirstDayHandover(RatioDetector(direction="down"), SequentialDetector("binomial", direction="down"))


def alarms(verdicts: list[Verdict], start: float, end: float) -> int:
    return sum(verdict.anomaly for verdict in verdicts if start <= verdict.ts < end)


def test_the_first_day_is_the_window_detectors_then_the_sequential_detectors() -> None:
    observed = windows(2.0, seed=1)
    handover, window, sequential = guard(), RatioDetector(direction="down"), SequentialDetector("binomial", "down")
    for observation in observed:
        got = handover.update(observation)
        alone_window = window.update(observation)
        alone_sequential = sequential.update(observation)
        if observation.ts - observed[0].ts < HANDOVER_AFTER:
            assert (got.score, got.anomaly, handover.active) == (alone_window.score, alone_window.anomaly, "window")
            assert got.reason in ("first day: window detector", alone_window.reason)
        else:  # the sequential detector learned all along: its baseline is the one that fed on every window
            assert handover.active == "sequential" and handover.threshold == 1.0
            assert got.expected == pytest.approx(alone_sequential.expected)


def test_an_afternoon_dip_is_learned_on_the_first_day_not_paged_and_an_incident_on_the_second_is() -> None:
    """The case the hand-over exists for: alone, the sequential detector pages the first afternoon
    dip it sees (it has no daily profile yet); behind the hand-over nobody is paged on the first
    day, the second afternoon is normal, and a real drop on the second day pages."""
    first_day = windows(1.0, seed=2)
    alone = SequentialDetector("binomial", direction="down")
    assert alarms([alone.update(o) for o in first_day], 12 * 3600.0, 16 * 3600.0) > 0  # the motivating false page
    incident = (DAY + 9 * 3600.0, DAY + 9.5 * 3600.0)
    handover = guard()
    verdicts = [handover.update(o) for o in windows(2.0, seed=2, incident=incident)]
    assert alarms(verdicts, 0.0, DAY) == 0
    assert alarms(verdicts, DAY, incident[0]) + alarms(verdicts, incident[1] + 3600.0, 2 * DAY) == 0
    caught = [v.ts for v in verdicts if v.anomaly and incident[0] <= v.ts < incident[1]]
    assert caught and caught[0] - incident[0] <= 5 * WINDOW


@pytest.mark.parametrize("cut_hours", [6.0, 30.0])
def test_a_restored_handover_carries_on_identically(cut_hours: float) -> None:
    observed = windows(1.5, seed=3)
    cut = int(cut_hours * 3600 / WINDOW)
    original = guard()
    for observation in observed[:cut]:
        original.update(observation)
    twin = guard()
    twin.restore(json.loads(json.dumps(original.state())))  # through JSON, as the checkpoint goes
    for observation in observed[cut:]:
        assert twin.update(observation) == original.update(observation)


def test_a_window_detectors_state_carries_on_and_the_sequential_one_starts_its_first_day() -> None:
    """A map switched from kind: window to auto: what the window detector learned is kept."""
    observed = windows(1.5, seed=4)
    window = RatioDetector(direction="down")
    for observation in observed[:600]:
        window.update(observation)
    handover = guard()
    handover.restore(window.state())
    for observation in observed[600:700]:
        assert handover.update(observation).score == window.update(observation).score
    assert handover.active == "window"  # a day from the restore, not from the series' start


def test_a_sequential_detectors_state_carries_on_answering() -> None:
    observed = windows(0.5, seed=5)
    sequential = SequentialDetector("binomial", direction="down")
    for observation in observed[:400]:
        sequential.update(observation)
    handover = guard()
    handover.restore(sequential.state())
    assert handover.active == "sequential"
    for observation in observed[400:]:
        assert handover.update(observation) == sequential.update(observation)


def test_kind_auto_builds_the_handover_with_the_budget_and_the_window_settings() -> None:
    settings = DetectorSettings(kind="auto", sensitivity=5.0, min_volume=7, warmup=3, consecutive=2, direction="auto")
    detector = build(settings, "ratio", "down", "daily", "binomial")
    assert isinstance(detector, FirstDayHandover)
    assert isinstance(detector.first, RatioDetector) and detector.first.threshold == 5.0
    assert detector.first.min_volume == 7 and detector.then.warmup == 3 and detector.then.direction == "down"
    bank = DetectorBank(load_journey_map())  # the example map: auto, one false alarm a day for the map
    place = ("purchase", "payment", "web", "", "")
    bank.observe([(place, "flow_ratio", Observation(60.0, 0.8, 30.0))])
    shipped = bank.detectors[(place, "flow_ratio")]
    assert isinstance(shipped, FirstDayHandover)
    assert "per 265d" in str(shipped.then.false_alarms)  # the map's budget, split over its 265 series


def test_handover_after_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="handover_after"):
        FirstDayHandover(RatioDetector(), SequentialDetector("binomial"), handover_after=-1.0)


def test_auto_uses_both_thresholds_and_sequential_the_one_given_last() -> None:
    """kind auto: sensitivity for the first day, the budget after it; kind sequential has one
    threshold, and an override's sensitivity is the advanced override of the budget."""
    from frictionwatch.detectors.bank import resolve
    from frictionwatch.journeymap import parse_journey_map

    journey_map = load_journey_map()
    document = Path(journey_map.source).read_text()
    support = resolve(journey_map, ("support", "article", "web", "", ""), "flow_ratio")
    assert (support.kind, support.sensitivity, str(support.false_alarms)) == ("auto", 5.0, "1 per 365d")
    overrides = (
        "  overrides:\n    - {match: {step: payment}, kind: sequential, sensitivity: 4.5}\n"
        "    - {match: {step: cart}, kind: sequential}\n"
    )
    changed = parse_journey_map(document.replace("  overrides:\n", overrides, 1))
    payment = resolve(changed, ("purchase", "payment", "web", "", ""), "flow_ratio")
    assert (payment.sensitivity, payment.false_alarms) == (4.5, None)  # the override's sd wins
    cart = resolve(changed, ("purchase", "cart", "web", "", ""), "flow_ratio")
    assert cart.false_alarms is not None and "per 265d" in str(cart.false_alarms)  # the map's share


def test_backtest_tries_a_budget_for_the_whole_map() -> None:
    from frictionwatch.backtest.replay import tuned_map
    from frictionwatch.detectors.bank import resolve
    from frictionwatch.detectors.budget import FalseAlarmBudget

    tuned = tuned_map(load_journey_map(), map_false_alarms=FalseAlarmBudget.parse("1 per 7d"))
    for place in (("purchase", "payment", "web", "", ""), ("support", "article", "web", "", "")):
        settings = resolve(tuned, place, "flow_ratio")
        assert str(settings.false_alarms) == "1 per 1855d"  # 7 days x 265 series; support's own budget cleared
    assert str(tuned.map_false_alarms) == "1 per 7d"
