r"""What a false-alarm budget means for a journey map, in product teams' terms (pure, no I/O).

``frictionwatch check-config`` prints it: how many series each detector kind watches, the false
alarms the whole map allows per day, and for sequential detectors the smallest change each
budget catches within one window, five windows and half an hour, at a few volumes; then the
evidence path's series and how soon they catch a step that stops and errors that triple.

>>> from frictionwatch.journeymap import load_journey_map, parse_journey_map
>>> lines = explain(load_journey_map(), window_seconds=60.0)
>>> print("\n".join(lines[:2] + lines[3:4]))
detectors: 265 series (265 auto), 33 disabled
  sequential: at most 0.91 false alarms a day across the map (265 series, 60-s windows)
  map budget 1 per 1d, split evenly over the sequential series
>>> text = load_journey_map().source
>>> payment = "  overrides:\n    - {match: {step: payment}, kind: window}\n"
>>> lines = explain(parse_journey_map(open(text).read().replace("  overrides:\n", payment, 1)), 60.0)
>>> lines[0]
'detectors: 265 series (247 auto, 18 window), 33 disabled'
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from frictionwatch.detectors.bank import ALL_CHANNELS, SeriesPlace, resolve
from frictionwatch.detectors.budget import FalseAlarmBudget, cusum_threshold, detectable_shift
from frictionwatch.detectors.sequential import DEFAULT_SHIFTS, UNION
from frictionwatch.journeymap import JourneyMap

__all__ = ["SEQUENTIAL_KINDS", "explain", "sequential_series", "series_of"]

#: kinds judged by sequential evidence against a budget (auto: from the series' second day on)
SEQUENTIAL_KINDS = ("sequential", "auto")

#: typical normal values and volumes the table is printed for: conversion-like ratios
TYPICAL_RATIO = 0.8
VOLUMES = (3, 30, 300)
#: expected outcomes a minute (visitors moving on, errors) the evidence path's table is printed for
EVIDENCE_VOLUMES = (1, 10, 100)


def series_of(journey_map: JourneyMap) -> Iterator[tuple[SeriesPlace, str]]:
    """Every (touchpoint, metric) a worker could watch with this map."""
    from frictionwatch.streams.series import MONITORED

    by_source = {source: [m.name for m in MONITORED if m.source == source] for source in ("clicks", "contacts")}
    surveys = {"csat", "nps", "ces"}
    for journey, step, channel in journey_map.touchpoints():
        for metric in by_source["clicks"]:
            yield (journey, step.name, channel, "", ""), metric
        for survey in step.surveys:
            if survey in surveys:
                yield (journey, step.name, channel, "", survey), survey
        if len(step.channels) > 1 and channel == step.channels[-1]:  # the step on all its channels
            for metric in by_source["clicks"]:
                yield (journey, step.name, ALL_CHANNELS, "", ""), metric
    for channel, queue in journey_map.queues():
        for metric in by_source["contacts"]:
            yield ("", "", channel, queue, ""), metric
        for survey in journey_map.contact_channels[channel].surveys:
            yield ("", "", channel, queue, survey), survey


def sequential_series(journey_map: JourneyMap) -> int:
    """How many enabled series of the map sequential detectors watch."""
    count = 0
    for place, metric in series_of(journey_map):
        settings = resolve(journey_map, place, metric)
        count += bool(settings.enabled) and (settings.kind or "auto") in SEQUENTIAL_KINDS
    return count


def explain(journey_map: JourneyMap, window_seconds: float) -> list[str]:
    """Lines for check-config: series per kind, the map's total budget, what each budget catches."""
    kinds = {"auto": 0, "window": 0, "sequential": 0, "river": 0}
    disabled = 0
    per_day = 0.0
    groups: dict[tuple[str, str], tuple[int, FalseAlarmBudget | float]] = {}
    for place, metric in series_of(journey_map):
        settings = resolve(journey_map, place, metric)
        if not settings.enabled:
            disabled += 1
            continue
        kind = settings.kind or "auto"
        if kind.startswith("river."):
            kinds["river"] += 1
        elif kind in SEQUENTIAL_KINDS:
            kinds[kind] += 1
            budget: FalseAlarmBudget | float = settings.false_alarms or settings.sensitivity or 4.0
            per_day += 86400.0 / (_windows_between(budget, window_seconds) * window_seconds)
            where = "/".join(part for part in place[:2] if part) or "/".join(part for part in place[2:4] if part)
            count, _ = groups.get((where, str(budget)), (0, budget))
            groups[(where, str(budget))] = (count + 1, budget)
        else:
            kinds["window"] += 1
    total = sum(kinds.values())
    shown = ", ".join(f"{count} {kind}" for kind, count in kinds.items() if count)
    lines = [f"detectors: {total} series ({shown}), {disabled} disabled"]
    if not groups:
        return lines
    allowed = f"{per_day:.2g}"
    budgeted = kinds["sequential"] + kinds["auto"]
    lines.append(
        f"  sequential: at most {allowed} false alarm{'' if allowed == '1' else 's'} a day across the map "
        f"({budgeted} series, {window_seconds:g}-s windows)"
    )
    if kinds["auto"]:
        lines.append(
            f"  auto ({kinds['auto']} series): window detectors on a series' first day, while the daily profile"
            " is learned; this budget from then on"
        )
    if journey_map.map_false_alarms is not None:
        lines.append(f"  map budget {journey_map.map_false_alarms}, split evenly over the sequential series")
    for (where, text), (count, _) in groups.items():
        lines.append(f"  {where} ({count} series): {text} each")
    for text, budget in sorted({text: budget for (_, text), (_, budget) in groups.items()}.items()):
        lines.extend(_catches(text, budget, window_seconds))
    return lines + _evidence(journey_map)


def _evidence(journey_map: JourneyMap) -> list[str]:
    """The evidence path's series, and how soon each budget's evidence catches a step that stops
    letting visitors through and errors that triple, at a few volumes."""
    from frictionwatch.detectors.evidence import EVIDENCE_METRICS

    window_metrics = {window: metric for metric, (window, _) in EVIDENCE_METRICS.items()}
    count, budgets = 0, set()
    for place, metric in series_of(journey_map):
        evidence = window_metrics.get(metric)
        if evidence is None:
            continue
        settings = resolve(journey_map, place, metric)
        if settings.enabled and resolve(journey_map, place, evidence).enabled:
            count += 1
            budgets.add(settings.false_alarms or FalseAlarmBudget.parse("1 per 180d"))
    if not count:
        return []
    lines = [
        f"evidence path: {count} series judged as events arrive ({', '.join(EVIDENCE_METRICS)}),"
        " each with half its window metric's budget"
    ]
    changes = (
        ("nobody moves on", "step_progress", 0.0),
        ("errors x3", "step_errors", 3.0),
        ("errors x10", "step_errors", 10.0),
    )
    for budget in sorted(budgets, key=lambda budget: budget.period / budget.alarms):
        lines.append(f"  budget {budget}: seconds until it alarms when, at a touchpoint where this many are expected,")
        lines.append(f"    {'':24}" + "".join(f"{name:>18}" for name, _, _ in changes))
        for per_minute in EVIDENCE_VOLUMES:
            cells = (_evidence_seconds(budget, metric, change, per_minute / 60.0) for _, metric, change in changes)
            lines.append(f"    {f'{per_minute:g} a minute':24}" + "".join(f"{f'{cell:,.0f} s':>18}" for cell in cells))
    return lines


def _evidence_seconds(budget: FalseAlarmBudget, metric: str, change: float, rate: float) -> float:
    """Seconds until ``metric``'s CUSUMs alarm, on average, when its rate (``rate`` expected a
    second) becomes ``change`` times the usual: the fastest of them."""
    from frictionwatch.detectors.evidence import EVIDENCE_METRICS, poisson_threshold

    ratios = EVIDENCE_METRICS[metric][1]
    seconds_between = budget.split(2 * len(ratios)).period / budget.alarms
    fastest = math.inf
    for ratio in ratios:
        gain = (change * math.log(ratio) if change else 0.0) - (ratio - 1.0)  # evidence per expected count
        if gain > 0:
            fastest = min(fastest, poisson_threshold(rate * seconds_between, ratio) / (gain * rate))
    return fastest


def _windows_between(budget: FalseAlarmBudget | float, window_seconds: float) -> float:
    if isinstance(budget, FalseAlarmBudget):
        return budget.windows_between_alarms(window_seconds)
    return 1.0 / (0.5 * math.erfc(budget / math.sqrt(2.0)))


def _catches(text: str, budget: FalseAlarmBudget | float, window_seconds: float) -> list[str]:
    """The smallest drop of an 80% conversion caught in 1 window, 5 windows and 30 minutes."""
    run_length = _windows_between(budget, window_seconds) * len(DEFAULT_SHIFTS) * UNION
    threshold = min(cusum_threshold(run_length, shift) for shift in DEFAULT_SHIFTS)
    spans = (("1 window", 1.0), ("5 windows", 5.0), ("30 min", max(1.0, 1800.0 / window_seconds)))
    lines = [
        f"  budget {text}: the smallest drop of an {TYPICAL_RATIO:.0%} conversion it catches within",
        f"    {'':24}" + "".join(f"{name:>11}" for name, _ in spans),
    ]
    for volume in VOLUMES:
        spread = math.sqrt(TYPICAL_RATIO * (1 - TYPICAL_RATIO) / volume)
        cells = (min(TYPICAL_RATIO, detectable_shift(threshold, windows) * spread) for _, windows in spans)
        lines.append(
            f"    {f'{volume} sessions a window':24}"
            + "".join(f"{'to ' + format(TYPICAL_RATIO - drop, '.0%'):>11}" for drop in cells)
        )
    return lines
