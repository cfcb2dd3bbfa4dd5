"""What every detector takes and gives, one closed window at a time (no I/O).

A detector watches one series: one metric of one touchpoint (say the early flow ratio of
purchase/payment/web). Each closed window it is fed one :class:`Observation` and answers
with a :class:`Verdict`. Detectors are configured entirely through ``__init__`` arguments
(so they clone and print, as river's estimators do) and hold their learned state in plain
attributes that :meth:`Detector.state` / :meth:`Detector.restore` turn into JSON-able
dicts, so a worker can checkpoint them and a new worker carry on without a new warm-up.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

Direction = Literal["up", "down", "both"]
Severity = Literal["none", "info", "warning", "critical"]


@dataclass(frozen=True, slots=True)
class Observation:
    """One window of one series.

    ``value`` is the metric (a ratio, seconds, a count, a score); ``volume`` how many
    sessions or contacts it rests on (for ratios: the denominator), None when the metric
    has no natural volume; ``ts`` the window's end, epoch seconds (for seasonality).
    """

    ts: float
    value: float
    volume: float | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    """A detector's answer for one window.

    ``score`` is how unusual the window is in the bad direction, in standard deviations
    (0 = as expected); ``expected`` and ``lower``/``upper`` the value and band the detector
    expected; ``anomaly`` whether it fires (after warm-up, minimum volume and the
    consecutive-windows rule); ``severity`` how bad.
    """

    ts: float
    observed: float
    expected: float
    lower: float
    upper: float
    score: float
    volume: float | None
    anomaly: bool
    severity: Severity = "none"
    reason: str = ""

    @classmethod
    def quiet(cls, observation: Observation, reason: str) -> Verdict:
        """A verdict that can't judge the window (warming up, no volume): nothing expected."""
        nan = math.nan
        return cls(observation.ts, observation.value, nan, nan, nan, 0.0, observation.volume, False, "none", reason)


class Detector(Protocol):
    """Fed one observation per closed window, in time order."""

    def update(self, observation: Observation) -> Verdict: ...

    def state(self) -> dict[str, Any]:
        """The learned state, JSON-able (not the configuration)."""
        ...

    def restore(self, state: dict[str, Any]) -> None:
        """Take back a state from :meth:`state` of a detector configured the same way."""
        ...


#: severity ordering: an incident takes the highest its metrics reached; a series reports when it gets worse
SEVERITY_RANK: Mapping[str, int] = {"none": 0, "info": 1, "warning": 2, "critical": 3}


def severity_for(score: float, threshold: float) -> Severity:
    """warning from the threshold, critical from twice the threshold."""
    if score >= 2 * threshold:
        return "critical"
    if score >= threshold:
        return "warning"
    return "none"
