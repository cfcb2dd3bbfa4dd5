"""The oracle of the detection benchmark: a CUSUM that knows an incident's true before and after.

For one incident and one affected series (a touchpoint's metric), the oracle is given the
series' normal parameter before onset and the parameter during the incident, and runs
Page's CUSUM of their log-likelihood ratio over the same final windows the contenders see:

    S_0 = 0,   S_t = max(0, S_{t-1} + llr_t),   alarm at the first window with S_t >= h

starting with the first window that ends after onset. Its delay (alarm window's end minus
onset) is the best a detector can do on those windows at that false-alarm budget: for a
known change, CUSUM minimises the worst-case delay among tests with the same false-alarm
rate (Lorden 1971, Moustakides 1986).

Per-window log-likelihood ratios (the window's value ``x`` on volume ``n``):

* ratio metrics (conversion, flow, abandonment, service level, CSAT): binomial, ``k = x n``
  successes of ``n``: ``k ln(p1/p0) + (n - k) ln((1 - p1)/(1 - p0))``;
* counts per visit (errors, rage clicks): Poisson, ``k = x n`` events in ``n`` visits:
  ``k ln(l1/l0) - n (l1 - l0)``;
* waits (average speed of answer): normal on the log of the window's mean wait, with
  variance ``s^2 / n`` (``s^2`` per contact, estimated before onset);
* survey means (NPS, CES): normal on the window mean with variance ``s^2 / n``.

**Threshold from the false-alarm budget.** A budget of one false alarm per ``D`` days on a
series that has ``w`` windows a day is an in-control average run length ``ARL0 = D w``
windows. ``h`` solves Siegmund's approximation (Siegmund 1985, eq. 2.56; exact for a
normal mean shift up to the overshoot correction)::

    ARL0 = (exp(h') - h' - 1) / I0,     h' = h + 1.166 sqrt(2 I0)

where ``I0`` is the expected per-window Kullback-Leibler divergence of the before model from
the after model (the drift of the log-likelihood ratio under no change) and
``1.166 sqrt(2 I0)`` the expected overshoot of a normal random walk with that drift, used
for the other models through their normal equivalent. Where that overshoot would exceed
half the threshold (a window carries so much evidence that one can cross alone) the
approximation fails and ``h = ln ARL0`` (Lorden's bound ``ARL0 >= exp(h)``) is used. For a normal mean shift of ``d``
standard deviations this is the textbook formula for the standardised CUSUM with reference
``k = d/2`` and threshold ``h/d`` (``tests/test_oracle.py`` checks it against Montgomery's
table and a simulation).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from frictionwatch.detectors.budget import threshold_for

Model = Literal["binomial", "poisson", "lognormal", "normal"]
OVERSHOOT = 1.166  # 2 * 0.583: Siegmund's correction for a normal random walk, per unit of sqrt(2 I0)
EPSILON = 1e-4  # probabilities and rates are kept this far from 0 and 1
MIN_WAIT_SECONDS = 1.0  # waits below this are taken as this on the log scale

#: the likelihood model of each monitored metric (streams/series.py MONITORED)
MODELS: dict[str, Model] = {
    "early_flow_ratio": "binomial",
    "flow_ratio": "binomial",
    "step_conversion": "binomial",
    "dropoff_ratio": "binomial",
    "abandonment_ratio": "binomial",
    "service_level": "binomial",
    "csat": "binomial",
    "errors_per_visit": "poisson",
    "rage_clicks_per_visit": "poisson",
    "average_speed_of_answer": "lognormal",
    "nps": "normal",
    "ces": "normal",
}


@dataclass(frozen=True, slots=True)
class Parameters:
    """A series' parameter before onset and during the incident, as the oracle knows them.

    ``before`` and ``after`` are a probability (binomial), a rate per unit (poisson) or a
    mean (normal; log seconds for lognormal); ``unit_variance`` the per-unit variance of the
    normal models (unused by the others).
    """

    model: Model
    before: float
    after: float
    unit_variance: float = 1.0

    @property
    def relative_change(self) -> float:
        """after / before on the metric's own scale (waits: seconds)."""
        if self.model == "lognormal":
            return math.exp(self.after - self.before)
        return self.after / self.before if self.before else math.inf


def transform(model: Model, value: float) -> float:
    """A window's value on the scale the model works on (log seconds for waits)."""
    return math.log(max(value, MIN_WAIT_SECONDS)) if model == "lognormal" else value


def llr(parameters: Parameters, value: float, volume: float) -> float:
    """The log-likelihood ratio, after against before, of one window's ``value`` on ``volume``."""
    model, p0, p1 = parameters.model, parameters.before, parameters.after
    if model == "binomial":
        p0, p1 = _clip(p0, EPSILON, 1 - EPSILON), _clip(p1, EPSILON, 1 - EPSILON)
        k = _clip(value, 0.0, 1.0) * volume
        return k * math.log(p1 / p0) + (volume - k) * math.log((1 - p1) / (1 - p0))
    if model == "poisson":
        p0, p1 = max(p0, EPSILON), max(p1, EPSILON)
        k = max(value, 0.0) * volume
        return k * math.log(p1 / p0) - volume * (p1 - p0)
    x = transform(model, value)
    variance = parameters.unit_variance / volume
    return (p1 - p0) / variance * (x - (p0 + p1) / 2)


def divergence(parameters: Parameters, volume: float) -> float:
    """Expected per-window KL divergence of the before model from the after model (I0):
    minus the drift of :func:`llr` when nothing has changed."""
    model, p0, p1 = parameters.model, parameters.before, parameters.after
    if model == "binomial":
        p0, p1 = _clip(p0, EPSILON, 1 - EPSILON), _clip(p1, EPSILON, 1 - EPSILON)
        return volume * (p0 * math.log(p0 / p1) + (1 - p0) * math.log((1 - p0) / (1 - p1)))
    if model == "poisson":
        p0, p1 = max(p0, EPSILON), max(p1, EPSILON)
        return volume * (p0 * math.log(p0 / p1) - p0 + p1)
    return volume * (p1 - p0) ** 2 / (2 * parameters.unit_variance)


MAX_EXPONENT = 700.0  # exp() of more overflows a float


def siegmund_arl(h: float, i0: float) -> float:
    """In-control average run length (windows) of an LLR CUSUM with threshold ``h`` whose
    increments drift by ``-i0`` per window (Siegmund's approximation, module docstring)."""
    if i0 <= 0:
        return math.inf
    corrected = h + OVERSHOOT * math.sqrt(2 * i0)
    if corrected < 1e-6:
        return 1.0
    if corrected > MAX_EXPONENT:  # a window that says this much: beyond any budget (and exp's range)
        return math.inf
    return max(1.0, math.expm1(corrected) - corrected) / i0


def threshold(arl0: float, i0: float) -> float:
    """The CUSUM threshold ``h`` whose in-control ARL is ``arl0`` windows.

    Solves :func:`siegmund_arl` while its overshoot correction is at most half the corrected
    threshold (increments small against ``h``: where the approximation holds). Otherwise one
    window can cross alone and ``h = ln(arl0)``: Lorden's bound ``ARL0 >= exp(h)``, which
    holds for any LLR CUSUM (``E0[exp(llr)] = 1``) and is tight in that regime.
    """
    if i0 <= 0:
        return math.inf
    lorden = math.log(max(arl0, 1.0))
    if arl0 <= 1:
        return 0.0
    high = threshold_for(lambda h: siegmund_arl(h, i0), arl0, steps=80)
    overshoot = OVERSHOOT * math.sqrt(2 * i0)
    return high if overshoot <= (high + overshoot) / 2 else lorden


def cusum_alarm(
    parameters: Parameters, windows: Sequence[tuple[float, float, float]], h: float
) -> tuple[float | None, float]:
    """Run the CUSUM from 0 over ``windows`` (end ts, value, volume) in order; the end of the
    first window where it reaches ``h`` (None if none), and the largest statistic seen."""
    statistic = peak = 0.0
    for ts, value, volume in windows:
        if volume <= 0:
            continue
        statistic = max(0.0, statistic + llr(parameters, value, volume))
        peak = max(peak, statistic)
        if statistic >= h:
            return ts, peak
    return None, peak


def pooled(model: Model, windows: Sequence[tuple[float, float, float]]) -> tuple[float, float] | None:
    """The parameter pooled over ``windows`` (end ts, value, volume), weighted by volume,
    and the per-unit variance (normal models; 1 for the others). None without volume (or,
    for the normal models, with fewer than 3 windows to estimate a variance from)."""
    total = sum(volume for _, _, volume in windows if volume > 0)
    if total <= 0:
        return None
    mean = sum(transform(model, value) * volume for _, value, volume in windows if volume > 0) / total
    if model in ("binomial", "poisson"):
        return mean, 1.0
    used = [(transform(model, value), volume) for _, value, volume in windows if volume > 0]
    if len(used) < 3:
        return None
    variance = sum(volume * (x - mean) ** 2 for x, volume in used) / (len(used) - 1)
    return mean, max(variance, 1e-6)


def _clip(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)
