"""Score SeriesDetector on the Numenta Anomaly Benchmark, beside a Windowed Gaussian baseline.

    .venv/bin/python bench/nab.py [--nab-dir tests/data/nab] [--jobs 1]

Runs both detectors over all 58 files (a fresh detector per file, one parameter set),
scores them for NAB's three profiles with ``frictionwatch.detectors.nab`` and prints a
markdown table with the published scoreboard beside, plus the cost per update (the update
loop over the whole corpus, timed in each worker process, divided by the rows).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import date, datetime
from pathlib import Path
from typing import Any

from frictionwatch.detectors import nab
from frictionwatch.detectors.univariate import SeriesDetector

DEFAULT_NAB_DIR = Path(__file__).resolve().parents[1] / "tests" / "data" / "nab"

# Published NAB v1.1 scoreboard (standard, reward_low_FP_rate, reward_low_FN_rate).
SCOREBOARD: list[tuple[str, tuple[float, float, float]]] = [
    ("ARTime", (74.9, 65.1, 78.7)),
    ("Numenta HTM", (70.5, 62.6, 75.2)),
    ("CAD OSE", (69.9, 67.0, 73.2)),
    ("earthgecko Skyline", (58.2, 46.2, 63.9)),
    ("KNN CAD", (58.0, 43.4, 64.8)),
    ("Relative Entropy", (54.6, 47.6, 58.8)),
    ("Random Cut Forest", (51.7, 38.4, 59.7)),
    ("Twitter ADVec", (47.1, 33.6, 53.5)),
    ("Windowed Gaussian", (39.6, 20.9, 47.4)),
]
PROFILE_NAMES = [p.name for p in nab.PROFILES]


class WindowedGaussian:
    """NAB's windowedGaussian detector: ``1 - Q(|z|)`` against the last ``window`` values.

    As NAB's: the mean and deviation are re-estimated on every point until the window is
    full (here with running sums), then every ``step`` points (NAB's defaults: 6400, 100).
    """

    def __init__(self, window: int = 6400, step: int = 100) -> None:
        self.window = window
        self.step = step
        self.data: deque[float] = deque()
        self.step_buffer: list[float] = []
        self.total = 0.0
        self.total_sq = 0.0
        self.mean = 0.0
        self.sd = 1.0

    def score_one(self, timestamp: datetime, value: float) -> float:
        score = 0.0
        if self.data:
            z = abs(value - self.mean) / self.sd
            score = 1.0 - 0.5 * math.erfc(z / math.sqrt(2.0))
        if len(self.data) < self.window:
            self.data.append(value)
            self.total += value
            self.total_sq += value * value
            n = len(self.data)
            self.mean = self.total / n
            self._set_sd(self.total_sq / n - self.mean * self.mean)
        else:
            self.step_buffer.append(value)
            if len(self.step_buffer) == self.step:
                for _ in range(self.step):
                    self.data.popleft()
                self.data.extend(self.step_buffer)
                self.step_buffer.clear()
                n = len(self.data)
                self.mean = sum(self.data) / n
                self._set_sd(sum((x - self.mean) ** 2 for x in self.data) / n)
        return score

    def _set_sd(self, var: float) -> None:
        sd = math.sqrt(var) if var > 0.0 else 0.0
        self.sd = sd if sd > 0.0 else 0.000001


def _run_file(job: tuple[str, dict[str, Any], nab.Series]) -> tuple[str, list[float], float]:
    kind, params, series = job
    factory: Callable[[], nab.Detector] = (
        (lambda: SeriesDetector(**params)) if kind == "series" else (lambda: WindowedGaussian(**params))
    )
    detector = factory()
    score = detector.score_one
    t0 = time.perf_counter()
    out = [score(t, v) for t, v in zip(series.timestamps, series.values, strict=True)]
    return series.name, out, time.perf_counter() - t0


def run(
    kind: str, params: dict[str, Any], corpus: Sequence[nab.Series], jobs: int, progress: bool = True
) -> tuple[dict[str, list[float]], float]:
    """Anomaly scores per file and the total seconds spent in the update loops."""
    scores: dict[str, list[float]] = {}
    seconds = 0.0
    work = [(kind, params, s) for s in sorted(corpus, key=len, reverse=True)]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for i, (name, out, dt) in enumerate(pool.map(_run_file, work), 1):
            scores[name] = out
            seconds += dt
            if progress:
                print(f"  [{kind} {i:2d}/{len(work)}] {name} ({len(out)} rows, {dt:.2f} s)", file=sys.stderr)
    return scores, seconds


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--nab-dir", type=Path, default=Path(os.environ.get("FRICTIONWATCH_NAB_DIR", DEFAULT_NAB_DIR)))
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (default 1: cleanest timing)")
    args = parser.parse_args(argv)

    corpus = nab.load_corpus(args.nab_dir)
    rows = sum(len(s) for s in corpus)
    print(f"NAB corpus: {len(corpus)} files, {rows} rows, from {args.nab_dir}", file=sys.stderr)

    defaults = vars(SeriesDetector())
    params = {name: defaults[name] for name in _init_names()}
    results: dict[str, tuple[dict[str, nab.NabResult], float]] = {}
    empty: dict[str, Any] = {}
    for kind, label in (
        ("series", "SeriesDetector (this project, default parameters)"),
        ("gaussian", "Windowed Gaussian (baseline, this run)"),
    ):
        scores, seconds = run(kind, empty, corpus, args.jobs)
        results[label] = (nab.nab_scores(scores, corpus), seconds)

    print(
        f"\nNAB v1.1 corpus, normalised scores; {date.today().isoformat()}; "
        f"{os.cpu_count()} CPUs, {cpu_model()}; Python {platform.python_version()}\n"
    )
    print("| detector | standard | reward_low_FP_rate | reward_low_FN_rate | µs/update |")
    print("|---|---:|---:|---:|---:|")
    for label, (res, seconds) in results.items():
        cells = " | ".join(f"**{res[p].normalized:.1f}**" for p in PROFILE_NAMES)
        print(f"| {label} | {cells} | {1e6 * seconds / rows:.1f} |")
    for name, (std, fp, fn) in SCOREBOARD:
        print(f"| {name} (published) | {std:.1f} | {fp:.1f} | {fn:.1f} | |")
    print("\nSeriesDetector parameters: " + ", ".join(f"{k}={v!r}" for k, v in params.items()))
    return 0


def _init_names() -> list[str]:
    code = SeriesDetector.__init__.__code__
    return list(code.co_varnames[1 : code.co_argcount + code.co_kwonlyargcount])


if __name__ == "__main__":
    raise SystemExit(main())
