"""Online anomaly detection for one univariate series without volume.

:class:`SeriesDetector` watches a latency, a count or a score, one closed window at a
time, and implements the :class:`~frictionwatch.detectors.base.Detector` protocol. Per
observation it keeps, in O(1) time and memory:

* a **global model**: an exponentially weighted (EW) mean and variance of the value;
* a **daily model**: Holt-Winters style, an EW level of the deseasonalised value plus an
  EW offset per time-of-day slot (keyed by ``ts``); it is only used once it has seen
  ``season_days`` days and its EW squared error beats the global model's (series without
  a daily cycle keep the global model);
* the EW variance of the **first difference** (catches sudden jumps the level absorbs).

The verdict's ``score`` is the residual of the chosen model in standard deviations, in the
bad ``direction``. Points beyond ``threshold`` still teach the model, at ``anomaly_rate``
times the normal rate, and the variance learns from residuals clipped at ``clip``
deviations. A level shift that lasts ``relearn_after`` anomalous points in the same
direction is taken as the new normal: the level jumps to the mean of that run, so alerts
stop instead of firing forever or freezing the model (river's filters, which skip learning
on flagged points, would freeze it).

For the Numenta Anomaly Benchmark, :meth:`SeriesDetector.score_one` turns a raw score (the
larger of the level and the difference z-scores) into NAB's *anomaly likelihood*: the
Gaussian tail probability of the mean of the last ``short_window`` raw scores against the
mean and deviation of the last ``history`` raw scores, mapped to ``[0, 1]``. A value
beyond the range seen so far by more than ``spatial_tol`` of that range scores 1 (as NAB's
HTM detector does). After a score of ``suppress_level`` or more, the next ``suppress``
scores are damped (NAB rewards the first detection in a window and charges every later one
outside it). The defaults are the parameter set tuned on NAB (see ``bench/NAB.md``); for
live monitoring a larger ``alpha`` (faster adaptation) may suit better.

Example: a spike in noise.

>>> import random
>>> from frictionwatch.detectors.base import Observation
>>> rng = random.Random(1)
>>> det = SeriesDetector(direction="up", threshold=4.0, warmup=50)
>>> verdicts = [det.update(Observation(600.0 * i, 100 + rng.gauss(0, 1))) for i in range(300)]
>>> any(v.anomaly for v in verdicts)
False
>>> v = det.update(Observation(600.0 * 300, 112.0))
>>> v.anomaly, v.severity, round(v.expected)
(True, 'critical', 100)
>>> det2 = SeriesDetector(direction="up", threshold=4.0, warmup=50)
>>> det2.restore(det.state())
>>> det2.update(Observation(1.0, 100.0)) == det.update(Observation(1.0, 100.0))
True
"""

from __future__ import annotations

import math
from collections import deque
from datetime import UTC, datetime
from typing import Any

from .base import Direction, Observation, Verdict, severity_for

__all__ = ["SeriesDetector"]

_DAY = 86400.0
_LOG10_FLOOR = 300.0  # -log10 of the smallest tail probability we distinguish
_SQRT2 = math.sqrt(2.0)


def _epoch(timestamp: datetime | float) -> float:
    """Epoch seconds of a datetime (naive ones read as UTC) or of a number."""
    if isinstance(timestamp, datetime):
        if timestamp.tzinfo is None:
            timestamp = timestamp.replace(tzinfo=UTC)
        return timestamp.timestamp()
    return float(timestamp)


class SeriesDetector:
    """Online detector for a univariate series (see the module docstring).

    Parameters (configuration only; learned state lives in attributes):

    ``direction``
        ``"up"``, ``"down"`` or ``"both"``: which deviations are bad.
    ``threshold``
        Alert when the score (deviations in the bad direction) reaches it.
    ``warmup``
        Observations before any alert (and before :meth:`score_one` says anything).
    ``consecutive``
        Windows in a row beyond the threshold before the verdict fires.
    ``alpha``
        Learning rate of the EW mean and variances (about ``2 / alpha`` points of memory).
    ``anomaly_rate``
        Fraction of ``alpha`` used to learn from points beyond the threshold.
    ``clip``
        Residuals are clipped at this many deviations when they update a variance.
    ``relearn_after``
        Anomalous points in a row (same direction) after which their mean is the new level.
    ``season_slots``, ``season_alpha``, ``season_days``, ``season_gain``
        Time-of-day slots per day, learning rate of a slot's offset, days of history before
        the daily model may be used, and by how much its squared error must beat the global
        model's (a ratio below 1).
    ``diff_weight``
        Weight of the first-difference z-score in the raw score used by :meth:`score_one`.
    ``raw_cap``
        Raw scores are capped at this many deviations before the likelihood.
    ``short_window``, ``history``
        Raw scores averaged for the likelihood, and raw scores it is judged against.
    ``suppress``, ``suppress_level``, ``suppress_factor``
        After :meth:`score_one` reaches ``suppress_level``, the next ``suppress`` scores are
        multiplied by ``suppress_factor``.
    ``spatial_tol``
        :meth:`score_one` is 1 for a value beyond the range seen so far by more than this
        fraction of the range (0 turns it off).
    """

    def __init__(
        self,
        direction: Direction = "both",
        threshold: float = 4.0,
        warmup: int = 100,
        consecutive: int = 1,
        alpha: float = 0.003,
        anomaly_rate: float = 0.25,
        clip: float = 5.0,
        relearn_after: int = 30,
        season_slots: int = 48,
        season_alpha: float = 0.1,
        season_days: float = 2.0,
        season_gain: float = 0.8,
        diff_weight: float = 1.0,
        raw_cap: float = 6.0,
        short_window: int = 5,
        history: int = 2000,
        suppress: int = 200,
        suppress_level: float = 0.5,
        suppress_factor: float = 0.0,
        spatial_tol: float = 0.02,
    ) -> None:
        if direction not in ("up", "down", "both"):
            raise ValueError(f"direction must be 'up', 'down' or 'both', got {direction!r}")
        if consecutive < 1 or warmup < 0 or season_slots < 1 or short_window < 1 or history < 2:
            raise ValueError("consecutive, season_slots, short_window must be >= 1, history >= 2, warmup >= 0")
        if not 0.0 < alpha <= 1.0 or not 0.0 < season_alpha <= 1.0:
            raise ValueError("alpha and season_alpha must be in (0, 1]")
        self.direction = direction
        self.threshold = threshold
        self.warmup = warmup
        self.consecutive = consecutive
        self.alpha = alpha
        self.anomaly_rate = anomaly_rate
        self.clip = clip
        self.relearn_after = relearn_after
        self.season_slots = season_slots
        self.season_alpha = season_alpha
        self.season_days = season_days
        self.season_gain = season_gain
        self.diff_weight = diff_weight
        self.raw_cap = raw_cap
        self.short_window = short_window
        self.history = history
        self.suppress = suppress
        self.suppress_level = suppress_level
        self.suppress_factor = suppress_factor
        self.spatial_tol = spatial_tol
        self._reset()

    # -- state ----------------------------------------------------------------------------

    def _reset(self) -> None:
        self.n = 0
        self.first_ts: float | None = None
        self.last_value: float | None = None
        # global model
        self.mean = 0.0
        self.var = 0.0
        # daily model
        self.s_level = 0.0
        self.s_var = 0.0
        self.offsets = [0.0] * self.season_slots
        self.slot_n = [0] * self.season_slots
        self.seasonal = False
        # first difference
        self.d_var = 0.0
        # level-shift run and consecutive-window rule
        self.run = 0
        self.run_sum = 0.0
        self.run_sum_s = 0.0
        self.streak = 0
        # likelihood
        self.raw_hist: deque[float] = deque()
        self.raw_sum = 0.0
        self.raw_sq = 0.0
        self.raw_short: deque[float] = deque()
        self.short_sum = 0.0
        self.quiet_for = 0
        self.likelihood = 0.0
        self.lo = 0.0  # range of the values seen (set by the first one)
        self.hi = 0.0
        self.new_range = False

    _FIELDS = (
        "n",
        "first_ts",
        "last_value",
        "mean",
        "var",
        "s_level",
        "s_var",
        "seasonal",
        "d_var",
        "run",
        "run_sum",
        "run_sum_s",
        "streak",
        "raw_sum",
        "raw_sq",
        "short_sum",
        "quiet_for",
        "likelihood",
        "lo",
        "hi",
        "new_range",
    )

    def state(self) -> dict[str, Any]:
        """The learned state as a JSON-able dict (floats, ints, lists)."""
        out: dict[str, Any] = {name: getattr(self, name) for name in self._FIELDS}
        out["offsets"] = list(self.offsets)
        out["slot_n"] = list(self.slot_n)
        out["raw_hist"] = list(self.raw_hist)
        out["raw_short"] = list(self.raw_short)
        return out

    def restore(self, state: dict[str, Any]) -> None:
        """Take back a :meth:`state` of a detector configured the same way."""
        if len(state["offsets"]) != self.season_slots:
            raise ValueError("state has a different number of season slots")
        self._reset()
        for name in self._FIELDS:
            setattr(self, name, state[name])
        self.offsets = [float(x) for x in state["offsets"]]
        self.slot_n = [int(x) for x in state["slot_n"]]
        self.raw_hist = deque(float(x) for x in state["raw_hist"])
        self.raw_short = deque(float(x) for x in state["raw_short"])

    # -- the model ----------------------------------------------------------------------------

    def _bad(self, z: float) -> float:
        """A signed z-score turned into deviations in the bad direction (>= 0)."""
        if self.direction == "up":
            return z if z > 0.0 else 0.0
        if self.direction == "down":
            return -z if z < 0.0 else 0.0
        return abs(z)

    def _step(self, ts: float, y: float) -> tuple[float, float, float, float]:
        """Learn one point; return (score, expected, sd, raw score for the likelihood)."""
        n = self.n
        if n == 0:
            self.first_ts = ts
            self.mean = y
            self.s_level = y
            self.last_value = y
            self.lo = self.hi = y
            self.n = 1
            return 0.0, y, 0.0, 0.0
        slots = self.season_slots
        k = int((ts % _DAY) * slots / _DAY) % slots
        offsets = self.offsets
        slot_n = self.slot_n
        off = offsets[k] if slot_n[k] else 0.0

        # residuals of both models, against the state before this point
        r_g = y - self.mean
        r_s = y - self.s_level - off
        if self.seasonal:
            resid, var, expected = r_s, self.s_var, self.s_level + off
        else:
            resid, var, expected = r_g, self.var, self.mean
        tiny = 1e-9 * (abs(expected) + 1.0)
        sd = math.sqrt(var) if var > tiny * tiny else tiny
        z = resid / sd
        score = self._bad(z)
        last = y if self.last_value is None else self.last_value
        dy = y - last
        d_var = self.d_var
        d_sd = math.sqrt(d_var) if d_var > tiny * tiny else tiny
        zd = dy / d_sd

        # learning rates: plain averages at first, slower on anomalous points
        a = self.alpha
        if a < 1.0 / (n + 1):
            a = 1.0 / (n + 1)
        anomalous = abs(z) >= self.threshold and n >= self.warmup
        if anomalous:
            a *= self.anomaly_rate
        clip = self.clip

        # level shift: a run of anomalous points on the same side becomes the new normal
        if anomalous:
            side = 1 if resid > 0 else -1
            if self.run * side > 0:
                self.run += side
                self.run_sum += y
                self.run_sum_s += y - off
            else:
                self.run, self.run_sum, self.run_sum_s = side, y, y - off
        else:
            self.run, self.run_sum, self.run_sum_s = 0, 0.0, 0.0
        if abs(self.run) >= self.relearn_after:
            m = abs(self.run)
            self.mean = self.run_sum / m
            self.s_level = self.run_sum_s / m
            self.run = 0
            self.run_sum = self.run_sum_s = 0.0
        else:
            # global model
            g_sd = math.sqrt(self.var)
            c = clip * g_sd
            rc = r_g if n < 3 or -c <= r_g <= c else (c if r_g > 0 else -c)
            self.mean += a * r_g
            self.var = (1.0 - a) * (self.var + a * rc * rc)
            # daily model (Holt-Winters, additive)
            self.s_level += a * r_s
        s_sd = math.sqrt(self.s_var)
        c = clip * s_sd
        rc = r_s if n < 3 or -c <= r_s <= c else (c if r_s > 0 else -c)
        self.s_var = (1.0 - a) * (self.s_var + a * rc * rc)
        cnt = slot_n[k] + 1
        slot_n[k] = cnt
        g = self.season_alpha
        if g < 1.0 / cnt:
            g = 1.0 / cnt
        if anomalous:
            g *= self.anomaly_rate
        offsets[k] = off + g * (y - self.s_level - off)
        # first difference
        dc = clip * math.sqrt(d_var)
        dyc = dy if n < 3 or -dc <= dy <= dc else (dc if dy > 0 else -dc)
        self.d_var = (1.0 - a) * (d_var + a * dyc * dyc)
        self.last_value = y
        self.n = n + 1
        first = self.first_ts if self.first_ts is not None else ts
        self.seasonal = ts - first >= self.season_days * _DAY and self.s_var < self.season_gain * self.var

        lo, hi = self.lo, self.hi
        tol = self.spatial_tol * (hi - lo)
        up, down = y > hi + tol, y < lo - tol
        if self.direction == "up":
            down = False
        elif self.direction == "down":
            up = False
        self.new_range = tol > 0.0 and (up or down) and self.n > self.warmup
        if y < lo:
            self.lo = y
        if y > hi:
            self.hi = y
        raw = score
        zdb = self.diff_weight * self._bad(zd)
        if zdb > raw:
            raw = zdb
        return score, expected, sd, raw

    def _likelihood(self, raw: float) -> float:
        """NAB's anomaly likelihood of the recent raw scores, in [0, 1], with suppression."""
        cap = self.raw_cap
        r = raw if raw < cap else cap
        hist = self.raw_hist
        count = len(hist)
        short = self.raw_short
        short.append(r)
        self.short_sum += r
        if len(short) > self.short_window:
            self.short_sum -= short.popleft()
        out = 0.0
        if count >= 2 and self.n > self.warmup:
            mu = self.raw_sum / count
            v = self.raw_sq / count - mu * mu
            sd = math.sqrt(v) if v > 1e-12 else 1e-6
            zl = (self.short_sum / len(short) - mu) / sd
            tail = 0.5 * math.erfc(zl / _SQRT2)
            lg = -math.log10(tail) if tail > 1e-300 else _LOG10_FLOOR
            out = lg / (lg + 5.0)
        if self.new_range:
            out = 1.0
        hist.append(r)
        self.raw_sum += r
        self.raw_sq += r * r
        if count + 1 > self.history:
            old = hist.popleft()
            self.raw_sum -= old
            self.raw_sq -= old * old
        if self.quiet_for > 0:
            self.quiet_for -= 1
            out *= self.suppress_factor
        elif out >= self.suppress_level:
            self.quiet_for = self.suppress
        self.likelihood = out
        return out

    # -- the Detector protocol ------------------------------------------------------------------

    def update(self, observation: Observation) -> Verdict:
        """Judge one window, then learn from it."""
        ts, y = observation.ts, observation.value
        warm = self.n >= self.warmup
        score, expected, sd, raw = self._step(ts, y)
        self._likelihood(raw)
        if not warm:
            self.streak = 0
            return Verdict.quiet(observation, "warming up")
        fired = score >= self.threshold
        self.streak = self.streak + 1 if fired else 0
        anomaly = self.streak >= self.consecutive
        band = self.threshold * sd
        lower, upper = expected - band, expected + band
        return Verdict(
            ts,
            y,
            expected,
            lower,
            upper,
            score,
            observation.volume,
            anomaly,
            severity_for(score, self.threshold) if anomaly else "none",
            f"{score:.1f} sd {'above' if y > expected else 'below'} expected" if anomaly else "",
        )

    def score_one(self, timestamp: datetime | float, value: float) -> float:
        """NAB's interface: the anomaly likelihood in [0, 1] of this point given the past."""
        self.update(Observation(_epoch(timestamp), float(value)))
        return self.likelihood
