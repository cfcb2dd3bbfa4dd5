"""Numenta Anomaly Benchmark (NAB) scoring, in pure Python.

This is a dependency-free re-implementation of the scoring used by NAB
(``numenta/NAB``: ``nab/sweeper.py``, ``nab/optimizer.py``, ``nab/scorer.py``,
``nab/runner.py``, ``nab/util.py``).  Given per-row anomaly scores in
``[0, 1]`` for every file of the corpus it reproduces the published NAB
scoreboard numbers.

How NAB scores a detector
-------------------------
* Each file carries labelled *anomaly windows* (``combined_windows.json``).
* The first ``min(floor(0.15 * n), 750)`` rows of a file are the *probationary
  period*: detections there are ignored (see :func:`probation_length`).
* A row is a *detection* when its anomaly score is ``>= threshold``.
* Only the earliest detection inside a window counts.  It earns
  ``tp_weight * scaled_sigmoid(position) / scaled_sigmoid(-1)`` where
  ``position = -(end - i + 1) / width``, so a detection on the first row of a
  window is worth exactly ``tp_weight`` and later ones are worth less.
* A window without any detection costs ``-fn_weight``.
* Every detection outside a window costs ``fp_weight * scaled_sigmoid(p)``
  where ``p = |end_prev - i| / (width_prev - 1)`` is measured from the end of
  the preceding window (so the sigmoid is negative), or exactly
  ``-fp_weight`` when no window precedes it.
* One threshold is chosen for the whole corpus per cost profile: NAB's
  sweeper sorts all scorable rows by anomaly score and sweeps the threshold
  downwards, keeping the best total (:func:`optimize_threshold`).
* The raw total is normalised as ``100 * (raw - null) / (perfect - null)``
  where *null* is the detector that never detects (every window is a false
  negative) and *perfect* detects every window on its first row
  (``n_windows * tp_weight``).

Example
-------
A 20-row toy series with one window on rows 8..11, detected on its first row:

>>> from datetime import datetime, timedelta
>>> t0 = datetime(2024, 1, 1)
>>> ts = [t0 + timedelta(minutes=i) for i in range(20)]
>>> toy = Series("toy.csv", ts, [0.0] * 20, [(ts[8], ts[11])])
>>> scores = [0.0] * 20
>>> scores[8] = 1.0
>>> result = nab_score({"toy.csv": scores}, [toy], STANDARD)
>>> result.threshold, result.raw, result.null, result.perfect
(1.0, 1.0, -1.0, 1.0)
>>> result.normalized
100.0
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import NamedTuple, Protocol

__all__ = [
    "NO_DETECTION_THRESHOLD",
    "PROBATION_PERCENT",
    "PROFILES",
    "REWARD_LOW_FN_RATE",
    "REWARD_LOW_FP_RATE",
    "STANDARD",
    "CostProfile",
    "Detector",
    "NabResult",
    "Series",
    "SeriesScore",
    "ThresholdScore",
    "evaluate_detector",
    "load_corpus",
    "load_profiles",
    "nab_score",
    "nab_scores",
    "optimize_threshold",
    "probation_length",
    "run_detector",
    "scaled_sigmoid",
    "score_series",
    "sweep",
]

PROBATION_PERCENT = 0.15
"""Fraction of each file that is ignored by the scorer (NAB default)."""

NO_DETECTION_THRESHOLD = 1.1
"""NAB's sweep starts above every score in ``[0, 1]``: nothing is detected."""


# ---------------------------------------------------------------------------
# Cost profiles
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CostProfile:
    """Weights of one NAB application profile (``config/profiles.json``).

    ``tn_weight`` is carried for completeness; NAB's scorer never uses it.
    """

    name: str
    tp_weight: float
    fp_weight: float
    fn_weight: float
    tn_weight: float = 1.0


STANDARD = CostProfile("standard", tp_weight=1.0, fp_weight=0.11, fn_weight=1.0)
REWARD_LOW_FP_RATE = CostProfile("reward_low_FP_rate", tp_weight=1.0, fp_weight=0.22, fn_weight=1.0)
REWARD_LOW_FN_RATE = CostProfile("reward_low_FN_rate", tp_weight=1.0, fp_weight=0.11, fn_weight=2.0)
PROFILES: tuple[CostProfile, ...] = (STANDARD, REWARD_LOW_FP_RATE, REWARD_LOW_FN_RATE)
"""The three NAB profiles, identical to NAB's ``config/profiles.json``."""


def load_profiles(path: str | os.PathLike[str]) -> dict[str, CostProfile]:
    """Read a NAB ``profiles.json`` file into :class:`CostProfile` objects."""
    with open(path, encoding="utf-8") as fh:
        raw = json.load(fh)
    profiles: dict[str, CostProfile] = {}
    for name, spec in raw.items():
        cm = spec["CostMatrix"]
        profiles[name] = CostProfile(
            name=name,
            tp_weight=float(cm["tpWeight"]),
            fp_weight=float(cm["fpWeight"]),
            fn_weight=float(cm["fnWeight"]),
            tn_weight=float(cm.get("tnWeight", 1.0)),
        )
    return profiles


# ---------------------------------------------------------------------------
# Weighting primitives
# ---------------------------------------------------------------------------


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def scaled_sigmoid(relative_position: float) -> float:
    """NAB's scaled sigmoid ``2 * sigmoid(-5 * x) - 1`` (``-1`` beyond ``x > 3``).

    ``x = -1`` is the left edge of a window, ``x = 0`` its right edge and
    positive positions lie after the window (false positives).

    >>> round(scaled_sigmoid(-1.0), 5), round(scaled_sigmoid(-0.5), 5)
    (0.98661, 0.84828)
    >>> scaled_sigmoid(0.0), round(scaled_sigmoid(1.0), 5), scaled_sigmoid(3.5)
    (0.0, -0.98661, -1.0)
    """
    if relative_position > 3.0:
        return -1.0
    return 2 * _sigmoid(-5 * relative_position) - 1.0


_MAX_TP = scaled_sigmoid(-1.0)

# NAB divides by ``width - 1`` when weighting a false positive after a window,
# which is a ZeroDivisionError for one-row windows.  We use the relative
# position 2.0 there, as NAB's pre-sweeper ``Scorer`` did.
_ONE_ROW_WINDOW_FP_POSITION = 2.0


def probation_length(n_rows: int, probation_percent: float = PROBATION_PERCENT) -> int:
    """Number of leading rows whose detections NAB ignores.

    NAB uses ``min(floor(p * n), p * 5000)`` and scores rows with index
    ``>= `` that value, i.e. ``min(floor(0.15 * n), 750)`` rows by default.

    >>> probation_length(1000), probation_length(4032), probation_length(22695)
    (150, 604, 750)
    """
    if not 0.0 <= probation_percent <= 1.0:
        raise ValueError(f"probation_percent must be in [0, 1], got {probation_percent}")
    limit = min(math.floor(probation_percent * n_rows), probation_percent * 5000)
    return math.ceil(limit)


# ---------------------------------------------------------------------------
# Corpus
# ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Series:
    """One corpus file: timestamps, values and its labelled anomaly windows.

    ``windows`` are inclusive ``(start, end)`` timestamps that must occur in
    ``timestamps``, be sorted and must not overlap (as in NAB's labels).
    ``window_spans`` holds the same windows as inclusive row indices.
    """

    name: str
    timestamps: Sequence[datetime]
    values: Sequence[float]
    windows: Sequence[tuple[datetime, datetime]] = ()
    window_spans: tuple[tuple[int, int], ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "timestamps", tuple(self.timestamps))
        object.__setattr__(self, "values", tuple(self.values))
        object.__setattr__(self, "windows", tuple((a, b) for a, b in self.windows))
        if len(self.timestamps) != len(self.values):
            raise ValueError(f"{self.name}: {len(self.timestamps)} timestamps but {len(self.values)} values")
        object.__setattr__(self, "window_spans", self._locate_windows())

    def __len__(self) -> int:
        return len(self.timestamps)

    def _locate_windows(self) -> tuple[tuple[int, int], ...]:
        first_index: dict[datetime, int] = {}
        for i, t in enumerate(self.timestamps):
            first_index.setdefault(t, i)
        spans: list[tuple[int, int]] = []
        for start, end in self.windows:
            try:
                s, e = first_index[start], first_index[end]
            except KeyError as exc:
                raise ValueError(f"{self.name}: window limit {exc.args[0]} is not a timestamp of the series") from None
            if e < s:
                raise ValueError(f"{self.name}: window ({start}, {end}) ends before it starts")
            if spans and s <= spans[-1][1]:
                raise ValueError(f"{self.name}: windows must be sorted and non-overlapping")
            spans.append((s, e))
        return tuple(spans)

    @cached_property
    def _layout(self) -> tuple[list[int], list[float]]:
        """Per row: local window index (-1 outside) and unweighted NAB score.

        Mirrors ``Sweeper.calcSweepScore``: inside a window the score is
        ``scaled_sigmoid(-(end - i + 1) / width)``; outside it is measured from
        the end of the preceding window, or ``-1.0`` before the first window.
        """
        n = len(self.timestamps)
        window_of = [-1] * n
        unweighted = [0.0] * n
        prev_end: int | None = None
        prev_width = 0

        def fill_outside(lo: int, hi: int) -> None:
            for j in range(lo, hi):
                if prev_end is None:
                    unweighted[j] = -1.0
                elif prev_width == 1:
                    unweighted[j] = scaled_sigmoid(_ONE_ROW_WINDOW_FP_POSITION)
                else:
                    unweighted[j] = scaled_sigmoid(abs(prev_end - j) / float(prev_width - 1))

        row = 0
        for w, (s, e) in enumerate(self.window_spans):
            fill_outside(row, s)
            width = float(e - s + 1)
            for j in range(s, e + 1):
                window_of[j] = w
                unweighted[j] = scaled_sigmoid(-(e - j + 1) / width)
            prev_end, prev_width = e, e - s + 1
            row = e + 1
        fill_outside(row, n)
        return window_of, unweighted


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.strip())


def _read_series_csv(path: Path) -> tuple[list[datetime], list[float]]:
    timestamps: list[datetime] = []
    values: list[float] = []
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        try:
            t_col, v_col = header.index("timestamp"), header.index("value")
        except ValueError:
            raise ValueError(f"{path}: expected 'timestamp' and 'value' columns") from None
        for row in reader:
            if not row:
                continue
            timestamps.append(_parse_time(row[t_col]))
            values.append(float(row[v_col]))
    return timestamps, values


def load_corpus(
    root: str | os.PathLike[str],
    windows_file: str = "labels/combined_windows.json",
) -> list[Series]:
    """Load a NAB corpus laid out as ``<root>/data/<category>/<file>.csv``.

    Every file named in ``<root>/<windows_file>`` is loaded (an empty window
    list means "no anomalies").  Series are named by their path relative to
    ``data/`` (e.g. ``"realKnownCause/nyc_taxi.csv"``) and returned sorted.
    """
    base = Path(root)
    with open(base / windows_file, encoding="utf-8") as fh:
        labels: dict[str, list[list[str]]] = json.load(fh)
    corpus: list[Series] = []
    for name in sorted(labels):
        timestamps, values = _read_series_csv(base / "data" / name)
        windows = [(_parse_time(a), _parse_time(b)) for a, b in labels[name]]
        corpus.append(Series(name, timestamps, values, windows))
    return corpus


# ---------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------


class ThresholdScore(NamedTuple):
    """Raw NAB score and row counts when rows with ``score >= threshold`` fire."""

    threshold: float
    score: float
    tp: int
    tn: int
    fp: int
    fn: int


class SeriesScore(NamedTuple):
    """Raw NAB score of one file at a fixed threshold (NAB ``scoreDataSet``)."""

    name: str
    score: float
    tp: int
    tn: int
    fp: int
    fn: int


@dataclass(frozen=True)
class NabResult:
    """Corpus score of one detector for one profile.

    ``raw`` is the best total found by the threshold sweep, ``null`` and
    ``perfect`` the totals of the never-detecting and the ideal detector and
    ``normalized = 100 * (raw - null) / (perfect - null)``.  ``per_file``
    holds each file's raw score at ``threshold``.
    """

    profile: CostProfile
    threshold: float
    raw: float
    null: float
    perfect: float
    normalized: float
    tp: int
    tn: int
    fp: int
    fn: int
    per_file: Mapping[str, float]


def _check_scores(name: str, scores: Sequence[float], n_rows: int) -> None:
    if len(scores) != n_rows:
        raise ValueError(f"{name}: {len(scores)} anomaly scores for {n_rows} rows")
    for i, s in enumerate(scores):
        if not 0.0 <= s <= 1.0:  # also rejects NaN
            raise ValueError(f"{name}: anomaly score {s!r} at row {i} is not in [0, 1]")


def score_series(
    series: Series,
    scores: Sequence[float],
    profile: CostProfile,
    threshold: float,
    probation_percent: float = PROBATION_PERCENT,
) -> SeriesScore:
    """Raw NAB score of one file when rows with ``score >= threshold`` fire.

    Counts are per row, after the probationary period, as in NAB.
    """
    _check_scores(series.name, scores, len(series))
    window_of, unweighted = series._layout
    start = probation_length(len(series), probation_percent)
    parts: dict[int, float] = {}
    for i in range(start, len(series)):
        if window_of[i] >= 0:
            parts.setdefault(window_of[i], -profile.fn_weight)
    fp_total = 0.0
    tp = tn = fp = fn = 0
    for i in range(start, len(series)):
        w = window_of[i]
        detected = scores[i] >= threshold
        if w < 0:
            if detected:
                fp += 1
                fp_total += unweighted[i] * profile.fp_weight
            else:
                tn += 1
        elif detected:
            tp += 1
            parts[w] = max(parts[w], unweighted[i] * profile.tp_weight / _MAX_TP)
        else:
            fn += 1
    return SeriesScore(series.name, fp_total + sum(parts.values()), tp, tn, fp, fn)


@dataclass(frozen=True)
class _Pool:
    """All scorable rows of a corpus, ready to be swept for any profile."""

    scores: list[float]
    keys: list[int]  # corpus-wide window id, -1 outside any window
    unweighted: list[float]
    order: list[int]  # row indices by decreasing anomaly score (stable)
    scored_windows: list[int]  # windows with at least one scorable row
    n_windows: int  # all labelled windows, including ones lost to probation


def _pool(
    scores_by_file: Mapping[str, Sequence[float]],
    corpus: Sequence[Series],
    probation_percent: float,
) -> _Pool:
    scores: list[float] = []
    keys: list[int] = []
    unweighted: list[float] = []
    scored: set[int] = set()
    offset = 0
    for series in corpus:
        if series.name not in scores_by_file:
            raise ValueError(f"no anomaly scores for corpus file {series.name!r}")
        file_scores = scores_by_file[series.name]
        _check_scores(series.name, file_scores, len(series))
        window_of, row_weights = series._layout
        start = probation_length(len(series), probation_percent)
        scores.extend(file_scores[start:])
        unweighted.extend(row_weights[start:])
        for w in window_of[start:]:
            if w >= 0:
                keys.append(w + offset)
                scored.add(w + offset)
            else:
                keys.append(-1)
        offset += len(series.window_spans)
    order = sorted(range(len(scores)), key=scores.__getitem__, reverse=True)
    return _Pool(scores, keys, unweighted, order, sorted(scored), offset)


def _sweep(pool: _Pool, profile: CostProfile) -> list[ThresholdScore]:
    """NAB ``Sweeper.calcScoreByThreshold`` with a running total."""
    tp_w, fp_w, fn_w = profile.tp_weight, profile.fp_weight, profile.fn_weight
    scores, keys, unweighted = pool.scores, pool.keys, pool.unweighted
    best = [-fn_w] * pool.n_windows
    window_total = -fn_w * len(pool.scored_windows)
    fp_total = 0.0
    fn = sum(1 for k in keys if k >= 0)
    tn = len(keys) - fn
    tp = fp = 0
    threshold = NO_DETECTION_THRESHOLD
    curve: list[ThresholdScore] = []
    for i in pool.order:
        s = scores[i]
        if s != threshold:
            curve.append(ThresholdScore(threshold, fp_total + window_total, tp, tn, fp, fn))
            threshold = s
        k = keys[i]
        if k < 0:
            fp += 1
            tn -= 1
            fp_total += unweighted[i] * fp_w
        else:
            tp += 1
            fn -= 1
            weighted = unweighted[i] * tp_w / _MAX_TP
            if weighted > best[k]:
                window_total += weighted - best[k]
                best[k] = weighted
    curve.append(ThresholdScore(threshold, fp_total + window_total, tp, tn, fp, fn))
    return curve


def _best(curve: Sequence[ThresholdScore]) -> ThresholdScore:
    # NAB sorts by score (stable, descending) and takes the first: on ties the
    # highest threshold wins.
    best = curve[0]
    for entry in curve[1:]:
        if entry.score > best.score:
            best = entry
    return best


def sweep(
    scores_by_file: Mapping[str, Sequence[float]],
    corpus: Sequence[Series],
    profile: CostProfile,
    probation_percent: float = PROBATION_PERCENT,
) -> list[ThresholdScore]:
    """Corpus score for every candidate threshold, highest threshold first.

    The first entry (threshold 1.1) detects nothing; each further entry uses
    one distinct anomaly score of the corpus as threshold.
    """
    return _sweep(_pool(scores_by_file, corpus, probation_percent), profile)


def optimize_threshold(
    scores_by_file: Mapping[str, Sequence[float]],
    corpus: Sequence[Series],
    profile: CostProfile,
    probation_percent: float = PROBATION_PERCENT,
) -> ThresholdScore:
    """The single corpus-wide threshold maximising the total raw score.

    Ties go to the highest threshold, as in NAB's optimizer.
    """
    return _best(sweep(scores_by_file, corpus, profile, probation_percent))


def nab_scores(
    scores_by_file: Mapping[str, Sequence[float]],
    corpus: Sequence[Series],
    profiles: Iterable[CostProfile] = PROFILES,
    probation_percent: float = PROBATION_PERCENT,
) -> dict[str, NabResult]:
    """Optimise, score and normalise one detector for several profiles.

    ``scores_by_file`` maps each corpus file name to one anomaly score in
    ``[0, 1]`` per row.  Returns a :class:`NabResult` per profile name.
    """
    pool = _pool(scores_by_file, corpus, probation_percent)
    results: dict[str, NabResult] = {}
    for profile in profiles:
        curve = _sweep(pool, profile)
        best = _best(curve)
        null = curve[0].score  # threshold 1.1: nothing detected
        perfect = pool.n_windows * profile.tp_weight
        if perfect == null:
            raise ValueError("corpus has no scorable anomaly window; cannot normalise")
        per_file = {
            s.name: score_series(s, scores_by_file[s.name], profile, best.threshold, probation_percent).score
            for s in corpus
        }
        results[profile.name] = NabResult(
            profile=profile,
            threshold=best.threshold,
            raw=best.score,
            null=null,
            perfect=perfect,
            normalized=100 * (best.score - null) / (perfect - null),
            tp=best.tp,
            tn=best.tn,
            fp=best.fp,
            fn=best.fn,
            per_file=per_file,
        )
    return results


def nab_score(
    scores_by_file: Mapping[str, Sequence[float]],
    corpus: Sequence[Series],
    profile: CostProfile,
    probation_percent: float = PROBATION_PERCENT,
) -> NabResult:
    """NAB result (threshold, raw and normalised score) for one profile."""
    return nab_scores(scores_by_file, corpus, (profile,), probation_percent)[profile.name]


# ---------------------------------------------------------------------------
# Running streaming detectors
# ---------------------------------------------------------------------------


class Detector(Protocol):
    """A streaming detector: sees one point at a time, never the future."""

    def score_one(self, timestamp: datetime, value: float) -> float:
        """Anomaly score in ``[0, 1]`` of this point given the past."""
        ...


def run_detector(factory: Callable[[], Detector], corpus: Sequence[Series]) -> dict[str, list[float]]:
    """Anomaly scores of a fresh detector (``factory()``) on every file."""
    out: dict[str, list[float]] = {}
    for series in corpus:
        detector = factory()
        out[series.name] = [
            float(detector.score_one(t, v)) for t, v in zip(series.timestamps, series.values, strict=True)
        ]
    return out


def evaluate_detector(
    factory: Callable[[], Detector],
    corpus: Sequence[Series],
    profiles: Iterable[CostProfile] = PROFILES,
    probation_percent: float = PROBATION_PERCENT,
) -> dict[str, NabResult]:
    """Run a detector over the corpus and score it for each profile.

    ``factory`` is called once per file, so every file gets a fresh detector
    with the same parameters.  The normalised NAB score of a profile is
    ``result[profile_name].normalized``.
    """
    return nab_scores(run_detector(factory, corpus), corpus, profiles, probation_percent)
