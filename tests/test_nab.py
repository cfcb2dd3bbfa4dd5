"""Tests of the pure-Python NAB scorer (``frictionwatch.detectors.nab``).

The corpus tests read the NAB corpus kept in the repository, ``tests/data/nab``
(``$FRICTIONWATCH_NAB_DIR`` overrides it).  If it is missing those tests fail (they
are the proof that the scorer reproduces the published scoreboard).
"""

from __future__ import annotations

import csv
import doctest
import itertools
import json
import math
import os
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path

import pytest

from frictionwatch.detectors import nab

DEFAULT_NAB_DIR = Path(__file__).resolve().parent / "data" / "nab"  # NAB v1.1 corpus, MIT (its LICENSE.txt)

# Published NAB v1.1 scoreboard, Windowed Gaussian detector.
PUBLISHED_WINDOWED_GAUSSIAN = {
    "standard": 39.65,
    "reward_low_FP_rate": 20.87,
    "reward_low_FN_rate": 47.41,
}


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def nab_dir() -> Path:
    return Path(os.environ.get("FRICTIONWATCH_NAB_DIR", DEFAULT_NAB_DIR))


@lru_cache(maxsize=1)
def _load_corpus(root: Path) -> tuple[nab.Series, ...]:
    return tuple(nab.load_corpus(root))


def corpus() -> tuple[nab.Series, ...]:
    root = nab_dir()
    if not (root / "labels" / "combined_windows.json").is_file():
        pytest.fail(
            f"NAB corpus not found at {root} (expected labels/combined_windows.json "
            "and data/). It ships in the repository as tests/data/nab; "
            "FRICTIONWATCH_NAB_DIR, when set, must name a copy of it.",
            pytrace=False,
        )
    return _load_corpus(root)


@lru_cache(maxsize=1)
def windowed_gaussian_scores() -> dict[str, list[float]]:
    ref = nab_dir() / "reference" / "windowedGaussian"
    out: dict[str, list[float]] = {}
    for series in corpus():
        category, filename = series.name.split("/")
        path = ref / category / f"windowedGaussian_{filename}"
        if not path.is_file():
            pytest.fail(f"missing reference results file {path}", pytrace=False)
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
        assert [datetime.fromisoformat(r["timestamp"]) for r in rows] == list(series.timestamps), (
            f"timestamps of {path} do not match the corpus"
        )
        out[series.name] = [float(r["anomaly_score"]) for r in rows]
    return out


def toy_series(n: int = 20, window: tuple[int, int] | None = (8, 11), name: str = "toy.csv") -> nab.Series:
    t0 = datetime(2024, 1, 1)
    ts = [t0 + timedelta(minutes=i) for i in range(n)]
    windows = [] if window is None else [(ts[window[0]], ts[window[1]])]
    return nab.Series(name, ts, [float(i) for i in range(n)], windows)


def s(x: float) -> float:
    """Independent restatement of NAB's scaled sigmoid for |x| <= 3."""
    return 2.0 / (1.0 + math.exp(5.0 * x)) - 1.0


# ---------------------------------------------------------------------------
# weighting primitives
# ---------------------------------------------------------------------------


def test_scaled_sigmoid_reference_points() -> None:
    assert nab.scaled_sigmoid(-1.0) == pytest.approx(0.98661, abs=1e-5)
    assert nab.scaled_sigmoid(-0.5) == pytest.approx(0.84828, abs=1e-5)
    assert nab.scaled_sigmoid(0.0) == 0.0
    assert nab.scaled_sigmoid(1.0) == pytest.approx(-0.98661, abs=1e-5)
    assert nab.scaled_sigmoid(3.0) == pytest.approx(s(3.0))  # still the sigmoid
    assert nab.scaled_sigmoid(3.0001) == -1.0  # FP far behind a window
    assert nab.scaled_sigmoid(100.0) == -1.0
    xs = [i / 10 for i in range(-30, 31)]
    ys = [nab.scaled_sigmoid(x) for x in xs]
    assert all(a > b for a, b in itertools.pairwise(ys)), "must decrease with position"
    for x, y in zip(xs, ys, strict=True):
        assert y == pytest.approx(s(x), abs=1e-12)
        assert nab.scaled_sigmoid(-x) == pytest.approx(-y, abs=1e-12)  # odd


def test_true_positive_weight_depends_on_position_in_window() -> None:
    series = toy_series()  # window rows 8..11 (width 4), probation 3 rows
    expected = {
        8: 1.0,
        9: s(-0.75) / s(-1.0),
        10: s(-0.5) / s(-1.0),
        11: s(-0.25) / s(-1.0),
    }
    for row, weight in expected.items():
        scores = [0.0] * 20
        scores[row] = 1.0
        result = nab.score_series(series, scores, nab.STANDARD, threshold=0.5)
        assert result.score == pytest.approx(weight, abs=1e-12), row
        assert (result.tp, result.fn) == (1, 3)
    # tp_weight scales the reward; the first row always earns exactly tp_weight
    scores = [0.0] * 20
    scores[8] = 1.0
    heavy = nab.CostProfile("heavy", tp_weight=3.0, fp_weight=0.1, fn_weight=1.0)
    assert nab.score_series(series, scores, heavy, 0.5).score == pytest.approx(3.0)


def test_only_first_detection_in_window_counts() -> None:
    series = toy_series()
    first_only = [0.0] * 20
    first_only[9] = 1.0
    many = list(first_only)
    many[10] = many[11] = 1.0
    a = nab.score_series(series, first_only, nab.STANDARD, 0.5)
    b = nab.score_series(series, many, nab.STANDARD, 0.5)
    assert a.score == b.score == pytest.approx(s(-0.75) / s(-1.0))
    assert b.tp == 3  # counts are per row, as in NAB


def test_false_positive_weighting() -> None:
    series = toy_series(n=40)  # window rows 8..11, width 4, probation 6 rows
    fp = nab.STANDARD.fp_weight
    fn_plus = -nab.STANDARD.fn_weight  # the undetected window

    def score_with_detection_at(row: int) -> float:
        scores = [0.0] * 40
        scores[row] = 1.0
        return nab.score_series(series, scores, nab.STANDARD, 0.5).score - fn_plus

    # before any window: the full -fp_weight
    assert score_with_detection_at(7) == pytest.approx(-fp)
    # after the window: relative position |end - i| / (width - 1)
    for row in (12, 13, 14, 20):
        assert score_with_detection_at(row) == pytest.approx(fp * s((row - 11) / 3), abs=1e-12)
    # the further behind the window, the costlier
    assert -fp < score_with_detection_at(20) < score_with_detection_at(13) < score_with_detection_at(12) < 0
    # more than 3 widths behind the window: the full -fp_weight again
    assert score_with_detection_at(30) == pytest.approx(-fp)
    # undetected window is a false negative
    assert nab.score_series(series, [0.0] * 40, nab.STANDARD, 0.5).score == -1.0
    low_fn = nab.REWARD_LOW_FN_RATE
    assert nab.score_series(series, [0.0] * 40, low_fn, 0.5).score == -2.0


def test_probation_length() -> None:
    assert nab.probation_length(0) == 0
    assert nab.probation_length(19) == 2  # floor(2.85)
    assert nab.probation_length(20) == 3
    assert nab.probation_length(4032) == 604
    assert nab.probation_length(4999) == 749
    assert nab.probation_length(5000) == 750
    assert nab.probation_length(22695) == 750  # capped at 0.15 * 5000
    assert nab.probation_length(1000, probation_percent=0.0) == 0
    assert nab.probation_length(1000, probation_percent=0.1) == 100
    with pytest.raises(ValueError):
        nab.probation_length(100, probation_percent=1.5)


def test_detections_in_probation_are_ignored() -> None:
    series = toy_series()  # probation: rows 0, 1, 2
    quiet = nab.score_series(series, [0.0] * 20, nab.STANDARD, 0.5)
    noisy_start = [1.0, 1.0, 1.0] + [0.0] * 17
    assert nab.score_series(series, noisy_start, nab.STANDARD, 0.5) == quiet
    assert quiet.tp + quiet.tn + quiet.fp + quiet.fn == 17
    just_after = [0.0] * 20
    just_after[3] = 1.0  # first scored row, before the window: a full FP
    assert nab.score_series(series, just_after, nab.STANDARD, 0.5).score == pytest.approx(
        quiet.score - nab.STANDARD.fp_weight
    )
    # A window entirely inside the probation period is neither TP nor FN ...
    early = toy_series(window=(0, 2))
    assert nab.score_series(early, [0.0] * 20, nab.STANDARD, 0.5).score == 0.0
    # ... but a detection after it is still weighted from its end (NAB does so).
    after = [0.0] * 20
    after[3] = 1.0
    assert nab.score_series(early, after, nab.STANDARD, 0.5).score == pytest.approx(nab.STANDARD.fp_weight * s(1 / 2))
    # the percentage is configurable
    assert nab.score_series(series, noisy_start, nab.STANDARD, 0.5, probation_percent=0.0) != quiet


# ---------------------------------------------------------------------------
# hand-made series with a known score, sweep and normalisation
# ---------------------------------------------------------------------------


def _toy_scores() -> list[float]:
    scores = [0.0] * 20
    scores[1] = 0.9  # in probation: ignored
    scores[5] = 0.8  # FP before any window: -0.11
    scores[9] = 0.9  # TP, position -0.75
    scores[10] = 0.95  # later in the window; only counts when alone
    scores[15] = 0.7  # FP 4 rows after a width-4 window: position 4/3
    return scores


def test_hand_made_series_known_score() -> None:
    series, scores = toy_series(), _toy_scores()
    got = nab.score_series(series, scores, nab.STANDARD, threshold=0.7)
    expected = s(-0.75) / s(-1.0) - 0.11 + 0.11 * s(4 / 3)
    assert got.score == pytest.approx(expected, abs=1e-12)
    assert got.score == pytest.approx(0.7472687, abs=1e-7)
    assert (got.tp, got.tn, got.fp, got.fn) == (2, 11, 2, 2)


def test_sweep_and_threshold_optimisation() -> None:
    series, scores = toy_series(), _toy_scores()
    curve = nab.sweep({"toy.csv": scores}, [series], nab.STANDARD)
    assert [c.threshold for c in curve] == [1.1, 0.95, 0.9, 0.8, 0.7, 0.0]
    assert curve[0].score == -1.0  # nothing detected
    assert curve[1].score == pytest.approx(s(-0.5) / s(-1.0))
    assert curve[2].score == pytest.approx(0.9669890878)
    assert curve[3].score == pytest.approx(curve[2].score - 0.11)
    # every sweep entry equals scoring the file at that threshold
    for c in curve:
        assert nab.score_series(series, scores, nab.STANDARD, c.threshold).score == (pytest.approx(c.score))
    best = nab.optimize_threshold({"toy.csv": scores}, [series], nab.STANDARD)
    assert best == curve[2]
    result = nab.nab_score({"toy.csv": scores}, [series], nab.STANDARD)
    assert result.threshold == 0.9
    assert (result.null, result.perfect) == (-1.0, 1.0)
    assert result.normalized == pytest.approx(100 * (0.9669890878 + 1) / 2)
    assert result.per_file == {"toy.csv": pytest.approx(result.raw)}


def test_one_threshold_is_shared_across_files() -> None:
    a, b = toy_series(name="a.csv"), toy_series(name="b.csv")
    sa, sb = [0.0] * 20, [0.0] * 20
    sa[8] = 0.9  # a: perfect at 0.9
    sb[8] = 0.5  # b: only found at 0.5 ...
    sb[4] = 0.6  # ... which also fires this false positive (-0.11)
    best = nab.optimize_threshold({"a.csv": sa, "b.csv": sb}, [a, b], nab.STANDARD)
    assert best.threshold == 0.5 and best.score == pytest.approx(2 - 0.11)
    strict = nab.CostProfile("strict", tp_weight=1.0, fp_weight=3.0, fn_weight=1.0)
    best = nab.optimize_threshold({"a.csv": sa, "b.csv": sb}, [a, b], strict)
    assert best.threshold == 0.9 and best.score == pytest.approx(0.0)


def test_ties_go_to_the_highest_threshold() -> None:
    series = toy_series()
    scores = [0.0] * 20
    scores[8], scores[9] = 0.9, 0.8  # 0.8 adds nothing once row 8 fired
    assert nab.optimize_threshold({"toy.csv": scores}, [series], nab.STANDARD).threshold == 0.9


def test_null_and_perfect_detectors_on_toy_corpus() -> None:
    corpus_ = [
        toy_series(n=100, window=(40, 43), name="a.csv"),
        toy_series(n=100, window=(60, 69), name="b.csv"),
        toy_series(n=100, window=None, name="c.csv"),
    ]
    null = {c.name: [0.0] * 100 for c in corpus_}
    perfect = {c.name: [0.0] * 100 for c in corpus_}
    perfect["a.csv"][40] = perfect["b.csv"][60] = 1.0
    for profile in nab.PROFILES:
        assert nab.nab_score(null, corpus_, profile).normalized == pytest.approx(0.0)
        assert nab.nab_score(perfect, corpus_, profile).normalized == pytest.approx(100.0)


def test_input_validation() -> None:
    series = toy_series()
    with pytest.raises(ValueError, match="rows"):
        nab.score_series(series, [0.0] * 19, nab.STANDARD, 0.5)
    with pytest.raises(ValueError, match="not in"):
        nab.score_series(series, [math.nan] * 20, nab.STANDARD, 0.5)
    with pytest.raises(ValueError, match="no anomaly scores"):
        nab.nab_score({}, [series], nab.STANDARD)
    ts = list(toy_series().timestamps)
    with pytest.raises(ValueError, match="not a timestamp"):
        nab.Series("x.csv", ts, [0.0] * 20, [(ts[3], ts[3] + timedelta(seconds=1))])
    with pytest.raises(ValueError, match="non-overlapping"):
        nab.Series("x.csv", ts, [0.0] * 20, [(ts[3], ts[6]), (ts[5], ts[9])])
    with pytest.raises(ValueError, match="no scorable anomaly window"):
        nab.nab_score({"x.csv": [0.0] * 20}, [toy_series(name="x.csv", window=None)], nab.STANDARD)


def test_evaluate_detector_uses_a_fresh_streaming_detector_per_file() -> None:
    class JumpDetector:
        """Flags a value far above the running mean of what it has seen."""

        def __init__(self) -> None:
            self.n = 0
            self.mean = 0.0

        def score_one(self, timestamp: datetime, value: float) -> float:
            score = 1.0 if self.n >= 3 and value > 3 * self.mean + 1 else 0.0
            self.n += 1
            self.mean += (value - self.mean) / self.n
            return score

    made: list[JumpDetector] = []

    def factory() -> JumpDetector:
        made.append(JumpDetector())
        return made[-1]

    t0 = datetime(2024, 1, 1)
    ts = [t0 + timedelta(minutes=i) for i in range(40)]
    values = [1.0] * 40
    values[10] = 50.0
    corpus_ = [nab.Series(f"{k}.csv", ts, values, [(ts[10], ts[13])]) for k in "ab"]
    scores = nab.run_detector(factory, corpus_)
    assert len(made) == 2 and all(d.n == 40 for d in made)
    assert scores["a.csv"] == scores["b.csv"]
    assert [i for i, v in enumerate(scores["a.csv"]) if v] == [10]
    results = nab.evaluate_detector(factory, corpus_)
    assert set(results) == {p.name for p in nab.PROFILES}
    assert all(r.normalized == pytest.approx(100.0) for r in results.values())


def test_module_doctests() -> None:
    failures, tried = doctest.testmod(nab, raise_on_error=False)
    assert tried > 0 and failures == 0


# ---------------------------------------------------------------------------
# the real NAB corpus
# ---------------------------------------------------------------------------


def test_corpus_shape_and_profiles() -> None:
    c = corpus()
    assert len(c) == 58
    assert sum(len(x) for x in c) == 365_558
    assert sum(len(x.window_spans) for x in c) == 116
    assert nab.load_profiles(nab_dir() / "config" / "profiles.json") == {p.name: p for p in nab.PROFILES}


def test_reproduces_published_windowed_gaussian_scores() -> None:
    c = corpus()
    results = nab.nab_scores(windowed_gaussian_scores(), c)
    with open(nab_dir() / "reference" / "final_results.json") as fh:
        published = json.load(fh)["windowedGaussian"]
    for profile, expected in PUBLISHED_WINDOWED_GAUSSIAN.items():
        got = results[profile]
        assert got.normalized == pytest.approx(expected, abs=0.05), profile
        assert got.normalized == pytest.approx(published[profile], abs=0.05), profile
        assert got.threshold == 1.0
        assert sum(got.per_file.values()) == pytest.approx(got.raw, abs=1e-9)
        assert got.perfect == 116.0
    assert results["standard"].null == -116.0
    assert results["reward_low_FN_rate"].null == -232.0


def test_null_and_perfect_detectors_on_nab_corpus() -> None:
    c = corpus()
    null = {x.name: [0.0] * len(x) for x in c}
    perfect = {x.name: [0.0] * len(x) for x in c}
    for x in c:
        for start, _ in x.window_spans:
            perfect[x.name][start] = 1.0
    null_results = nab.nab_scores(null, c)
    perfect_results = nab.nab_scores(perfect, c)
    for profile in nab.PROFILES:
        assert null_results[profile.name].normalized == pytest.approx(0.0, abs=1e-9)
        assert perfect_results[profile.name].normalized == pytest.approx(100.0, abs=1e-9)
