"""Backtest on one series in NAB's format: a CSV of timestamp,value and its labelled windows.

The series goes through a univariate detector: ``SeriesDetector`` from
``frictionwatch.detectors.univariate`` when that module exists, else a ``MeanDetector``
with volume 1 per point. Each point the detector flags (``anomaly=True``) is a detection;
the NAB score of the file is computed at that fixed decision (no threshold sweep), for
each NAB cost profile, normalised between the detector that never fires (0) and the
perfect one (100). Alerts (runs of flagged points) are scored against the label windows
for precision and recall, leaving out NAB's probationary period.
"""

from __future__ import annotations

import csv
import importlib
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from frictionwatch.backtest.replay import BacktestInputError
from frictionwatch.detectors import nab
from frictionwatch.detectors.base import Detector, Observation, Verdict
from frictionwatch.detectors.volume import MeanDetector


@dataclass(slots=True)
class NabOutcome:
    """The result of a NAB-format backtest of one file."""

    name: str
    detector: str
    timestamps: list[datetime]
    values: list[float]
    windows: list[tuple[datetime, datetime]]
    verdicts: list[Verdict]
    probation: int
    scores: dict[str, dict[str, float]] = field(default_factory=dict)  # profile -> raw, null, perfect, normalized
    likelihood_scores: dict[str, float] = field(default_factory=dict)  # profile -> normalized, swept threshold
    alerts: list[tuple[float, float, bool]] = field(default_factory=list)  # start, end, true
    windows_detected: int = 0

    @property
    def scored_windows(self) -> int:
        cut = self.timestamps[self.probation] if self.probation < len(self.timestamps) else None
        return sum(1 for _, end in self.windows if cut is None or end >= cut)

    @property
    def precision(self) -> float | None:
        return sum(1 for *_, true in self.alerts if true) / len(self.alerts) if self.alerts else None

    @property
    def recall(self) -> float | None:
        scored = self.scored_windows
        return self.windows_detected / scored if scored else None

    def summary(self) -> dict[str, Any]:
        return {
            "file": self.name,
            "detector": self.detector,
            "rows": len(self.values),
            "probation_rows": self.probation,
            "label_windows": len(self.windows),
            "label_windows_scored": self.scored_windows,
            "label_windows_detected": self.windows_detected,
            "alerts": len(self.alerts),
            "true_alerts": sum(1 for *_, true in self.alerts if true),
            "precision": self.precision,
            "recall": self.recall,
            "nab": self.scores,
            "nab_likelihood_swept": self.likelihood_scores or None,
        }


def _epoch(moment: datetime) -> float:
    return (moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)).timestamp()


def read_series(path: Path) -> tuple[list[datetime], list[float]]:
    """timestamp,value rows; errors name the file and line."""
    timestamps: list[datetime] = []
    values: list[float] = []
    try:
        handle = open(path, newline="", encoding="utf-8")  # noqa: SIM115 - closed by with
    except OSError as error:
        raise BacktestInputError(f"{path}: cannot read: {error.strerror}") from None
    with handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or "timestamp" not in header or "value" not in header:
            raise BacktestInputError(f"{path}:1: expected a header with 'timestamp' and 'value' columns")
        t_col, v_col = header.index("timestamp"), header.index("value")
        for row in reader:
            if not row:
                continue
            line = reader.line_num
            try:
                moment = datetime.fromisoformat(row[t_col].strip())
                value = float(row[v_col])
            except (ValueError, IndexError):
                raise BacktestInputError(f"{path}:{line}: expected a timestamp and a number, got {row!r}") from None
            if not math.isfinite(value):
                raise BacktestInputError(f"{path}:{line}: value {row[v_col]!r} is not finite")
            if timestamps and moment < timestamps[-1]:
                raise BacktestInputError(f"{path}:{line}: timestamp {row[t_col]!r} goes back in time")
            timestamps.append(moment)
            values.append(value)
    if len(values) < 2:
        raise BacktestInputError(f"{path}: fewer than 2 rows")
    return timestamps, values


def read_windows(labels: Path, series: Path) -> list[tuple[datetime, datetime]]:
    """The label windows of ``series`` in a NAB ``combined_windows.json`` (keyed category/file.csv)."""
    try:
        doc = json.loads(labels.read_text(encoding="utf-8"))
    except OSError as error:
        raise BacktestInputError(f"{labels}: cannot read: {error.strerror}") from None
    except json.JSONDecodeError as error:
        raise BacktestInputError(f"{labels}:{error.lineno}: not JSON ({error.msg})") from None
    if not isinstance(doc, dict):
        raise BacktestInputError(f"{labels}: expected an object of file name -> windows")
    wanted = f"{series.parent.name}/{series.name}"
    key = wanted if wanted in doc else next((name for name in doc if Path(name).name == series.name), None)
    if key is None:
        raise BacktestInputError(f"{labels}: no windows for {wanted!r}")
    try:
        return [(datetime.fromisoformat(a), datetime.fromisoformat(b)) for a, b in doc[key]]
    except (ValueError, TypeError) as error:
        raise BacktestInputError(f"{labels}: windows of {key!r}: {error}") from None


def make_detector(threshold: float | None, consecutive: int | None) -> tuple[Detector, str]:
    """SeriesDetector when detectors/univariate.py provides it, else a MeanDetector."""
    options: dict[str, Any] = {"direction": "both"}
    if threshold is not None:
        options["threshold"] = threshold
    if consecutive is not None:
        options["consecutive"] = consecutive
    try:
        module = importlib.import_module("frictionwatch.detectors.univariate")
        factory = getattr(module, "SeriesDetector", None)
    except ImportError:
        factory = None
    if factory is not None:
        detector: Detector = factory(**options)
        return detector, "SeriesDetector"
    return MeanDetector(season="none", min_volume=0, **options), "MeanDetector"


def run_nab(
    series_path: str | Path,
    labels_path: str | Path | None,
    *,
    threshold: float | None = None,
    consecutive: int | None = None,
) -> NabOutcome:
    """Run the detector over one NAB file and score it."""
    path = Path(series_path)
    timestamps, values = read_series(path)
    windows = read_windows(Path(labels_path), path) if labels_path is not None else []
    label = f"{path.parent.name}/{path.name}"
    try:
        series = nab.Series(label, timestamps, values, windows)
    except ValueError as error:
        raise BacktestInputError(f"{labels_path}: {error}") from None
    detector, detector_name = make_detector(threshold, consecutive)
    verdicts: list[Verdict] = []
    likelihood: list[float] = []
    for moment, value in zip(timestamps, values, strict=True):
        verdicts.append(detector.update(Observation(_epoch(moment), value, 1.0)))
        found = getattr(detector, "likelihood", None)
        if isinstance(found, float) and 0.0 <= found <= 1.0:
            likelihood.append(found)
    outcome = NabOutcome(label, detector_name, timestamps, values, windows, verdicts, nab.probation_length(len(values)))
    flags = [1.0 if verdict.anomaly else 0.0 for verdict in verdicts]
    quiet = [0.0] * len(flags)
    if windows:
        for profile in nab.PROFILES:
            raw = nab.score_series(series, flags, profile, 0.5).score
            null = nab.score_series(series, quiet, profile, 0.5).score
            perfect = outcome.scored_windows * profile.tp_weight
            normalized = 100 * (raw - null) / (perfect - null) if perfect != null else math.nan
            outcome.scores[profile.name] = {"raw": raw, "null": null, "perfect": perfect, "normalized": normalized}
        if len(likelihood) == len(values):
            for name, result in nab.nab_scores({label: likelihood}, [series]).items():
                outcome.likelihood_scores[name] = result.normalized
    _score_alerts(outcome)
    return outcome


def _score_alerts(outcome: NabOutcome) -> None:
    spans = [(_epoch(a), _epoch(b)) for a, b in outcome.windows]
    detected: set[int] = set()
    start: float | None = None
    previous: float | None = None
    runs: list[tuple[float, float]] = []
    for index, verdict in enumerate(outcome.verdicts):
        if verdict.anomaly and index >= outcome.probation:
            if start is None:
                start = verdict.ts
            previous = verdict.ts
        elif start is not None and previous is not None:
            runs.append((start, previous))
            start = previous = None
    if start is not None and previous is not None:
        runs.append((start, previous))
    for run_start, run_end in runs:
        hit = next((i for i, (a, b) in enumerate(spans) if a <= run_start <= b), None)
        if hit is not None:
            detected.add(hit)
        outcome.alerts.append((run_start, run_end, hit is not None))
    outcome.windows_detected = len(detected)
