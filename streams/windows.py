"""Event-time tumbling windows that close on the watermark, not on the wall clock (no I/O).

A :class:`WindowedCounts` belongs to one input partition. Metric code adds amounts to
named *fields* of a *touchpoint* at an event time; the amounts land in the tumbling
window that holds that time. The partition's watermark is the largest event time seen;
a window [start, end) closes once ``watermark >= end + allowed_lateness``, and
:meth:`WindowedCounts.advance` hands back the closed windows in order, empty ones too
(a window with no events is still a window that has passed: its counts are zero). An amount for a
window that has already closed is *late*: it is refused (``add`` returns False) and the
caller counts it, so nothing disappears silently.

>>> counts = WindowedCounts(size=60, allowed_lateness=10)
>>> place = Touchpoint("purchase", "cart", "web")
>>> counts.add(125.0, place, "step_entered")
True
>>> counts.advance(185.0)          # window [120, 180) needs the watermark at 190
[]
>>> [(w.start, dict(w.counts[place])) for w in counts.advance(191.0)]
[(120.0, {'step_entered': 1.0})]
>>> [(w.start, len(w.counts)) for w in counts.advance(311.0)]   # empty windows close too
[(180.0, 0), (240.0, 0)]
>>> counts.add(170.0, place, "step_entered")   # [120, 180) is closed: late
False
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import NamedTuple


class Touchpoint(NamedTuple):
    """Where friction is measured: a journey step on a channel, or a contact queue.

    Fields are Prometheus label values; "" means "not applicable" (a queue has no step).
    """

    journey: str = ""
    step: str = ""
    channel: str = ""
    queue: str = ""
    survey: str = ""


FieldCounts = dict[str, float]

#: After a jump of the watermark, at most this many empty windows are returned.
MAX_EMPTY_WINDOWS = 360
#: Session or contact ids kept per touchpoint and window, as examples for on-call staff.
MAX_EXAMPLES = 5


@dataclass(slots=True)
class Window:
    """One tumbling window's amounts: touchpoint -> field -> amount."""

    start: float
    end: float
    counts: dict[Touchpoint, FieldCounts] = field(default_factory=lambda: defaultdict(lambda: defaultdict(float)))
    examples: dict[Touchpoint, list[str]] = field(default_factory=dict)


class WindowedCounts:
    """Tumbling windows of ``size`` seconds for one partition, closed by its watermark.

    Args:
        size: window length in seconds (60 by default; 10 works).
        allowed_lateness: how long after its end a window stays open for late events.
    """

    def __init__(self, size: float = 60.0, allowed_lateness: float = 0.0) -> None:
        if not size > 0:
            raise ValueError(f"window size must be > 0 seconds, got {size!r}")
        if not allowed_lateness >= 0:
            raise ValueError(f"allowed lateness must be >= 0 seconds, got {allowed_lateness!r}")
        self.size = float(size)
        self.allowed_lateness = float(allowed_lateness)
        self.watermark = -math.inf
        self.open: dict[float, Window] = {}
        self.closed_before = -math.inf  # every window starting before this has closed
        self.first_start = math.inf  # the earliest window this partition has seen
        #: a watermark before this closes no window (see :meth:`_quiet`): most events skip the
        #: arithmetic of :meth:`advance`
        self.quiet_until = -math.inf

    def window_start(self, ts: float) -> float:
        return math.floor(ts / self.size) * self.size

    def add(
        self, ts: float, touchpoint: Touchpoint, name: str, amount: float = 1.0, example: str | None = None
    ) -> bool:
        """Add ``amount`` to ``name`` of ``touchpoint`` in the window holding ``ts``; False if late.

        ``example`` (a session or contact id showing the friction) is kept, up to five per
        touchpoint and window, for the alerts on-call staff receive.
        """
        start = math.floor(ts / self.size) * self.size  # window_start, without its call
        if start < self.closed_before:
            return False
        if start < self.first_start:  # min(), without its call: this runs for every amount
            self.first_start = start
        window = self.open.get(start)
        if window is None:
            window = self.open[start] = Window(start, start + self.size)
        window.counts[touchpoint][name] += amount
        if example is not None:
            kept = window.examples.setdefault(touchpoint, [])
            if len(kept) < MAX_EXAMPLES and example not in kept:
                kept.append(example)
        return True

    def is_late(self, ts: float) -> bool:
        return self.window_start(ts) < self.closed_before

    def advance(self, ts: float) -> list[Window]:
        """Move the watermark to ``ts`` (if later) and return the windows that closed, oldest first."""
        if ts <= self.watermark:
            return []
        self.watermark = ts
        if ts < self.quiet_until:
            return []
        self.first_start = min(self.first_start, self.window_start(ts))
        horizon = self.window_start(ts - self.allowed_lateness)  # windows starting before this are done
        if horizon <= self.closed_before:
            self._quiet()
            return []
        begin = max(self.closed_before, self.first_start, horizon - MAX_EMPTY_WINDOWS * self.size)
        self.closed_before = horizon
        closed = [self.open.pop(start) for start in sorted(start for start in self.open if start < begin)]
        count = round((horizon - begin) / self.size)
        for index in range(max(0, count)):
            start = begin + index * self.size
            window = self.open.pop(start, None)
            closed.append(window if window is not None else Window(start, start + self.size))
        self._quiet()
        return closed

    def _quiet(self) -> None:
        """Note how far the watermark can go before the next window closes: short of the exact
        bound by far more than rounding can move it, so :meth:`advance` decides as before."""
        bound = self.closed_before + self.size + self.allowed_lateness
        self.quiet_until = bound - max(self.size * 1e-6, abs(bound) * 1e-12)
