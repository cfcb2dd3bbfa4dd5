"""Sequential detectors: evidence that adds up over windows, spent against a false-alarm budget.

A window detector asks of each window alone "is this too far from normal?", so a quiet
touchpoint, whose windows each hold a handful of sessions, can never say yes, and a busy one
says yes to every wobble of its baseline. :class:`SequentialDetector` instead asks how much
*evidence* of friction the windows so far hold together, and alarms when that evidence is
more than normal traffic would produce once per false-alarm budget.

Per window (no I/O, O(1) time and memory):

1. **Baseline.** The value expected for the window: a level plus an hour-of-day offset,
   Holt-Winters style, both learned as volume-weighted exponential averages (a window of 400
   sessions teaches more than one of 4). Windows that look like friction don't teach it;
   a deviation that lasts ``relearn_after`` seconds becomes the new normal, and a slow drift
   is followed all along.
2. **Evidence of one window**, ``z``: how unusual the window's count is under the baseline,
   as a standard normal quantile. ``model`` says how the count varies: ``binomial`` for
   ratios (k of n sessions moved on), ``poisson`` for rates (errors per visit), ``normal``
   for scores, ``log_normal`` for waits (a mean of n waits, judged on a log scale so one
   hour-long email wait is one long wait, not an incident). Small counts are judged by their
   exact tail probability, so two errors where one is usual are no surprise; the
   between-window variance real traffic has beyond sampling is learned and widens the spread.
3. **Accumulation**: one CUSUM per assumed shift (``shifts``, in standard deviations per
   window) in the bad direction, ``S = max(0, S + d z - d**2/2)``. A large shift crosses in
   one window (a busy step that breaks alarms within a window); a small one adds up over
   many (a quiet queue alarms on a deviation that lasts).
4. **Threshold from the budget**: each CUSUM's threshold gives the budget's average run
   length (see :mod:`frictionwatch.detectors.budget`), the budget being shared by the
   CUSUMs. The verdict's ``score`` is the evidence as a share of its threshold (1 = alarm).

Example: a conversion of 80% over 30 sessions a window, then a drop to 65%.

>>> import random
>>> rng = random.Random(7)
>>> def window(i, p, n=30):
...     return Observation(60.0 * i, sum(rng.random() < p for _ in range(n)) / n, n)
>>> detector = SequentialDetector("binomial", direction="down", false_alarms="1 per 30d")
>>> quiet = [detector.update(window(i, 0.8)) for i in range(600)]
>>> sum(v.anomaly for v in quiet)
0
>>> incident = [detector.update(window(600 + i, 0.65)) for i in range(30)]
>>> first = next(i for i, v in enumerate(incident) if v.anomaly)
>>> 0 < first < 15, incident[first].score >= 1.0
(True, True)

A restored detector carries on identically:

>>> twin = SequentialDetector("binomial", direction="down", false_alarms="1 per 30d")
>>> twin.restore(detector.state())
>>> twin.update(window(700, 0.8)) == detector.update(Observation(*twin.last_observation))
True
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from statistics import NormalDist
from typing import Any, Literal

from scipy.special import ndtri, stdtr

from frictionwatch.detectors.base import Direction, Observation, Severity, Verdict
from frictionwatch.detectors.budget import FalseAlarmBudget, cusum_threshold

__all__ = ["MODELS", "Model", "SequentialDetector"]

Model = Literal["binomial", "poisson", "normal", "log_normal"]
MODELS: tuple[Model, ...] = ("binomial", "poisson", "normal", "log_normal")
DEFAULT_SHIFTS = (0.5, 1.0, 2.0, 4.0)
DEFAULT_WINDOW = 60.0  # seconds, until two windows have shown the real length
EXACT_BELOW = 30.0  # expected counts (or n p (1-p)) under which tails are computed exactly
UNION = 0.78  # false alarms of the CUSUMs together, as a share of their sum (they overlap; measured)
SEASON_PRIOR = 100.0  # volume (sessions, contacts) an hour slot needs before its offset counts half
QUIET = 1800.0  # seconds without an alarm that end an incident
PRIOR_EVENTS = 0.5  # events (or successes) a count model assumes beyond those seen
CLIP = 2.5  # residuals teach the baseline clipped at this many standard deviations
CLIP_SPREAD = 5.0  # ... and the spread, at this many
ONE_UNIT = 3.0  # waits and rates: the most evidence one unit can give, in sd (n units: sqrt(n) times it)
SPACING_RATE = 0.01  # the mean gap between windows with volume follows about the last 100 of them
MAX_SPACING = 6 * 3600.0  # seconds: longer gaps count as this much
RESPACE = 0.1  # thresholds are worked out again when that mean gap has changed by 10%
SHAPE_AFTER = 10  # windows seen before the skewness and kurtosis of residuals are learned
CALIBRATION_PRIOR = 30.0  # windows of standard normal evidence the calibration of waits and scores starts from
CALIBRATION_MEMORY = 2000.0  # ... and the windows it remembers, per volume class
_NORMAL = NormalDist()
_MASK64 = 2**64 - 1


@dataclass
class _Learned:
    """All a sequential detector has learned: JSON-able through dataclasses.asdict."""

    level_sum: float = 0.0  # volume-weighted, decayed sum of deseasonalised values
    level_volume: float = 0.0
    daily_sum: float = 0.0  # (checkpoints before 2026-12-02: a raw mean over about a day of windows,
    daily_volume: float = 0.0  # ... what their hour slots' offsets were against; read to carry them over)
    offsets: dict[str, float] = field(default_factory=dict)  # (the same: per hour slot, learned value - that mean)
    unit_variance: float | None = None  # variance of one unit (normal and log-normal models)
    extra_variance: float = 0.0  # between-window variance beyond sampling
    skew: float = 0.0  # skewness of the standardised residual (normal and log-normal models)
    kurtosis: float = 0.0  # its excess kurtosis
    last_z: float = 0.0  # the previous window's evidence, for...
    correlation: float = 0.0  # ... the learned correlation of evidence from one window to the next
    evidence: list[float] = field(default_factory=list)  # one CUSUM per (side, shift)
    alarmed: bool = False
    seen: int = 0  # windows with volume
    step: float | None = None  # the shortest gap between windows seen: the window length
    spacing: float | None = None  # the mean gap between windows with volume (quiet series: longer)
    last_ts: float | None = None
    unusual_since: float | None = None  # first alarm of the current incident (alarms less than QUIET apart)
    last_alarm: float | None = None
    unusual_sum: float = 0.0  # volume-weighted sum of the incident's deseasonalised values
    unusual_volume: float = 0.0
    offset_volume: dict[str, float] = field(default_factory=dict)  # volume each hour slot has taught (decayed)
    slot_means: dict[str, float] = field(default_factory=dict)  # per hour slot: its mean over its last season_days
    slot_total: dict[str, float] = field(default_factory=dict)  # per hour slot: all the volume that ever taught it
    day_mean: float = 0.0  # the hour slots' means averaged, weighted by their volume: what offsets are against
    #: per volume class (1, 2, 3-5, 6+ units): windows learned, mean and mean square of z
    calibration: dict[str, list[float]] = field(default_factory=dict)


class SequentialDetector:
    """Accumulated evidence against a seasonal baseline (see the module docstring).

    Args:
        model: how a window's count varies: ``binomial`` (ratios), ``poisson`` (events per
            unit), ``normal`` (scores) or ``log_normal`` (waits, seconds).
        direction: the bad direction: ``down``, ``up`` or ``both``.
        false_alarms: the false-alarm budget of this series, e.g. ``"1 per 30d"``; or, as an
            advanced override, a number of standard deviations ``s``: as many false alarms as a
            one-window test at ``s`` standard deviations would raise (one per ``1 / P(Z > s)``
            windows; 4 sd is one per 31,574 windows, 22 days of 60-s windows).
        shifts: the shifts (standard deviations per window) the CUSUMs look for.
        warmup: windows with volume before the first alarm.
        memory: volume (sessions, contacts, answers) the level remembers, at least
            ``min_memory`` and at most ``max_memory`` seconds of windows.
        season_days: days of one hour slot its offset remembers (0: no daily profile).
        relearn_after: seconds a deviation lasts before it is the new normal.
        window: window length in seconds, if known; else learned from the gaps between windows.
    """

    def __init__(
        self,
        model: Model,
        direction: Direction = "both",
        false_alarms: str | FalseAlarmBudget | float = "1 per 30d",
        shifts: tuple[float, ...] = DEFAULT_SHIFTS,
        warmup: int = 30,
        memory: float = 5000.0,
        min_memory: float = 7200.0,
        max_memory: float = 86400.0,
        season_days: float = 3.0,
        relearn_after: float = 7200.0,
        window: float | None = None,
    ) -> None:
        if model not in MODELS:
            raise ValueError(f"model must be one of {', '.join(MODELS)}, not {model!r}")
        if direction not in ("up", "down", "both"):
            raise ValueError(f"direction must be up, down or both, not {direction!r}")
        if not shifts or min(shifts) <= 0:
            raise ValueError(f"shifts must be positive standard deviations, not {shifts!r}")
        if not 0 < min_memory <= max_memory:
            raise ValueError("0 < min_memory <= max_memory (seconds) is required")
        self.model = model
        self.direction = direction
        if isinstance(false_alarms, str):
            false_alarms = FalseAlarmBudget.parse(false_alarms)
        elif not isinstance(false_alarms, FalseAlarmBudget) and not false_alarms > 0:
            raise ValueError(f"false_alarms needs a budget such as '1 per 30d' or a positive sd, not {false_alarms!r}")
        self.false_alarms: FalseAlarmBudget | float = false_alarms
        self.threshold = 1.0  # the score (evidence / its threshold) that alarms
        self.shifts = tuple(float(shift) for shift in shifts)
        self.warmup = warmup
        self.memory = memory
        self.min_memory = min_memory
        self.max_memory = max_memory
        self.season_days = season_days
        self.relearn_after = relearn_after
        self.window = window
        self.sides: tuple[int, ...] = {"up": (1,), "down": (-1,), "both": (1, -1)}[direction]
        self.learned = _Learned()
        self.last_observation: tuple[float, float, float | None] = (math.nan, math.nan, None)
        self._thresholds: tuple[float, tuple[tuple[float, float, float], ...], float] | None = None

    def __repr__(self) -> str:
        settings = ("model", "direction", "shifts", "warmup", "memory", "min_memory", "max_memory")
        more = ("season_days", "relearn_after", "window")
        text = ", ".join(f"{name}={getattr(self, name)!r}" for name in (*settings, *more))
        budget = str(self.false_alarms) if isinstance(self.false_alarms, FalseAlarmBudget) else self.false_alarms
        return f"SequentialDetector({text}, false_alarms={budget!r})"

    # -- thresholds -------------------------------------------------------------------------

    def thresholds(self) -> tuple[float, ...]:
        """Each CUSUM's threshold (one per side and shift), for the current window length."""
        return tuple(h for _, _, h in self._cusums())

    def _cusums(self) -> tuple[tuple[float, float, float], ...]:
        """Per CUSUM: its signed shift (the side times the shift), its drift and its threshold."""
        spacing = self._spacing()
        if self._thresholds is None or abs(math.log(self._thresholds[0] / spacing)) > RESPACE:
            cusums = len(self.sides) * len(self.shifts)
            run_length = self.windows_between_alarms() * cusums * UNION
            per_shift = [cusum_threshold(run_length, shift) for shift in self.shifts]
            specs = tuple(
                (side * shift, shift * shift / 2.0, h)
                for side in self.sides
                for shift, h in zip(self.shifts, per_shift, strict=True)
            )
            band = min(h / d + d / 2.0 for d, h in zip(self.shifts, per_shift, strict=True))
            self._thresholds = (spacing, specs, band)
        return self._thresholds[1]

    def windows_between_alarms(self) -> float:
        """The average number of windows between false alarms the budget allows."""
        if isinstance(self.false_alarms, FalseAlarmBudget):
            return self.false_alarms.windows_between_alarms(self._spacing())
        return 1.0 / max(1.0 - _NORMAL.cdf(self.false_alarms), 1e-300)

    def _step(self) -> float:
        return self.window or self.learned.step or DEFAULT_WINDOW

    def _spacing(self) -> float:
        """Seconds between the windows judged: a quiet series, with volume in one window of ten,
        can alarm only on those, so its budget in windows is ten times smaller."""
        return max(self._step(), self.learned.spacing or 0.0)

    def _forget(self, volume: float) -> float:
        """How much of the level a window of ``volume`` replaces."""
        step = self._step()
        return min(step / self.min_memory, max(step / self.max_memory, volume / self.memory))

    def alarm_band(self) -> float:
        """The window evidence ``z`` that alarms in one window on a fresh start."""
        self._cusums()
        assert self._thresholds is not None
        return self._thresholds[2]

    # -- the baseline -----------------------------------------------------------------------

    def _scale(self, value: float) -> float:
        return math.log1p(max(value, 0.0)) if self.model == "log_normal" else value

    def _unscale(self, value: float) -> float:
        return math.expm1(value) if self.model == "log_normal" else value

    @staticmethod
    def _slots(ts: float) -> tuple[tuple[str, float], tuple[str, float]]:
        """The two hour slots whose centres surround ``ts``, and their weights (linear between them)."""
        position = (ts / 3600.0 - 0.5) % 24.0
        first = int(position)
        weight = position - first
        return (str(first), 1.0 - weight), (str((first + 1) % 24), weight)

    def _offset(self, ts: float) -> float:
        """The daily profile at ``ts``: the hour slots' means against the day's, interpolated; a
        slot counts as much as the volume that ever taught it allows (half at ``SEASON_PRIOR``)."""
        learned = self.learned
        means, total = learned.slot_means, learned.slot_total
        offset = 0.0
        for slot, weight in self._slots(ts):
            mean = means.get(slot)
            if mean is not None:
                ever = total[slot]
                offset += weight * ever / (ever + SEASON_PRIOR) * (mean - learned.day_mean)
        return offset

    def expected(self, ts: float) -> float | None:
        """The value expected for a window ending at ``ts`` (on the model's scale); None at first."""
        learned = self.learned
        if learned.level_volume <= 0:
            return None
        offset = self._offset(ts)
        if self.model not in ("binomial", "poisson"):
            return learned.level_sum / learned.level_volume + offset
        # counts: half an event more than seen (Jeffreys), so a rate never seen is small, not 0
        floor = PRIOR_EVENTS / (learned.level_volume + 1.0)
        expected = max((learned.level_sum + PRIOR_EVENTS) / (learned.level_volume + 1.0) + offset, floor)
        return min(expected, 1.0 - floor) if self.model == "binomial" else expected

    def _sampling_variance(self, expected: float, volume: float) -> float:
        """The variance of a window's value from sampling ``volume`` units alone."""
        if self.model == "binomial":
            p = (min(max(expected, 0.0), 1.0) * volume + 0.5) / (volume + 1.0)
            return p * (1.0 - p) / volume
        if self.model == "poisson":
            return (max(expected, 0.0) + 0.5 / volume) / volume
        unit = self.learned.unit_variance
        return (unit if unit is not None else 0.0) / volume

    def _learn(self, ts: float, value: float, volume: float, residual: float) -> None:
        """Teach the level, the slot's offset and the spreads one window."""
        learned = self.learned
        forget = self._forget(volume)
        learned.level_sum = (1 - forget) * learned.level_sum + volume * (value - self._offset(ts))
        learned.level_volume = (1 - forget) * learned.level_volume + volume
        self._learn_season(ts, value, volume)
        forget = max(forget, 1.0 / (learned.seen + 1.0))  # the spreads average all windows until memory is full
        if self.model in ("normal", "log_normal"):
            if learned.unit_variance and learned.seen >= SHAPE_AFTER:
                standard = residual / math.sqrt(learned.unit_variance / volume + learned.extra_variance)
                third = min(max(standard, -CLIP_SPREAD), CLIP_SPREAD) ** 3
                learned.skew = min(max(learned.skew + forget * (third - learned.skew), -2.0), 2.0)
                fourth = min(abs(standard), CLIP_SPREAD) ** 4 - 3.0
                learned.kurtosis = min(max(learned.kurtosis + forget * (fourth - learned.kurtosis), 0.0), 20.0)
            sample = residual * residual * volume
            unit = learned.unit_variance
            learned.unit_variance = sample if unit is None else unit + forget * (sample - unit)
        if learned.seen > 0:
            excess = residual * residual - self._sampling_variance(value - residual, volume)
            learned.extra_variance = max(0.0, learned.extra_variance + forget * (excess - learned.extra_variance))

    def _learn_season(self, ts: float, value: float, volume: float) -> None:
        """Holt-Winters: an hour slot's mean over its last ``season_days`` (volume-weighted), and
        the day's mean as the slots' means averaged (0 days: no daily profile). Offsets are taken
        against that average when used, so a slot learned early on the first day is not held
        against the mean of the hours seen so far (a morning peak learned against the morning)."""
        learned = self.learned
        if self.season_days <= 0:
            return
        keep = 1.0 - self._step() / (3600.0 * self.season_days)
        means, taught, total = learned.slot_means, learned.offset_volume, learned.slot_total
        for slot, weight in self._slots(ts):
            volume_now = keep * taught.get(slot, 0.0) + weight * volume
            if volume_now <= 0.0:
                continue
            mean = means.get(slot, value)
            means[slot] = mean + weight * volume / volume_now * (value - mean)
            taught[slot] = volume_now
            total[slot] = total.get(slot, 0.0) + weight * volume
        weights = sum(taught[slot] for slot in means)
        learned.day_mean = sum(taught[slot] * means[slot] for slot in means) / weights if weights > 0 else 0.0

    # -- evidence ---------------------------------------------------------------------------

    def _window_z(self, value: float, expected: float, volume: float, ts: float) -> tuple[float, float]:
        """The window's evidence (standard normal on normal traffic) and its spread."""
        sampling = self._sampling_variance(expected, volume)
        # the predictive spread: sampling, the uncertainty of the level itself, and between windows
        known = sampling * volume / (self.learned.level_volume + 1.0)
        spread = math.sqrt(max(sampling + known + self.learned.extra_variance, 1e-12))
        if self.model == "binomial" and volume * expected * (1 - expected) < EXACT_BELOW:
            z = _binomial_z(
                round(value * volume), round(volume), min(max(expected, 1e-6), 1 - 1e-6), ts, self.learned.seen
            )
        elif self.model == "poisson" and volume * expected < EXACT_BELOW:
            z = _poisson_z(round(value * volume), max(expected * volume, 1e-6), ts, self.learned.seen)
        else:
            z = (value - expected) / spread
            if self.model in ("normal", "log_normal"):
                z = self._symmetric(z)
            return self._capped(z, volume), spread
        # the exact tail knows sampling only: shrink it by the share of the spread sampling explains
        return self._capped(z * math.sqrt(max(sampling, 1e-12)) / spread, volume), spread

    def _capped(self, z: float, volume: float) -> float:
        """One long wait is one long wait, however long, and one visit's errors are one visit's:
        a unit (contact, visit) gives at most ``ONE_UNIT`` sd of evidence, n units sqrt(n) times it."""
        if self.model not in ("log_normal", "poisson"):
            return z
        cap = ONE_UNIT * math.sqrt(volume)
        return min(max(z, -cap), cap)

    def _independent(self, z: float) -> float:
        """Waits carry a queue's backlog from one window to the next: correlated evidence adds up
        faster than independent evidence, so it counts for less (the long-run variance of an
        AR(1) series is (1 + r) / (1 - r) times its variance)."""
        learned = self.learned
        if not learned.alarmed and learned.seen >= self.warmup:
            product = max(-CLIP, min(CLIP, z)) * max(-CLIP, min(CLIP, learned.last_z))
            rate = max(self._forget(1.0), 1.0 / (learned.seen + 1.0))
            learned.correlation = min(max(learned.correlation + rate * (product - learned.correlation), 0.0), 0.9)
        learned.last_z = z
        return z * math.sqrt((1.0 - learned.correlation) / (1.0 + learned.correlation))

    @staticmethod
    def _volume_class(volume: float) -> str:
        return "1" if volume < 1.5 else "2" if volume < 2.5 else "3" if volume < 5.5 else "6"

    def _calibrated(self, z: float, volume: float) -> float:
        """Waits and scores, standardised by the mean and spread their evidence has had on normal
        traffic, per volume class (1, 2, 3-5, 6+ units). A queue answers most contacts at once and
        makes the rest wait, and a busy window makes all its contacts wait: no skewness or kurtosis
        correction turns that into a standard normal (on the benchmark's chat queues ``z`` had a
        mean of 0.2 and a spread of 0.7, so the 0.5-sd CUSUM drifted up and paged every few
        days). What normal traffic has shown does."""
        _, mean, square = self.learned.calibration.get(self._volume_class(volume), (0.0, 0.0, 1.0))
        spread = math.sqrt(min(max(square - mean * mean, 1.0), 4.0))
        return (z - mean) / spread

    def _learn_calibration(self, z: float, volume: float) -> None:
        calibration = self.learned.calibration
        key = self._volume_class(volume)
        weight, mean, square = calibration.get(key, (CALIBRATION_PRIOR, 0.0, 1.0))
        weight = min(weight + 1.0, CALIBRATION_MEMORY)
        z = min(max(z, -CLIP_SPREAD), CLIP_SPREAD)
        calibration[key] = [weight, mean + (z - mean) / weight, square + (z * z - square) / weight]

    def _symmetric(self, z: float) -> float:
        """Waits and scores are skewed and heavy-tailed even on a log scale: correct the learned
        skewness (Cornish-Fisher), then read ``z`` as a Student t with the learned kurtosis."""
        learned = self.learned
        gamma = learned.skew / 6.0
        if gamma and abs(z) < 1.0 / (2.0 * abs(gamma)):
            z = z - gamma * (z * z - 1.0)
        if learned.kurtosis < 0.05:
            return z
        freedom = 4.0 + 6.0 / learned.kurtosis  # a t's excess kurtosis is 6 / (freedom - 4)
        return float(ndtri(min(max(stdtr(freedom, z), 1e-15), 1.0 - 1e-15)))

    def update(self, observation: Observation) -> Verdict:
        """Judge one window, add its evidence, then learn from it unless it looks like friction."""
        learned = self.learned
        self.last_observation = (observation.ts, observation.value, observation.volume)
        volume = observation.volume if observation.volume is not None else 1.0
        if not math.isfinite(observation.value) or volume <= 0:
            return Verdict.quiet(observation, "no volume")
        self._note_time(observation.ts)
        value = self._scale(observation.value)
        expected = self.expected(observation.ts)
        if expected is None:
            self._learn(observation.ts, value, volume, 0.0)
            learned.seen += 1
            return Verdict.quiet(observation, "first window")
        z, spread = self._window_z(value, expected, volume, observation.ts)
        raw_z = z
        if self.model in ("normal", "log_normal"):
            z = self._independent(self._calibrated(z, volume))
        cusums = self._cusums()
        evidence = learned.evidence or [0.0] * len(cusums)
        score, fired = 0.0, 0.0
        for i, (signed_shift, drift, h) in enumerate(cusums):
            s = evidence[i] + signed_shift * z - drift
            s = 0.0 if s < 0.0 else h if s > h else s
            evidence[i] = s
            if s / h > score:
                score = s / h
            if s >= h and abs(signed_shift) > fired:
                fired = abs(signed_shift)
        warm = learned.seen >= self.warmup
        anomaly = warm and score >= 1.0
        if not warm or (learned.alarmed and not anomaly):
            evidence = [0.0] * len(evidence)  # warming up, or the alarm is over: start afresh
        learned.alarmed = anomaly
        learned.evidence = evidence
        if self.model in ("normal", "log_normal") and warm and not anomaly:
            self._learn_calibration(raw_z, volume)
        self._track_incident(observation.ts, value, volume, anomaly)
        residual = min(max(value - expected, -CLIP * spread), CLIP * spread)
        if anomaly:  # the daily profile still learns, clipped: what recurs every afternoon is no incident
            self._hold_back(value, volume, expected, spread)
            self._learn_season(observation.ts, expected + residual, volume)
        elif not warm:  # the spread is not known yet: nothing to clip against
            self._learn(observation.ts, value, volume, value - expected)
        else:  # learn, with the residual clipped: odd windows must not drag the baseline
            deviation = min(max(value - expected, -CLIP_SPREAD * spread), CLIP_SPREAD * spread)
            self._learn(observation.ts, expected + residual, volume, deviation)
        learned.seen += 1
        band = self.alarm_band() * spread
        lower, upper = self._unscale(expected - band), self._unscale(expected + band)
        if self.model == "binomial":
            lower, upper = max(lower, 0.0), min(upper, 1.0)
        severity: Severity = ("critical" if fired >= 2.0 else "warning") if anomaly else "none"
        reason = "" if warm else "warming up"
        return Verdict(
            observation.ts,
            observation.value,
            self._unscale(expected),
            lower,
            upper,
            score,
            observation.volume,
            anomaly,
            severity,
            reason,
        )

    def forget_evidence(self) -> None:
        """Drop the evidence added up so far (the baseline stays): a fresh start of the CUSUMs."""
        self.learned.evidence = [0.0] * len(self.learned.evidence)
        self.learned.alarmed = False

    def _note_time(self, ts: float) -> None:
        learned = self.learned
        if learned.last_ts is not None and ts > learned.last_ts:
            gap = ts - learned.last_ts
            learned.step = gap if learned.step is None else min(learned.step, gap)
            gap = min(gap, MAX_SPACING)  # an outage or a night is not the series' normal pace
            rate = max(1.0 / (learned.seen + 1.0), SPACING_RATE)
            learned.spacing = gap if learned.spacing is None else learned.spacing + rate * (gap - learned.spacing)
        learned.last_ts = ts

    def _hold_back(self, value: float, volume: float, expected: float, spread: float) -> None:
        """A window during an alarm teaches only the spread, slowly and clipped."""
        learned = self.learned
        residual = min(max(value - expected, -CLIP_SPREAD * spread), CLIP_SPREAD * spread)
        forget = self._forget(volume)
        excess = residual * residual - self._sampling_variance(expected, volume)
        learned.extra_variance = max(0.0, learned.extra_variance + 0.25 * forget * (excess - learned.extra_variance))

    def _track_incident(self, ts: float, value: float, volume: float, anomaly: bool) -> None:
        """Alarms less than QUIET apart are one incident; one lasting ``relearn_after`` is the new normal."""
        learned = self.learned
        if anomaly:
            if learned.unusual_since is None:
                learned.unusual_since = ts
            learned.last_alarm = ts
        elif learned.unusual_since is not None and ts - (learned.last_alarm or ts) >= QUIET:
            learned.unusual_since, learned.unusual_sum, learned.unusual_volume = None, 0.0, 0.0
        if learned.unusual_since is None:
            return
        learned.unusual_sum += volume * (value - self._offset(ts))
        learned.unusual_volume += volume
        if anomaly and ts - learned.unusual_since >= self.relearn_after:  # a lasting shift: the new normal
            learned.level_sum = learned.unusual_sum
            learned.level_volume = learned.unusual_volume
            learned.evidence = [0.0] * len(learned.evidence)
            learned.alarmed = False
            learned.unusual_since, learned.unusual_sum, learned.unusual_volume = None, 0.0, 0.0

    # -- checkpoints ------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return asdict(self.learned)

    def restore(self, state: dict[str, Any]) -> None:
        learned = self.learned = _Learned(**state)
        if learned.offsets and not learned.slot_means:  # a checkpoint of offsets against a raw daily mean
            day = learned.daily_sum / learned.daily_volume if learned.daily_volume > 0 else 0.0
            learned.slot_means = {slot: day + offset for slot, offset in learned.offsets.items()}
            learned.slot_total = {slot: learned.offset_volume.get(slot, 0.0) for slot in learned.offsets}
            weights = sum(learned.slot_total.values())
            learned.day_mean = (
                sum(learned.slot_total[s] * m for s, m in learned.slot_means.items()) / weights if weights > 0 else day
            )
        learned.offsets, learned.daily_sum, learned.daily_volume = {}, 0.0, 0.0


def _randomised_z(below: float, at: float, ts: float, salt: int) -> float:
    """The normal quantile of a discrete count: P(X < k) + u P(X = k), u uniform.

    With u uniform the quantile is exactly standard normal on normal traffic, whatever the
    count's discreteness, so thresholds keep their false-alarm budget. u comes from a hash of
    the window's time and ``salt`` (the windows the detector has seen), so a replay (and a
    restored detector) gives the same answer. The salt keeps series apart: with the time
    alone, every series of the map drew the same u in a window, and a window whose u was
    near 1 raised the evidence of all of them at once (on the benchmark, 5 false alerts at
    different touchpoints of 4 traffic sets in the same minute).
    """
    x = (int(ts * 1000.0) + 0x9E3779B97F4A7C15 * (salt + 1)) & _MASK64  # splitmix64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    u = ((x ^ (x >> 31)) + 0.5) / 2.0**64
    return _NORMAL.inv_cdf(min(max(below + u * at, 1e-15), 1.0 - 1e-15))


def _binomial_z(k: int, n: int, p: float, ts: float, salt: int) -> float:
    """Randomised quantile of k successes out of n under Binomial(n, p), summing the nearer tail."""
    k = min(max(k, 0), n)
    log_choose = math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
    at = math.exp(log_choose + k * math.log(p) + (n - k) * math.log1p(-p))
    odds = p / (1.0 - p)
    if k <= n * p:  # P(X < k): walk down from k
        tail, term = 0.0, at
        for i in range(k, 0, -1):
            term *= i / ((n - i + 1) * odds)
            tail += term
            if term < 1e-17 * tail:
                break
        return _randomised_z(tail, at, ts, salt)
    tail, term = 0.0, at  # P(X > k): walk up from k
    for i in range(k, n):
        term *= (n - i) / (i + 1) * odds
        tail += term
        if term < 1e-17 * tail:
            break
    return _randomised_z(1.0 - tail - at, at, ts, salt)


def _poisson_z(k: int, mean: float, ts: float, salt: int) -> float:
    """Randomised quantile of a count k under Poisson(mean), summing the nearer tail."""
    k = max(k, 0)
    at = math.exp(k * math.log(mean) - mean - math.lgamma(k + 1))
    tail, term = 0.0, at
    if k <= mean:  # P(X < k)
        for i in range(k, 0, -1):
            term *= i / mean
            tail += term
        return _randomised_z(tail, at, ts, salt)
    i = k  # P(X > k)
    while term > 1e-17 * max(tail, 1e-300):
        i += 1
        term *= mean / i
        tail += term
    return _randomised_z(1.0 - tail - at, at, ts, salt)
