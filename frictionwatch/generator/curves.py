"""How busy the shop is: a smooth daily traffic curve and a mild weekly rhythm.

:class:`TrafficPattern` gives the relative traffic level at an epoch time (UTC): a sum
of cosines over the day, lowest around 04:30 (about 15% of the peak) and highest around
20:30, with a lunchtime shoulder; multiplied by a weekday factor interpolated between
day centres. The daily curve averages exactly 1 over a day and the weekday factors
average 1 over a week, so a requested mean rate is honoured over a day to within the
weekday factor (a few percent) and exactly over a week.

>>> pattern = TrafficPattern()
>>> midnight = 1795478400.0  # 2026-11-24T00:00:00Z
>>> evening, night = midnight + 20.5 * 3600, midnight + 4.5 * 3600
>>> round(pattern.level(night) / pattern.level(evening), 2)
0.15
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DAY = 86400.0
HOUR = 3600.0
# 1970-01-01 was a Thursday: day number + 3 gives Monday = 0.
_EPOCH_WEEKDAY = 3


@dataclass(frozen=True, slots=True)
class Harmonic:
    """One cosine of the daily curve: ``cycles`` per day, peaking at ``peak_hour`` (UTC)."""

    cycles: int
    amplitude: float
    peak_hour: float


DAILY_HARMONICS = (Harmonic(1, 0.55, 18.0), Harmonic(2, 0.25, 10.0))
# Monday .. Sunday: a little quieter on Friday and Saturday, busier on Sunday evenings.
WEEKDAY_FACTORS = (1.0, 1.02, 1.02, 1.0, 0.96, 0.97, 1.03)


@dataclass(frozen=True, slots=True)
class TrafficPattern:
    """Relative traffic level over time; ``flat`` makes it a constant 1 and keeps the contact
    centre's staff on duty all day (benchmarks and tests whose outcome must not depend on the
    time of day they run at)."""

    harmonics: tuple[Harmonic, ...] = DAILY_HARMONICS
    weekdays: tuple[float, ...] = WEEKDAY_FACTORS
    flat: bool = False

    def __post_init__(self) -> None:
        mean = sum(self.weekdays) / len(self.weekdays)
        object.__setattr__(self, "weekdays", tuple(factor / mean for factor in self.weekdays))

    def daily(self, t: float) -> float:
        """The daily curve alone (mean 1 over a day)."""
        hour = (t % DAY) / HOUR
        level = 1.0
        for harmonic in self.harmonics:
            level += harmonic.amplitude * math.cos(2.0 * math.pi * harmonic.cycles * (hour - harmonic.peak_hour) / 24.0)
        return level

    def weekly(self, t: float) -> float:
        """The weekday factor, interpolated linearly between the middles of the days."""
        position = t / DAY - 0.5
        day = math.floor(position)
        fraction = position - day
        today = self.weekdays[(day + _EPOCH_WEEKDAY) % 7]
        tomorrow = self.weekdays[(day + 1 + _EPOCH_WEEKDAY) % 7]
        return today + (tomorrow - today) * fraction

    def level(self, t: float) -> float:
        """Relative traffic at epoch time ``t``: 1 is the mean rate."""
        if self.flat:
            return 1.0
        return self.daily(t) * self.weekly(t)

    @property
    def peak(self) -> float:
        """An upper bound of :meth:`level` (for thinning a Poisson process)."""
        if self.flat:
            return 1.0
        return (1.0 + sum(abs(harmonic.amplitude) for harmonic in self.harmonics)) * max(self.weekdays)

    def span_for(self, expected: float, end: float, rate: float, step: float = 60.0) -> float:
        """Seconds before ``end`` in which ``rate`` x level adds up to ``expected`` events."""
        total, span = 0.0, 0.0
        while total < expected:
            total += rate * self.level(end - span - step / 2) * step
            span += step
        return span
