"""Volume-aware detectors for ratios and means per window, with seasonal baselines (no I/O).

A drop-off of 50% from 4 sessions is not an incident; from 4,000 it is. These detectors
judge a window's value against what they expect with a band whose width shrinks with
the window's volume:

* :class:`RatioDetector` (conversion, flow, abandonment, service level, CSAT): binomial
  sampling variance ``p (1 - p) / n`` plus the extra variance real traffic shows between
  windows (learned, so a step that is noisier than a coin doesn't page anyone);
* :class:`MeanDetector` (speed of answer, errors per visit, NPS, CES): the variance of one
  unit, learned, over ``n``, plus the same extra variance.

The expected value is seasonal: a profile by hour of day (or of week) learned with an
exponentially weighted mean per slot, trusted once a slot has seen ``min_slot_samples``
windows; until then, the overall level. While a window is unusual (in either direction, with enough volume)
the baseline does not learn from it (an outage must not become normal in minutes), but
once the deviation has lasted ``relearn_after`` windows it is taken as the new normal:
the baseline moves to it and the alert clears.

>>> detector = RatioDetector(direction="down", warmup=5, min_volume=20)
>>> for minute in range(30):
...     _ = detector.update(Observation(minute * 60.0, 0.8, 500))
>>> verdict = detector.update(Observation(1800.0, 0.55, 500))
>>> verdict.anomaly, round(verdict.expected, 2), verdict.severity
(True, 0.8, 'critical')
>>> detector.update(Observation(1860.0, 0.55, 4)).anomaly      # the same ratio from 4 sessions
False
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from frictionwatch.detectors.base import Direction, Observation, Verdict, severity_for

Season = Literal["none", "daily", "weekly"]
SLOTS = {"none": 1, "daily": 24, "weekly": 168}
UNUSUAL_LEARNING_RATE = 0.25  # how much less an unusual window teaches the spread
SUSPICIOUS = 1.0  # a window (or pool) this far towards the threshold does not teach the level
WEEK_EPOCH_OFFSET = 3 * 86400  # 1970-01-01 was a Thursday: make slot 0 Monday 00:00 UTC


@dataclass
class _Learned:
    """Everything a volume detector has learned: JSON-able through dataclasses.asdict."""

    level: float | None = None
    extra_variance: float = 0.0
    unit_variance: float | None = None
    slots: dict[str, float] = field(default_factory=dict)
    slot_counts: dict[str, int] = field(default_factory=dict)
    seen: int = 0
    streak: int = 0
    streak_sum: float = 0.0
    bad_run: int = 0
    pool_sum: float = 0.0  # recent windows pooled, newest weighing most: sum of w * (value - expected) * volume
    pool_volume: float = 0.0  # sum of w * volume
    pool_weight: float = 0.0  # sum of w
    pool_weight2: float = 0.0  # sum of w squared
    pool_ts: float | None = None  # when the pool last took a window
    step: float | None = None  # the shortest gap seen between windows: the window length


class _VolumeDetector:
    """Shared logic of :class:`RatioDetector` and :class:`MeanDetector`.

    (``bounds``, a class attribute, is the range the metric can take, if any.)

    Args:
        direction: the bad direction: "down" (conversion), "up" (waits), or "both".
        threshold: score (standard deviations in the bad direction) at which a window is anomalous.
        min_volume: windows with less volume are never anomalous, and teach only a little.
        warmup: windows with any volume before the first alert.
        consecutive: anomalous windows in a row before the detector fires.
        season: "daily" or "weekly" profile of the expected value, or "none".
        alpha: weight of a new window in the overall level and variance.
        slot_alpha: weight of a new window in its seasonal slot.
        min_slot_samples: windows a slot needs before its profile is trusted.
        relearn_after: anomalous windows in a row after which the new level is the normal one.
        min_excess: sessions (or units) a window must be off by, beyond what was expected,
            before it can be anomalous: 2 abandons more than the usual 1 is not an incident,
            however improbable a statistician finds it.
        pool_decay: weight of the previous windows when recent windows are pooled (0 = no
            pooling). At low volume no single window can prove much; the pooled windows can:
            the score is the larger of the window's and the pool's, so a quiet touchpoint
            still alerts on a deviation that lasts a few windows.
    """

    def __init__(
        self,
        direction: Direction = "both",
        threshold: float = 4.0,
        min_volume: float = 20,
        warmup: int = 30,
        consecutive: int = 1,
        season: Season = "daily",
        alpha: float = 0.05,
        slot_alpha: float = 0.1,
        min_slot_samples: int = 20,
        relearn_after: int = 60,
        min_excess: float = 3.0,
        pool_decay: float = 0.9,
    ) -> None:
        if direction not in ("up", "down", "both"):
            raise ValueError(f"direction must be up, down or both, not {direction!r}")
        if season not in SLOTS:
            raise ValueError(f"season must be none, daily or weekly, not {season!r}")
        if consecutive < 1 or warmup < 0 or threshold <= 0 or min_volume < 0:
            raise ValueError("consecutive >= 1, warmup >= 0, threshold > 0 and min_volume >= 0 are required")
        self.direction = direction
        self.threshold = threshold
        self.min_volume = min_volume
        self.warmup = warmup
        self.consecutive = consecutive
        self.season = season
        self.alpha = alpha
        self.slot_alpha = slot_alpha
        self.min_slot_samples = min_slot_samples
        self.relearn_after = relearn_after
        self.min_excess = min_excess
        self.bounds: tuple[float, float] | None = None
        self.pool_decay = pool_decay
        self.learned = _Learned()

    def __repr__(self) -> str:
        settings = ", ".join(
            f"{name}={value!r}" for name, value in vars(self).items() if name not in ("learned", "bounds")
        )
        return f"{type(self).__name__}({settings})"

    # -- the model each subclass fills in ---------------------------------------------------

    def _sampling_variance(self, expected: float, volume: float) -> float:
        raise NotImplementedError

    def _learn_spread(self, residual: float, volume: float, alpha: float) -> None:
        """Learn how far windows stray from the expected value: unit and between-window variance."""
        learned = self.learned
        self._learn_unit_variance(residual, volume, alpha)
        level = learned.level if learned.level is not None else 0.0
        excess = residual * residual - self._sampling_variance(level, max(volume, 1.0))
        learned.extra_variance = max(0.0, learned.extra_variance + alpha * (excess - learned.extra_variance))

    def _learn_unit_variance(self, deviation: float, volume: float, alpha: float) -> None:
        """Hook for MeanDetector; ratios know their sampling variance from p."""

    # -- detection --------------------------------------------------------------------------

    def _slot(self, ts: float) -> str:
        if self.season == "daily":
            return str(int(ts // 3600) % 24)
        if self.season == "weekly":
            return str(int((ts + WEEK_EPOCH_OFFSET) // 3600) % 168)
        return "0"

    def expected(self, ts: float) -> float | None:
        """The value this detector expects for a window ending at ``ts``; None before any data."""
        learned = self.learned
        slot = self._slot(ts)
        if self.season != "none" and learned.slot_counts.get(slot, 0) >= self.min_slot_samples:
            return learned.slots[slot]
        return learned.level

    def update(self, observation: Observation) -> Verdict:
        """Judge one window, then learn from it (unless it is anomalous)."""
        learned = self.learned
        value, volume = observation.value, observation.volume
        if volume is None or not math.isfinite(value):
            return Verdict.quiet(observation, "no value")
        expected = self.expected(observation.ts)
        if expected is None or volume <= 0:
            self._learn(observation, weight=1.0 if expected is None else 0.0)
            return Verdict.quiet(observation, "first window" if expected is None else "no volume")
        variance = self._sampling_variance(expected, volume) + learned.extra_variance
        spread = math.sqrt(max(variance, 1e-12))
        z = (value - expected) / spread
        lower, upper = expected - self.threshold * spread, expected + self.threshold * spread
        if self.bounds is not None:  # a ratio's band stays within 0 and 1
            lower, upper = max(lower, self.bounds[0]), min(upper, self.bounds[1])
        # the pool takes the window's value clipped to its band: one long wait among three
        # contacts must not hold the pool off its normal for the next several windows
        clipped = min(max(value, lower), upper)
        pooled_z, pooled_excess = self._pool(clipped, volume, expected, observation.ts)
        window_counts = volume >= self.min_volume
        pool_counts = learned.pool_volume >= self.min_volume
        score = max(self._bad_side(z) if window_counts else 0.0, self._bad_side(pooled_z) if pool_counts else 0.0)
        excess = max(abs(value - expected) * volume if window_counts else 0.0, pooled_excess if pool_counts else 0.0)
        enough = window_counts or pool_counts
        warm = learned.seen >= self.warmup
        bad = enough and score >= self.threshold and excess >= self.min_excess
        learned.bad_run = learned.bad_run + 1 if bad else 0
        anomaly = bad and warm and learned.bad_run >= self.consecutive
        reason = "" if anomaly else ("low volume" if not enough else "warming up" if not warm else "")
        if warm and enough and max(abs(z), abs(pooled_z)) >= self.threshold * SUSPICIOUS:
            # unusual either way (or an incident building up): don't learn the level from it
            self._track_streak(value)
            # ... but do learn, slowly and clipped, that windows can be off, or the band would only
            # ever narrow and every quirk of the series would end up paging someone
            limit = self.threshold * SUSPICIOUS * spread
            self._learn_spread(min(max(value - expected, -limit), limit), volume, self.alpha * UNUSUAL_LEARNING_RATE)
        else:
            learned.streak, learned.streak_sum = 0, 0.0
            self._learn(observation, weight=min(1.0, volume / max(self.min_volume, 1.0)))
        severity = severity_for(score, self.threshold) if anomaly else "none"
        return Verdict(observation.ts, value, expected, lower, upper, score, volume, anomaly, severity, reason)

    def _bad_side(self, z: float) -> float:
        return {"up": max(0.0, z), "down": max(0.0, -z), "both": abs(z)}[self.direction]

    def _pool(self, value: float, volume: float, expected: float, ts: float) -> tuple[float, float]:
        """Add the window to the pool; the pool's z-score and excess (in sessions or units).

        The pool fades per window *of time*, not per observation: a touchpoint that sees one
        session an hour pools the last few windows, not the last few hours.
        """
        learned = self.learned
        decay = self.pool_decay
        if learned.pool_ts is not None and ts > learned.pool_ts:
            gap = ts - learned.pool_ts
            learned.step = gap if learned.step is None else min(learned.step, gap)
            decay = self.pool_decay ** max(1.0, round(gap / learned.step))
        learned.pool_ts = ts
        learned.pool_sum = decay * learned.pool_sum + (value - expected) * volume  # residuals: seasons cancel
        learned.pool_volume = decay * learned.pool_volume + volume
        learned.pool_weight = decay * learned.pool_weight + 1.0
        learned.pool_weight2 = decay * decay * learned.pool_weight2 + 1.0
        if self.pool_decay <= 0 or learned.pool_volume <= 0:
            return 0.0, 0.0
        residual = learned.pool_sum / learned.pool_volume
        # between-window variance shrinks with the effective number of windows pooled
        extra = learned.extra_variance * learned.pool_weight2 / (learned.pool_weight * learned.pool_weight)
        variance = self._sampling_variance(expected, learned.pool_volume) + extra
        return residual / math.sqrt(max(variance, 1e-12)), abs(residual) * learned.pool_volume

    def _track_streak(self, value: float) -> None:
        learned = self.learned
        learned.streak += 1
        learned.streak_sum += value
        if learned.streak >= self.relearn_after:  # a lasting shift: the new level is the normal now
            new_level = learned.streak_sum / learned.streak
            shift = new_level - (learned.level if learned.level is not None else new_level)
            learned.level = new_level
            learned.slots = {slot: mean + shift for slot, mean in learned.slots.items()}
            learned.streak, learned.streak_sum, learned.bad_run = 0, 0.0, 0
            learned.pool_sum = learned.pool_volume = learned.pool_weight = learned.pool_weight2 = 0.0

    def _learn(self, observation: Observation, weight: float) -> None:
        learned = self.learned
        value, volume = observation.value, observation.volume or 0.0
        if weight <= 0:
            return
        if learned.level is None:
            learned.level = value
        else:
            expected = self.expected(observation.ts)  # seasonal once trusted: the noise is what it leaves
            residual = value - (expected if expected is not None else learned.level)
            alpha = self.alpha * weight
            learned.level += alpha * (value - learned.level)
            self._learn_spread(residual, volume, alpha)
        slot = self._slot(observation.ts)
        count = learned.slot_counts.get(slot, 0)
        previous = learned.slots.get(slot, value)
        learned.slots[slot] = previous + max(self.slot_alpha, 1.0 / (count + 1)) * weight * (value - previous)
        learned.slot_counts[slot] = count + 1
        if volume > 0:
            learned.seen += 1

    # -- checkpoints ------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return asdict(self.learned)

    def restore(self, state: dict[str, Any]) -> None:
        self.learned = _Learned(**state)


class RatioDetector(_VolumeDetector):
    """A ratio per window (0-1) with its denominator as volume: binomial variance + extra.

    The binomial variance uses the expected ratio pulled towards 1/2 by one success and
    one failure (Laplace), so a step that converted every one of its few sessions so far
    does not call a single lost session impossible.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.bounds = (0.0, 1.0)

    def _sampling_variance(self, expected: float, volume: float) -> float:
        p = (min(max(expected, 0.0), 1.0) * volume + 1.0) / (volume + 2.0)
        return p * (1 - p) / volume


class MeanDetector(_VolumeDetector):
    """A mean per window (seconds, scores, events per visit) over ``volume`` units.

    The variance of one unit is learned, but never below the expected value itself (the
    Poisson variance of a count): for rare events such as errors per visit, a window with
    one error more than usual is not a surprise.
    """

    def _sampling_variance(self, expected: float, volume: float) -> float:
        unit = self.learned.unit_variance
        floor = abs(expected) + 1.0 / volume  # Poisson, and at least one event's worth
        return max(unit if unit is not None else 0.0, floor) / volume

    def _learn_unit_variance(self, deviation: float, volume: float, alpha: float) -> None:
        learned = self.learned
        sample = deviation * deviation * max(volume, 1.0)
        if learned.unit_variance is None:
            learned.unit_variance = sample
        else:
            learned.unit_variance += alpha * (sample - learned.unit_variance)
