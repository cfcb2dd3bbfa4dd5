"""Ratios and impact computed from a final window's counts (no I/O).

>>> step_ratios({"ended_reached": 10, "ended_reached_next": 6, "dropoffs": 3, "flow_progressed": 4,
...              "flow_stalled": 1})
{'step_conversion': 0.6, 'dropoff_ratio': 0.3, 'flow_ratio': 0.8, 'early_flow_ratio': None}
>>> baseline = ConversionBaseline(alpha=0.5, warmup=1)
>>> baseline.update("cart", 0.8)
>>> round(baseline.conversions_lost("cart", ended_reached=100, conversion=0.5, downstream=0.5), 6)
15.0
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


def ratio(numerator: float, denominator: float) -> float | None:
    """numerator / denominator, or None when there is nothing to divide by."""
    return numerator / denominator if denominator > 0 else None


def step_ratios(fields: Mapping[str, float]) -> dict[str, float | None]:
    """The step's ratios in one window (docs/metrics.md): None where the window had no volume."""
    get = fields.get
    return {
        "step_conversion": ratio(get("ended_reached_next", 0.0), get("ended_reached", 0.0)),
        "dropoff_ratio": ratio(get("dropoffs", 0.0), get("ended_reached", 0.0)),
        "flow_ratio": ratio(get("flow_progressed", 0.0), get("flow_progressed", 0.0) + get("flow_stalled", 0.0)),
        "early_flow_ratio": ratio(
            get("early_progressed", 0.0), get("early_progressed", 0.0) + get("early_waiting", 0.0)
        ),
    }


@dataclass
class ConversionBaseline:
    """The recent normal of each step's conversion: an exponentially weighted mean per key.

    Args:
        alpha: weight of the newest window (0.1 remembers about the last 10 windows).
        warmup: windows with volume needed before the baseline is trusted.
    """

    alpha: float = 0.1
    warmup: int = 10
    means: dict[str, float] = field(default_factory=dict)
    seen: dict[str, int] = field(default_factory=dict)

    def update(self, key: str, value: float | None) -> None:
        if value is None:
            return
        previous = self.means.get(key)
        self.means[key] = value if previous is None else previous + self.alpha * (value - previous)
        self.seen[key] = self.seen.get(key, 0) + 1

    def mean(self, key: str) -> float | None:
        return self.means.get(key) if self.seen.get(key, 0) >= self.warmup else None

    def conversions_lost(self, key: str, ended_reached: float, conversion: float | None, downstream: float) -> float:
        """Goal conversions lost at a step in one window, against its baseline.

        Sessions that reached the step but did not move on, beyond what the baseline
        conversion expects, times ``downstream``: the share of sessions past the step that
        usually convert. 0 while the baseline warms up or when the step does better.
        """
        usual = self.mean(key)
        if usual is None or conversion is None:
            return 0.0
        return max(0.0, (usual - conversion) * ended_reached) * downstream
