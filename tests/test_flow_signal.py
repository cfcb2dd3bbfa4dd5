"""The leading (early) flow signal moves within two windows of an injected step outage."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from frictionwatch.contract import EventValidator
from frictionwatch.generator import GeneratorConfig, generate
from frictionwatch.journeymap import JourneyMap
from frictionwatch.streams.derived import ratio
from frictionwatch.streams.sessions import SessionTracker
from frictionwatch.streams.windows import WindowedCounts

START = 1_794_999_960.0  # a multiple of 60 (and 10): windows start at the onset
OUTAGE_AT = 2 * 3600


def early_flow(journey_map: JourneyMap, scenario: Path, window: float) -> dict[float, tuple[float, float]]:
    """(early_progressed, early_waiting) at the payment step, by window start."""
    validator = EventValidator(journey_map)
    tracker = SessionTracker(journey_map, WindowedCounts(window, 0))
    config = GeneratorConfig(seed=3, rate=40, duration=3 * 3600, start=START, scenario=scenario)
    counts: dict[float, tuple[float, float]] = defaultdict(lambda: (0.0, 0.0))
    for record in generate(journey_map, config):
        if record.kind != "clicks":
            continue
        for closed in tracker.add(validator.click(record.value)):
            for place, fields in closed.counts.items():
                if place.journey == "purchase" and place.step == "payment":
                    progressed, waiting = counts[closed.start]
                    counts[closed.start] = (
                        progressed + fields.get("early_progressed", 0.0),
                        waiting + fields.get("early_waiting", 0.0),
                    )
    return counts


def pooled(counts: dict[float, tuple[float, float]], starts: list[float]) -> float | None:
    progressed = sum(counts[start][0] for start in starts if start in counts)
    waiting = sum(counts[start][1] for start in starts if start in counts)
    return ratio(progressed, progressed + waiting)


def test_payment_outage_moves_the_early_flow_ratio_within_two_windows(journey_map: JourneyMap, tmp_path: Path) -> None:
    scenario = tmp_path / "outage.yml"
    scenario.write_text(
        "version: 1\nincidents:\n  - {name: pay_down, kind: step_outage, journey: purchase, step: payment,"
        f" start: {OUTAGE_AT}s, duration: 30m, continuation: 0.1}}\n"
    )
    onset = START + OUTAGE_AT
    # 60-s windows: the second window after the onset is far below every window of the hour before.
    counts = early_flow(journey_map, scenario, 60.0)
    hour_before = [onset - 3600 + index * 60 for index in range(60)]
    lowest_normal = min(value for start in hour_before if (value := pooled(counts, [start])) is not None)
    normal = pooled(counts, hour_before)
    assert normal is not None and normal > 0.3  # a healthy payment step
    second = pooled(counts, [onset + 60])
    assert second is not None and second < 0.5 * lowest_normal, (normal, lowest_normal, second)
    # 10-s windows: too few sessions per window to judge one alone; the two windows that follow
    # the early age (60 s) already show the drop against the hour before.
    counts = early_flow(journey_map, scenario, 10.0)
    normal = pooled(counts, [onset - 3600 + index * 10 for index in range(360)])
    after = pooled(counts, [onset + 60, onset + 70])
    assert normal is not None and after is not None and after < 0.3 * normal, (normal, after)
