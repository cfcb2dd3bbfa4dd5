"""The backtest's outputs: a terminal table, summary.json and the plots."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from frictionwatch.backtest.nabmode import NabOutcome
from frictionwatch.backtest.plots import plot_series, safe_name
from frictionwatch.backtest.replay import ReplayResult
from frictionwatch.backtest.scoring import Score, series_name


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def _delay(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def events_table(result: ReplayResult, score: Score) -> str:
    """Per incident, then totals: what a product team reads first."""
    rows = [("incident", "kind", "where", "start (UTC)", "detected", "delay", "first caught by")]
    for detection in score.detections:
        incident, alert = detection.incident, detection.alert
        rows.append(
            (
                incident.name,
                incident.kind,
                incident.where(),
                _when(incident.start),
                "yes" if alert else "NO",
                _delay(detection.delay),
                f"{alert.series} ({alert.path})" if alert else "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    totals = score.totals()
    malformed = result.malformed_total
    by_path = {path: sum(1 for alert in score.scored if alert.path == path) for path in ("windows", "evidence")}
    lines += [
        "",
        f"events replayed        {sum(result.events.values()):,} ({malformed:,} malformed skipped, "
        f"{result.late:,} late amounts, {result.clock_corrected:,} times corrected for device clocks), "
        f"{score.simulated_days:.2f} simulated days",
        f"incidents found        {totals['detected']}/{totals['incidents']}",
        f"alerts                 {totals['alerts']} ({totals['true_alerts']} true, {totals['false_alerts']} false;"
        f" {totals['alerts_after_end']} after the end of input, not scored)",
        f"  by path              window detectors {by_path['windows']}, evidence path {by_path['evidence']}"
        + ("" if result.evidence_path else " (not run: --no-evidence)"),
        f"false alerts per day   {totals['false_alerts_per_day']:.1f} ({totals['false_pages']} of them paged:"
        f" {totals['false_pages_per_day']:.1f} a day; the rest sent as info, late echoes or part of an open"
        " incident, page no one)",
        f"precision              {_pct(totals['precision'])}",
        f"recall                 {_pct(totals['recall'])}",
    ]
    noisy = list(score.false_by_series().items())[:5]
    if noisy:
        lines.append("most false alerts      " + "; ".join(f"{name}: {count}" for name, count in noisy))
    return "\n".join(lines)


def _number(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value


def events_summary(result: ReplayResult, score: Score, options: dict[str, Any], plots: list[str]) -> dict[str, Any]:
    """The JSON summary of an events backtest (documented in docs/backtest.md)."""
    totals = {key: _number(value) if isinstance(value, float) else value for key, value in score.totals().items()}
    return {
        "mode": "events",
        "events_file": result.source,
        "options": options,
        "replay": {
            "lines": result.lines,
            "events": result.events,
            "malformed": result.malformed,
            "late_amounts": result.late,
            "clock_corrected": result.clock_corrected,
            "final_windows": result.windows,
            "series": len(result.series),
            "first_ts": result.first_ts,
            "last_ts": result.last_ts,
            "wall_seconds": round(result.wall_seconds, 3),
        },
        "incidents": [
            {
                "name": d.incident.name,
                "kind": d.incident.kind,
                "where": d.incident.where(),
                "start": d.incident.start,
                "end": d.incident.end,
                "detected": d.detected,
                "delay_seconds": d.delay,
                "caught_by": d.alert.series if d.alert else None,
                "metric": d.alert.metric if d.alert else None,
                "path": d.alert.path if d.alert else None,
            }
            for d in score.detections
        ],
        "totals": totals,
        "false_alerts_by_series": score.false_by_series(),
        "alerts": [
            {
                "series": alert.series,
                "touchpoint": list(alert.place),
                "metric": alert.metric,
                "start": alert.start,
                "end": alert.end,
                "windows": alert.windows,
                "peak_score": round(alert.peak_score, 3),
                "severity": alert.severity,
                "sent_as": alert.sent_as,
                "incident": alert.incident,
                "after_end": alert.after_end,
                "path": alert.path,
            }
            for alert in score.alerts
        ],
        "plots": plots,
    }


def events_plots(result: ReplayResult, score: Score, directory: Path, max_plots: int) -> list[str]:
    """A PNG per window series that alerted or sits at an incident's touchpoint (incident series
    first). The evidence path's series have no windows to draw: their alerts are in the table."""
    alerted = {(alert.place, alert.metric) for alert in score.scored if alert.path == "windows"}  # evidence: no windows
    at_incident = [key for key in result.series if any(d.incident.matches(key[0]) for d in score.detections)]
    chosen = at_incident + sorted(key for key in alerted if key not in at_incident)
    written: list[str] = []
    for key in chosen[:max_plots]:
        trace = result.series[key]
        name = series_name(*key)
        alerts = [(a.start, a.end) for a in score.alerts if (a.place, a.metric) == key]
        incidents = [
            (d.incident.name, d.incident.start, d.incident.end) for d in score.detections if d.incident.matches(key[0])
        ]
        path = directory / f"{safe_name(name)}.png"
        plot_series(path, name, key[1], trace.verdicts, alerts, incidents, result.window_size, trace.threshold)
        written.append(str(path))
    return written


def nab_table(outcome: NabOutcome) -> str:
    lines = [
        f"file                   {outcome.name} ({len(outcome.values):,} rows, first {outcome.probation} probation)",
        f"detector               {outcome.detector}",
        f"label windows found    {outcome.windows_detected}/{outcome.scored_windows}",
        f"alerts                 {len(outcome.alerts)} ({sum(1 for *_, t in outcome.alerts if t)} in a window)",
        f"precision              {_pct(outcome.precision)}",
        f"recall                 {_pct(outcome.recall)}",
    ]
    for profile, score in outcome.scores.items():
        lines.append(f"NAB {profile:<19}{score['normalized']:6.1f}  (raw {score['raw']:.3f})")
    for profile, normalized in outcome.likelihood_scores.items():
        lines.append(f"NAB {profile:<19}{normalized:6.1f}  (anomaly likelihood, threshold swept for this file)")
    return "\n".join(lines)


def nab_plot(outcome: NabOutcome, directory: Path) -> str:
    name = safe_name(outcome.name.replace("/", "_"))
    alerts = [(start, end) for start, end, _ in outcome.alerts]
    epochs = [((a if a.tzinfo else a.replace(tzinfo=UTC)).timestamp()) for a, _ in outcome.windows]
    ends = [((b if b.tzinfo else b.replace(tzinfo=UTC)).timestamp()) for _, b in outcome.windows]
    incidents = [("label", start, end) for start, end in zip(epochs, ends, strict=True)]
    step = (outcome.verdicts[1].ts - outcome.verdicts[0].ts) if len(outcome.verdicts) > 1 else 1.0
    path = directory / f"{name}.png"
    plot_series(path, outcome.name, "value", outcome.verdicts, alerts, incidents, step, units="value")
    return str(path)


def write_json(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")
