"""One PNG per series: observed value, expected band, alerts and labelled incidents (matplotlib, Agg).

matplotlib is imported when the first plot is drawn, not with this module: every command's
parser imports the backtest's (``frictionwatch --help``, the worker), and matplotlib cost
them about 30 MB of memory and up to a second of start-up (bench/README.md).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from frictionwatch.detectors.base import Verdict

UNITS = {
    "early_flow_ratio": "ratio (0-1)",
    "flow_ratio": "ratio (0-1)",
    "step_conversion": "ratio (0-1)",
    "dropoff_ratio": "ratio (0-1)",
    "errors_per_visit": "errors per step visit",
    "rage_clicks_per_visit": "rage clicks per step visit",
    "abandonment_ratio": "ratio (0-1)",
    "average_speed_of_answer": "seconds",
    "service_level": "ratio (0-1)",
    "csat": "share satisfied (0-1)",
    "nps": "NPS (-100 to 100)",
    "ces": "mean effort score (1-7)",
}
VOLUME_UNITS = "volume (sessions, contacts, answers)"
OBSERVED, BAND, ALERT, INCIDENT = "#1f4e79", "#9ecae1", "#d62728", "#ff9f1c"


def _time(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def safe_name(text: str) -> str:
    """A file name made of the text's letters, digits, dots, dashes and underscores."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "series"


def plot_series(
    path: Path,
    title: str,
    metric: str,
    verdicts: Sequence[Verdict],
    alerts: Sequence[tuple[float, float]],
    incidents: Sequence[tuple[str, float, float]],
    window_size: float,
    threshold: float | None = None,
    units: str | None = None,
) -> Path:
    """Write one series' PNG to ``path``.

    ``alerts`` are (first flagged window end, last flagged window end); each is drawn as the
    span of its windows. ``incidents`` are (name, start, end) labelled windows. Times are
    epoch seconds (drawn in UTC).
    """
    import matplotlib

    matplotlib.use("Agg")  # no display: files only
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    times = [_time(v.ts) for v in verdicts]
    figure, (top, bottom) = plt.subplots(
        2, 1, figsize=(11, 4.8), sharex=True, gridspec_kw={"height_ratios": [3, 1]}, layout="constrained"
    )
    for name, start, end in incidents:
        for axis in (top, bottom):
            axis.axvspan(_time(start), _time(end), color=INCIDENT, alpha=0.25, lw=0)
        top.annotate(
            name, (_time(start), 1.0), xycoords=("data", "axes fraction"), va="top", fontsize=8, color="#8a4b00"
        )
    for start, end in alerts:
        top.axvspan(_time(start - window_size), _time(end), color=ALERT, alpha=0.35, lw=0)
    lower = [v.lower if math.isfinite(v.lower) else math.nan for v in verdicts]
    upper = [v.upper if math.isfinite(v.upper) else math.nan for v in verdicts]
    top.fill_between(times, lower, upper, color=BAND, alpha=0.6, lw=0, step="pre", label="expected band")
    top.plot(times, [v.expected for v in verdicts], color="#6baed6", lw=0.8, drawstyle="steps-pre", label="expected")
    top.plot(times, [v.observed for v in verdicts], color=OBSERVED, lw=0.9, drawstyle="steps-pre", label="observed")
    flagged = [(t, v.observed) for t, v in zip(times, verdicts, strict=True) if v.anomaly]
    if flagged:
        top.scatter([t for t, _ in flagged], [y for _, y in flagged], s=10, color=ALERT, zorder=3, label="alert window")
    handles, labels = top.get_legend_handles_labels()
    from matplotlib.patches import Patch

    if incidents:
        handles.append(Patch(color=INCIDENT, alpha=0.25))
        labels.append("labelled incident")
    top.legend(handles, labels, loc="upper right", fontsize=7, ncols=5, framealpha=0.8)
    band = f", band = expected ± {threshold:g} sd" if threshold is not None else ""
    top.set_title(f"{title}{band}", fontsize=10)
    top.set_ylabel(units or UNITS.get(metric, metric), fontsize=8)
    top.grid(alpha=0.3)
    bottom.bar(times, [v.volume or 0.0 for v in verdicts], width=window_size / 86400.0, color="#999999", align="edge")
    bottom.set_ylabel("volume", fontsize=8)
    bottom.set_xlabel("window end, UTC", fontsize=8)
    bottom.grid(alpha=0.3)
    bottom.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:%M"))  # type: ignore[no-untyped-call]
    for axis in (top, bottom):
        axis.tick_params(labelsize=7)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=80)
    plt.close(figure)
    return path
