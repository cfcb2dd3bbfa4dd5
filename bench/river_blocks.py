"""River's building blocks against the hand-written ones in detectors/, and what river detectors cost.

    python -m bench.river_blocks            # ~1 min on a 2-core machine
    python -m bench.river_blocks --quick    # smaller sizes

Four parts, each printed as a table with the machine and the load at the start:

1. **EW mean and variance** (SeriesDetector's global model, the volume detectors' level and
   spread): the hand-written update (``mean += a r; var = (1 - a)(var + a r^2)``, r the
   residual) against ``river.stats.EWMean`` + ``river.stats.EWVar`` (Rust): microseconds per
   update, and the relative error of the variance on N(offset, 1) data, against the same
   statistic computed on the data minus the offset (both are shift-invariant in exact
   arithmetic, so any difference is rounding).
2. **Gaussian upper tail** (NAB likelihood, ``0.5 erfc(z / sqrt 2)``) against
   ``river.proba.Gaussian``'s ``1 - cdf``: -log10 of the tail at several z, and cost per call.
3. **Rolling mean and variance** of the last 2,000 raw scores (running sums) against
   ``river.utils.Rolling(river.stats.Var(), 2000)``.
4. **What a river detector costs** per window behind :class:`RiverDetector`, next to the
   project's detectors: microseconds per window (volume 50 sessions) and checkpoint bytes.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

import orjson
from river import proba, stats, utils

from bench.common import machine, machine_line
from frictionwatch.detectors.base import Detector, Observation
from frictionwatch.detectors.river_adapter import RiverDetector
from frictionwatch.detectors.univariate import SeriesDetector
from frictionwatch.detectors.volume import MeanDetector, RatioDetector

SQRT2 = math.sqrt(2.0)


def best_of(runs: int, job: Callable[[], int]) -> float:
    """Microseconds per item of the fastest of ``runs`` runs (``job`` returns its item count)."""
    best = math.inf
    for _ in range(runs):
        start = time.perf_counter()
        count = job()
        best = min(best, (time.perf_counter() - start) / count * 1e6)
    return best


# -- 1. EW mean and variance -------------------------------------------------------------------------


def hand_ew(xs: list[float], alpha: float) -> tuple[float, float]:
    """The detectors' EW mean and variance (West's update), started on the first value."""
    mean, var = xs[0], 0.0
    for x in xs[1:]:
        r = x - mean
        mean += alpha * r
        var = (1.0 - alpha) * (var + alpha * r * r)
    return mean, var


def _items(job: Callable[[list[float], float], object], xs: list[float], alpha: float, n: int) -> int:
    """Run ``job(xs, alpha)``; ``n``, the items it handled (what :func:`best_of` divides by)."""
    job(xs, alpha)
    return n


def river_ew(xs: list[float], alpha: float) -> tuple[float, float]:
    mean, var = stats.EWMean(alpha), stats.EWVar(alpha)
    for x in xs:
        mean.update(x)
        var.update(x)
    return mean.get(), var.get()


def ew_part(n: int, runs: int) -> None:
    rng = random.Random(1)
    noise = [rng.gauss(0.0, 1.0) for _ in range(n)]
    print("\n1. EW mean + variance, per update (alpha 0.003 and 0.05)")
    for alpha in (0.003, 0.05):
        hand = best_of(runs, partial(_items, hand_ew, noise, alpha, n))
        river = best_of(runs, partial(_items, river_ew, noise, alpha, n))
        ratio = river / hand
        print(f"   alpha {alpha:<6} hand-written {hand:6.3f} µs   river EWMean+EWVar {river:6.3f} µs   ({ratio:.1f}x)")
    print("   relative error of the variance on N(offset, 1), alpha 0.003, vs the same on data - offset:")
    print(f"   {'offset':>8} {'hand-written':>14} {'river':>14}   {'hand vs river at offset 0':>26}")
    hand_ref, river_ref = hand_ew(noise, 0.003)[1], river_ew(noise, 0.003)[1]
    for offset in (0.0, 1e3, 1e6, 1e8, 1e10):
        xs = [offset + x for x in noise]
        hand_err = abs(hand_ew(xs, 0.003)[1] - hand_ref) / hand_ref
        river_err = abs(river_ew(xs, 0.003)[1] - river_ref) / river_ref
        agree = abs(hand_ref - river_ref) / hand_ref if offset == 0 else math.nan
        print(f"   {offset:>8.0e} {hand_err:>14.2e} {river_err:>14.2e}   {agree:>26.2e}")


# -- 2. Gaussian tail ----------------------------------------------------------------------------------


def gaussian_part(n: int, runs: int) -> None:
    print("\n2. Gaussian upper tail P(Z > z): -log10, and cost per call")
    gaussian: Any = proba.Gaussian()  # type: ignore[no-untyped-call]  # river's classes carry no hints
    for x in (-1.0, 1.0):
        gaussian.update(x)  # mean 0, sd 1.414 (ddof 1): scale z accordingly
    sd = gaussian.sigma
    print(f"   {'z':>5} {'hand 0.5 erfc':>15} {'river 1 - cdf':>15}")
    for z in (3.0, 6.0, 8.0, 9.0, 12.0, 20.0, 37.0):
        hand = 0.5 * math.erfc(z / SQRT2)
        river = 1.0 - gaussian.cdf(z * sd)
        shown = [f"{-math.log10(p):15.2f}" if p > 0 else f"{'inf (tail = 0)':>15}" for p in (hand, river)]
        print(f"   {z:>5.0f} {shown[0]} {shown[1]}")
    zs = [random.Random(2).uniform(0.0, 6.0) for _ in range(n)]

    def hand_job() -> int:
        for z in zs:
            0.5 * math.erfc(z / SQRT2)
        return n

    def river_job() -> int:
        for z in zs:
            1.0 - gaussian.cdf(z)
        return n

    hand, river = best_of(runs, hand_job), best_of(runs, river_job)
    print(f"   per call: hand-written {hand:.3f} µs, river {river:.3f} µs ({river / hand:.1f}x)")


# -- 3. Rolling mean and variance -----------------------------------------------------------------------


def rolling_part(n: int, runs: int, window: int = 2000) -> None:
    rng = random.Random(3)
    xs = [abs(rng.gauss(0.0, 1.0)) for _ in range(n)]

    def hand_job() -> int:
        hist: deque[float] = deque()
        total = squares = 0.0
        for x in xs:
            hist.append(x)
            total += x
            squares += x * x
            if len(hist) > window:
                old = hist.popleft()
                total -= old
                squares -= old * old
            mean = total / len(hist)
            squares / len(hist) - mean * mean
        return n

    def river_job() -> int:
        rolling: Any = utils.Rolling(stats.Var, window_size=window, ddof=0)
        for x in xs:
            rolling.update(x)
            rolling.get()
        return n

    hand, river = best_of(runs, hand_job), best_of(runs, river_job)
    tail = xs[-window:]
    rolling: Any = utils.Rolling(stats.Var, window_size=window, ddof=0)
    for x in xs:
        rolling.update(x)
    exact = statistics.pvariance(tail)
    total, squares = sum(tail), sum(x * x for x in tail)
    hand_var = squares / window - (total / window) ** 2
    print(f"\n3. Rolling mean + variance of the last {window:,} values, per update")
    print(f"   hand-written running sums {hand:.3f} µs, river Rolling(Var) {river:.3f} µs ({river / hand:.1f}x)")
    print(
        f"   variance error after {n:,} values: hand-written {abs(hand_var - exact) / exact:.1e}, "
        f"river {abs(rolling.get() - exact) / exact:.1e}"
    )


# -- 4. Detectors -------------------------------------------------------------------------------------


HOLT_WINTERS = {
    "kind": "river.time_series.HoltWinters",
    "params": {"alpha": 0.3, "beta": 0.01, "gamma": 0.3, "seasonality": 60},
}
CONTENDERS: list[tuple[str, Callable[[], Detector]]] = [
    ("RatioDetector", lambda: RatioDetector(direction="down")),
    ("MeanDetector", lambda: MeanDetector(direction="up")),
    ("SeriesDetector", lambda: SeriesDetector(direction="up")),
    ("river.PageHinkley", lambda: RiverDetector("river.PageHinkley", {"threshold": 0.5}, direction="down")),
    ("river.ADWIN (clock 1)", lambda: RiverDetector("river.ADWIN", {"clock": 1}, direction="down")),
    ("river.KSWIN", lambda: RiverDetector("river.KSWIN", {"seed": 1}, direction="down")),
    ("river.DDM (50 outcomes)", lambda: RiverDetector("river.DDM", direction="down")),
    ("river.HDDMA (50 outcomes)", lambda: RiverDetector("river.HDDMA", direction="down")),
    ("river.HDDMW (50 outcomes)", lambda: RiverDetector("river.HDDMW", direction="down")),
    ("river.GaussianScorer", lambda: RiverDetector("river.GaussianScorer", {"window_size": 500}, direction="down")),
    (
        "river.PredictiveAnomalyDetection",
        lambda: RiverDetector("river.PredictiveAnomalyDetection", {"predictive_model": HOLT_WINTERS}, direction="down"),
    ),
]


def detector_part(n: int, runs: int) -> None:
    rng = random.Random(4)
    windows = [Observation(60.0 * i, sum(rng.random() < 0.8 for _ in range(50)) / 50, 50.0) for i in range(n)]
    print(f"\n4. Detectors, per window (a ratio from 50 sessions, {n:,} windows), and checkpoint size")
    print(f"   {'detector':34} {'µs/window':>10} {'state bytes':>12}")
    for name, make in CONTENDERS:
        holder: list[Detector] = []

        def job(make: Callable[[], Detector] = make, holder: list[Detector] = holder) -> int:
            detector = make()
            for window in windows:
                detector.update(window)
            holder[:] = [detector]
            return n

        cost = best_of(runs, job)
        size = len(orjson.dumps(holder[0].state()))
        print(f"   {name:34} {cost:>10.1f} {size:>12,}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.river_blocks", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes: a smoke test")
    args = parser.parse_args(argv)
    size, runs = (20_000, 1) if args.quick else (200_000, 3)
    info = machine()
    print(f"river building blocks, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"machine: {machine_line(info)}; load at start {info['load_average_at_start'][0]:.2f}")
    ew_part(size, runs)
    gaussian_part(size, runs)
    rolling_part(size, runs)
    detector_part(size // 40, runs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
