"""``kind: auto``: the window detector on a series' first day, sequential evidence from then on.

A :class:`~frictionwatch.detectors.sequential.SequentialDetector` judges each window against
a daily profile, and on its first day it has none: every hour is new, and an afternoon peak
that makes a busy queue's waits and abandonment climb looks like friction. On the project's
backtest day (30 events/s, one day from a cold start) the sequential detectors alone paged
8 times on normal traffic, all in hours they were seeing for the first time; the window
detectors, whose bands are wide and need two anomalous windows in a row, paged none.

So :class:`FirstDayHandover` feeds every window to both. For the first ``handover_after``
seconds of the series (a day by default) the window detector's verdict is the answer, while
the sequential detector learns the daily profile; from then on the sequential detector's
verdict is, and the window detector rests. At the hand-over the sequential detector's
accumulated evidence is dropped unless the window detector is alarming then: what it added
up while it could not know the profile is not evidence.

>>> from frictionwatch.detectors.sequential import SequentialDetector
>>> from frictionwatch.detectors.volume import RatioDetector
>>> guard = FirstDayHandover(RatioDetector(direction="down"), SequentialDetector("binomial", direction="down"))
>>> guard.update(Observation(0.0, 0.8, 50)).reason  # the window detector's verdict
'first window'
>>> guard.active
'window'
>>> guard.update(Observation(86_400.0, 0.8, 50)).reason  # a day later: the sequential detector's
'warming up'
>>> guard.threshold, guard.active
(1.0, 'sequential')
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from frictionwatch.detectors.base import Detector, Observation, Verdict
from frictionwatch.detectors.sequential import SequentialDetector

__all__ = ["HANDOVER_AFTER", "FirstDayHandover"]

HANDOVER_AFTER = 86400.0  # seconds of a series' event time: one daily profile


class FirstDayHandover:
    """The window detector ``first`` until ``handover_after`` seconds after the series' first
    window, the sequential detector ``then`` after that (see the module docstring).

    Args:
        first: the window detector that answers on the first day.
        then: the sequential detector that learns from the start and answers afterwards.
        handover_after: seconds of event time from the first window to the hand-over.
    """

    def __init__(self, first: Detector, then: SequentialDetector, handover_after: float = HANDOVER_AFTER) -> None:
        if not handover_after >= 0:
            raise ValueError(f"handover_after must be >= 0 seconds, not {handover_after!r}")
        self.first = first
        self.then = then
        self.handover_after = handover_after
        self.first_ts: float | None = None
        self.handed_over = handover_after == 0
        self.window_alarming = False  # the window detector's last verdict

    def __repr__(self) -> str:
        return f"FirstDayHandover(first={self.first!r}, then={self.then!r}, handover_after={self.handover_after!r})"

    @property
    def active(self) -> str:
        """Which detector answers now: ``window`` or ``sequential``."""
        return "sequential" if self.handed_over else "window"

    @property
    def threshold(self) -> float:
        """The score at which the answering detector alarms."""
        detector = self.then if self.handed_over else self.first
        return float(getattr(detector, "threshold", 1.0))

    def update(self, observation: Observation) -> Verdict:
        if self.first_ts is None:
            self.first_ts = observation.ts
        if not self.handed_over and observation.ts - self.first_ts >= self.handover_after:
            self.handed_over = True
            if not self.window_alarming:
                self.then.forget_evidence()
        if self.handed_over:
            return self.then.update(observation)
        self.then.update(observation)  # learning the daily profile; its verdict is not the answer yet
        verdict = self.first.update(observation)
        self.window_alarming = verdict.anomaly
        reason = verdict.reason or "first day: window detector"
        return replace(verdict, reason=reason)

    def state(self) -> dict[str, Any]:
        return {
            "first_ts": self.first_ts,
            "handed_over": self.handed_over,
            "window_alarming": self.window_alarming,
            "window": None if self.handed_over else self.first.state(),
            "sequential": self.then.state(),
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Take back a state of this kind; or, after a map changed to ``kind: auto``, a sequential
        detector's (it carries on answering) or a window detector's (it carries on answering
        while the sequential one starts its first day)."""
        if "sequential" not in state:
            if "level_sum" in state:  # a SequentialDetector's
                self.then.restore(state)
                self.handed_over = True
            else:
                self.first.restore(state)
                self.handed_over = self.handover_after == 0
            self.first_ts, self.window_alarming = None, False
            return
        self.then.restore(state["sequential"])
        if state["window"] is not None:
            self.first.restore(state["window"])
        self.first_ts = state["first_ts"]
        self.handed_over = bool(state["handed_over"])
        self.window_alarming = bool(state.get("window_alarming", False))
