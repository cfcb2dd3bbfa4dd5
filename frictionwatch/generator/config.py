"""The generator's options, validated once so every later stage can trust them."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final

from frictionwatch.generator.clocks import ClockSkew
from frictionwatch.generator.curves import TrafficPattern

TIME_MODES: Final = ("simulated", "wall")


@dataclass(frozen=True)
class GeneratorConfig:
    """What to generate and how fast.

    * ``rate``: mean events per second (all topics together) over a day of the traffic
      curve; ``duration`` seconds of event time and/or ``count`` events (whichever ends
      first; at least one of them).
    * ``time_mode``: ``"simulated"`` runs event time from ``start`` as fast as possible
      (default start: ``duration`` seconds before now, so the span ends at the present);
      ``"wall"`` runs event time from ``start`` (default: now) and :func:`run` paces the
      output so each event leaves when the wall clock reaches its ``ts``.
    * ``malformed_rate``: share of emitted records replaced by realistic bad input.
    * ``scenario``: a YAML file of incidents (and baseline tuning) to inject.
    * ``daily_pattern``: False makes the rate constant (benchmarks, load tests).
    * ``clock_skews``: devices whose clocks are off (:mod:`~frictionwatch.generator.clocks`).
    * ``random_incidents`` / ``random_controls``: that many incidents / controls drawn from
      the seed (:mod:`~frictionwatch.generator.draw`), besides the scenario's; needs a duration.

    Raises ValueError naming the command-line option on a bad value.
    """

    seed: int = 1
    rate: float = 200.0
    duration: float | None = 3600.0
    count: int | None = None
    time_mode: str = "simulated"
    start: float | None = None
    malformed_rate: float = 0.0
    scenario: Path | None = None
    daily_pattern: bool = True
    random_incidents: int = 0
    random_controls: int = 0
    clock_skews: tuple[ClockSkew, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"--seed must be a whole number, got {self.seed!r}")
        if not _is_number(self.rate) or not math.isfinite(self.rate) or self.rate <= 0:
            raise ValueError(f"--rate must be > 0 events per second, got {self.rate!r}")
        if self.duration is not None and (
            not _is_number(self.duration) or not math.isfinite(self.duration) or self.duration <= 0
        ):
            raise ValueError(f"--duration must be > 0 seconds, got {self.duration!r}")
        if self.count is not None and (
            isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 1
        ):
            raise ValueError(f"--count must be a whole number >= 1, got {self.count!r}")
        if self.duration is None and self.count is None:
            raise ValueError("give --duration or --count (or both: whichever ends first)")
        if self.time_mode not in TIME_MODES:
            raise ValueError(f"--time-mode must be one of: {', '.join(TIME_MODES)}; got {self.time_mode!r}")
        if self.start is not None and (not _is_number(self.start) or not math.isfinite(self.start) or self.start < 0):
            raise ValueError(f"--start must be an epoch time in seconds, got {self.start!r}")
        if not _is_number(self.malformed_rate) or not 0.0 <= self.malformed_rate < 1.0:
            raise ValueError(f"--malformed-rate must be >= 0 and < 1, got {self.malformed_rate!r}")
        for option, value in (
            ("--random-incidents", self.random_incidents),
            ("--random-controls", self.random_controls),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{option} must be a whole number >= 0, got {value!r}")
            if value and self.duration is None:
                raise ValueError(f"{option} needs --duration: the incidents are spread over the run's span")
        if self.scenario is not None and not isinstance(self.scenario, Path):
            object.__setattr__(self, "scenario", Path(self.scenario))

    @property
    def end(self) -> float:
        """Epoch time where event time stops (infinite in pure count mode). Needs a pinned start."""
        if self.start is None:
            raise ValueError("the start is not pinned yet; call pinned() first")
        return math.inf if self.duration is None else self.start + self.duration

    def pinned(self, now: float | None = None) -> GeneratorConfig:
        """This config with ``start`` fixed, so generate() and incidents() agree on it.

        Simulated mode without a start ends the span at ``now``: ``duration`` seconds
        before it, or in count mode the span the traffic curve needs for ``count`` events.
        """
        if self.start is not None:
            return self
        now = time.time() if now is None else now
        if self.time_mode == "wall":
            return replace(self, start=round(now, 3))
        if self.duration is not None:
            span = self.duration
        else:
            assert self.count is not None
            span = TrafficPattern(flat=not self.daily_pattern).span_for(self.count, now, self.rate)
        return replace(self, start=round(now - span, 3))


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
