"""A false-alarm budget, and the CUSUM thresholds that spend it (pure math, no I/O).

Product teams say how often a detector may page them for nothing: ``1 per 30d`` means one
false alarm per 30 days on one series (one metric of one touchpoint) on normal traffic.
A sequential detector turns that into the threshold of its evidence: the CUSUM of its
per-window evidence ``z`` (about standard normal on normal traffic) against a shift of
``shift`` standard deviations,

    S = max(0, S + shift * z - shift**2 / 2),

alarms when ``S`` reaches ``h``; ``h`` is chosen so that the *average run length* between
false alarms (in windows) is the budget's period over the window length. The run length of
a normal CUSUM follows Siegmund's approximation (Siegmund 1985, eq. 2.56; accurate to a few
percent): with ``k = shift / 2`` and ``b = h / shift + 1.166``,

    ARL0 = (exp(2 k b) - 2 k b - 1) / (2 k**2).

>>> budget = FalseAlarmBudget.parse("1 per 30d")
>>> budget, round(budget.windows_between_alarms(60.0))
(FalseAlarmBudget('1 per 30d'), 43200)
>>> h = cusum_threshold(43200, shift=1.0)
>>> round(h, 2), round(average_run_length(h, 1.0))
(8.81, 43200)

The shift a CUSUM of threshold ``h`` catches in ``windows`` windows (its mean drift
``shift**2 / 2`` per window adds up to ``h``):

>>> round(detectable_shift(h, windows=5), 2)
1.88
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "FalseAlarmBudget",
    "average_run_length",
    "cusum_threshold",
    "detectable_shift",
    "threshold_for",
]

_PERIOD_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}
_PERIOD_WORDS = {"second": "s", "minute": "m", "hour": "h", "day": "d", "week": "w", "month": "30d", "year": "365d"}
_BUDGET = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:per|/)\s*(\d+(?:\.\d+)?)?\s*([a-z]+)\s*$")
_UNIT = re.compile(r"^(\d*)([smhdw])$")
_SIEGMUND = 1.166  # overshoot correction of a normal CUSUM: 2 * 0.583


@dataclass(frozen=True, slots=True)
class FalseAlarmBudget:
    """At most ``alarms`` false alarms per ``period`` seconds on one series."""

    alarms: float
    period: float

    def __post_init__(self) -> None:
        if not (self.alarms > 0 and self.period > 0):
            raise ValueError(f"a false-alarm budget needs alarms > 0 and a period > 0, got {self}")

    @classmethod
    def parse(cls, text: str) -> FalseAlarmBudget:
        """``"1 per 30d"``, ``"2 per week"``, ``"1/7d"``, ``"0.5 per day"``.

        >>> FalseAlarmBudget.parse("2 per week").period
        604800.0
        >>> FalseAlarmBudget.parse("often")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ValueError: 'often' is not a false-alarm budget: write it as '1 per 30d' (units s, m, h, d, w, ...)
        """
        found = _BUDGET.match(str(text).lower())
        word = found.group(3) if found else ""
        word = word.removesuffix("s") if len(word) > 1 else word
        unit = _UNIT.match(_PERIOD_WORDS.get(word, word) if len(word) > 1 else word)
        if found is None or unit is None:
            raise ValueError(
                f"{text!r} is not a false-alarm budget: write it as '1 per 30d' "
                "(units s, m, h, d, w, or day, week, month)"
            )
        count = float(found.group(2) or 1.0) * float(unit.group(1) or 1.0)
        return cls(float(found.group(1)), count * _PERIOD_UNITS[unit.group(2)])

    def __repr__(self) -> str:
        return f"FalseAlarmBudget({str(self)!r})"

    def __str__(self) -> str:
        for letter, seconds in (("d", 86400.0), ("h", 3600.0), ("m", 60.0)):
            if self.period % seconds == 0:
                return f"{self.alarms:g} per {self.period / seconds:g}{letter}"
        return f"{self.alarms:g} per {self.period:g}s"

    def windows_between_alarms(self, window_seconds: float) -> float:
        """The average run length the budget allows, in windows of ``window_seconds``."""
        return self.period / self.alarms / window_seconds

    def split(self, series: int) -> FalseAlarmBudget:
        """This budget shared by ``series`` series: each gets an equal part.

        >>> str(FalseAlarmBudget.parse("1 per 7d").split(199))
        '1 per 1393d'
        """
        return FalseAlarmBudget(self.alarms, self.period * max(series, 1))


def average_run_length(threshold: float, shift: float) -> float:
    """Windows between false alarms of a normal CUSUM (Siegmund's approximation)."""
    b = threshold / shift + _SIEGMUND
    x = shift * b  # 2 k b with k = shift / 2
    return (math.expm1(x) - x) / (shift * shift / 2.0)


def cusum_threshold(run_length: float, shift: float) -> float:
    """The threshold ``h`` (log-likelihood units) whose average run length is ``run_length``."""
    if run_length <= 1:
        return 0.0
    return threshold_for(lambda h: average_run_length(h, shift), run_length)


def threshold_for(run_length: Callable[[float], float], wanted: float, steps: int = 60) -> float:
    """The threshold ``h >= 0`` at which ``run_length(h)``, increasing in ``h``, reaches ``wanted``
    (doubling to bracket it, then bisection).

    >>> round(threshold_for(lambda h: math.exp(h), 1000.0), 6) == round(math.log(1000.0), 6)
    True
    """
    low, high = 0.0, 1.0
    while run_length(high) < wanted:
        high *= 2.0
    for _ in range(steps):
        middle = (low + high) / 2.0
        low, high = (middle, high) if run_length(middle) < wanted else (low, middle)
    return high


def detectable_shift(threshold: float, windows: float) -> float:
    """The smallest steady shift (standard deviations per window) caught within ``windows``.

    The best CUSUM for a shift ``d`` gains ``d**2 / 2`` a window; it crosses ``h`` after
    ``2 h / d**2`` windows (overshoot aside).
    """
    return math.sqrt(2.0 * threshold / max(windows, 1e-9))
