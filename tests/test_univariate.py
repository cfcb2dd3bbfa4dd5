"""Tests of the univariate online detector (``frictionwatch.detectors.univariate``).

All but the last test use synthetic series and take well under a second. The last one
scores the detector on the NAB corpus (``tests/data/nab``, or ``$FRICTIONWATCH_NAB_DIR``,
as in ``tests/test_nab.py``), a few seconds.
"""

from __future__ import annotations

import doctest
import math
import os
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from frictionwatch.detectors import nab, univariate
from frictionwatch.detectors.base import Observation, Verdict
from frictionwatch.detectors.univariate import SeriesDetector

DEFAULT_NAB_DIR = Path(__file__).resolve().parent / "data" / "nab"
STEP = 600.0  # 10-minute windows
DAY = 86400.0

# Standard-profile NAB score measured with the default parameters (bench/NAB.md) is 62.8;
# Windowed Gaussian's published score is 39.65.
NAB_STANDARD_BOUND = 61.5


def noise(n: int, level: float = 100.0, sd: float = 1.0, seed: int = 7, t0: float = 0.0) -> list[Observation]:
    rng = random.Random(seed)
    return [Observation(t0 + STEP * i, level + rng.gauss(0.0, sd)) for i in range(n)]


def feed(det: SeriesDetector, observations: list[Observation]) -> list[Verdict]:
    return [det.update(o) for o in observations]


def test_doctests() -> None:
    result = doctest.testmod(univariate)
    assert result.attempted > 0
    assert result.failed == 0


@pytest.mark.parametrize("direction", ["up", "down", "both"])
def test_spike_flagged_in_its_direction_only(direction: Any) -> None:
    for sign in (1.0, -1.0):
        det = SeriesDetector(direction=direction, threshold=4.0, warmup=50)
        history = noise(400)
        assert not any(v.anomaly for v in feed(det, history))
        spike = det.update(Observation(STEP * 400, 100.0 + sign * 12.0))
        bad = direction == "both" or (direction == "up") == (sign > 0)
        assert spike.anomaly is bad
        if bad:
            assert spike.score > 8.0
            assert spike.severity == "critical"
            assert spike.lower < spike.expected < spike.upper
            assert abs(spike.expected - 100.0) < 0.5
        else:
            assert spike.score == 0.0
            assert spike.severity == "none"


def test_lasting_level_shift_alerts_then_is_relearned() -> None:
    det = SeriesDetector(direction="up", threshold=4.0, warmup=50, relearn_after=30)
    feed(det, noise(500))
    shifted = feed(det, noise(500, level=110.0, seed=8, t0=STEP * 500))
    assert all(v.anomaly for v in shifted[:5])  # the shift is seen at once
    assert not any(v.anomaly for v in shifted[100:])  # and is the new normal later
    assert abs(shifted[-1].expected - 110.0) < 1.0
    # it still learns: a later spike above the new level is flagged
    assert det.update(Observation(STEP * 1000, 125.0)).anomaly


def daily(days: int, seed: int = 3) -> list[Observation]:
    rng = random.Random(seed)
    n = int(days * DAY / STEP)
    return [
        Observation(STEP * i, 100.0 + 20.0 * math.sin(2 * math.pi * STEP * i / DAY) + rng.gauss(0.0, 1.0))
        for i in range(n)
    ]


def test_daily_cycle_is_learned() -> None:
    det = SeriesDetector(direction="both", threshold=4.0, warmup=100)
    verdicts = feed(det, daily(8))
    assert det.seasonal  # the daily model won
    after = verdicts[int(3 * DAY / STEP) :]
    assert not any(v.anomaly for v in after)
    troughs = [v for v in after if v.observed < 82.0]
    assert troughs
    assert all(abs(v.expected - v.observed) < 5.0 for v in troughs)  # expected follows the cycle
    # a spike at a trough, well inside the day's range, is flagged by the daily model
    t = 8 * DAY + 0.75 * DAY  # sin = -1: trough at 80
    spike = det.update(Observation(t, 95.0))
    assert spike.anomaly
    assert spike.expected < 85.0


def test_no_seasonality_keeps_global_model() -> None:
    det = SeriesDetector()
    verdicts = feed(det, noise(int(6 * DAY / STEP)))
    assert not det.seasonal
    assert not any(v.anomaly for v in verdicts)


def test_warmup_suppresses_early_alerts() -> None:
    det = SeriesDetector(threshold=3.0, warmup=100)
    early = feed(det, noise(60))
    outlier = det.update(Observation(STEP * 60, 150.0))
    assert not any(v.anomaly for v in [*early, outlier])
    assert outlier.reason == "warming up"
    assert math.isnan(outlier.expected)
    feed(det, noise(100, seed=9, t0=STEP * 61))
    assert det.update(Observation(STEP * 161, 150.0)).anomaly


def test_consecutive_windows() -> None:
    det = SeriesDetector(direction="up", threshold=4.0, warmup=50, consecutive=3)
    feed(det, noise(300))
    single = det.update(Observation(STEP * 300, 115.0))
    assert single.score > 4.0 and not single.anomaly
    feed(det, noise(20, seed=11, t0=STEP * 301))
    run = feed(det, [Observation(STEP * (321 + i), 115.0) for i in range(4)])
    assert [v.anomaly for v in run] == [False, False, True, True]


def test_state_restore_round_trip() -> None:
    observations = daily(4)
    rng = random.Random(5)
    for i in rng.sample(range(len(observations)), 10):  # some spikes
        observations[i] = Observation(observations[i].ts, observations[i].value + 30.0)
    det = SeriesDetector(warmup=50)
    feed(det, observations[:300])
    state = det.state()
    encoded = orjson.dumps(state)
    twin = SeriesDetector(warmup=50)
    twin.restore(orjson.loads(encoded))
    assert twin.state() == state
    for o in observations[300:]:
        a, b = det.update(o), twin.update(o)
        assert repr(a) == repr(b)
        assert det.likelihood == twin.likelihood
    assert orjson.loads(orjson.dumps(det.state())) == twin.state()


def test_state_of_fresh_detector_is_json() -> None:
    det = SeriesDetector()
    twin = SeriesDetector()
    twin.restore(orjson.loads(orjson.dumps(det.state())))
    assert twin.state() == det.state()


def test_restore_rejects_other_configuration() -> None:
    with pytest.raises(ValueError):
        SeriesDetector(season_slots=24).restore(SeriesDetector().state())


def test_score_one_is_a_probability() -> None:
    det = SeriesDetector(warmup=50)
    rng = random.Random(2)
    scores = [
        det.score_one(datetime.fromtimestamp(STEP * i, UTC), 10.0 + rng.gauss(0.0, 1.0) + (25.0 if i == 400 else 0.0))
        for i in range(600)
    ]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert scores[400] == max(scores)
    assert all(s == 0.0 for s in scores[:50])


def test_bad_configuration() -> None:
    with pytest.raises(ValueError):
        SeriesDetector(direction="sideways")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        SeriesDetector(consecutive=0)


def test_nab_corpus_beats_windowed_gaussian() -> None:
    root = Path(os.environ.get("FRICTIONWATCH_NAB_DIR", DEFAULT_NAB_DIR))
    if not (root / "labels" / "combined_windows.json").is_file():
        pytest.fail(f"NAB corpus not found at {root} (it ships as tests/data/nab)", pytrace=False)
    corpus = nab.load_corpus(root)
    results = nab.evaluate_detector(SeriesDetector, corpus, [nab.STANDARD])
    assert results["standard"].normalized >= NAB_STANDARD_BOUND > 39.65 + 20
