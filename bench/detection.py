"""Detection benchmark: recall by incident size and touchpoint volume (a power curve), false
alerts per simulated day and time to detect, for every contender side by side and against
an oracle (a CUSUM that knows each incident's before and after, at the same false-alarm budget).

    .venv/bin/python -m bench.detection                    # the full run: 2 maps x 2 levels x 7 days, 220 incidents
    .venv/bin/python -m bench.detection --quick            # the CI reduced sweep: 1 day, ~30 incidents
    .venv/bin/python -m bench.detection --contenders shipped,window --levels 3

How it works (bench/sweep.py, bench/power.py, bench/oracle.py say more):

1. every traffic set (journey map x traffic level) is generated with ``--days`` of event time
   and random incidents (``frictionwatch generate --random-incidents``) and replayed once
   through the worker's stage-1/stage-2 code; the final windows are cached in
   bench/results/cache/ (keyed by the parameters and the code), so a re-run only re-detects;
2. every contender (a row of ``CONTENDERS`` in bench/sweep.py: detector settings in the
   journey map) runs over the same windows (a pool of ``--jobs`` processes); the evidence
   path, which judges events as they arrive, is fed the events again through a worker's
   stages (bench/evidence_path.py; its alarms cached beside the windows);
3. the oracle runs per incident; alerts are scored against the ground truth.

Writes the ``detection`` key of bench/results/latest.json (other keys kept), the table to
bench/results/detection.md and the power curve to docs/images/power-curve.png; a full run
(not --quick) also puts the table between the ``detection:begin``/``detection:end`` markers
of docs/detectors.md and README.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import evidence_path, power
from bench.common import machine, machine_line
from bench.sweep import (
    BENCH_MAPS,
    CACHE,
    CONTENDERS,
    MAPS,
    ROOT,
    AlertRow,
    Contender,
    Replayed,
    TrafficSet,
    available,
    code_version,
    replay_traffic,
    run_contender,
)
from frictionwatch.detectors.bank import resolve
from frictionwatch.detectors.explain import series_of
from frictionwatch.journeymap import parse_journey_map

RESULTS = ROOT / "bench" / "results"
PNG = ROOT / "docs" / "images" / "power-curve.png"
BEGIN = "<!-- detection:begin (written by `python -m bench.detection`; do not edit by hand) -->"
END = "<!-- detection:end -->"
#: a day: kind auto (shipped) would be the window detectors; the evidence path is fed the events (a few minutes)
QUICK_CONTENDERS = ("window", "sequential", "evidence")
#: the full run's rows: every kind of contender once (river.ADWIN, DDM and HDDMW, and sequential-180d, on request)
FULL_CONTENDERS = (
    "shipped+evidence",
    "shipped",
    "evidence",
    "window",
    "sequential-map-1d",
    "sequential",
    "river.PageHinkley",
    "river.HDDMA",
    "river.GaussianScorer",
    "river.PAD-HoltWinters",
)


@dataclass(slots=True)
class Plan:
    """What one run covers."""

    maps: list[str]
    levels: list[float]
    days: float
    incidents: int  # in all, split evenly over the traffic sets
    controls: int  # per traffic set
    seed: int
    contenders: list[Contender]
    burn_in: float
    budget_days: float = 30.0
    map_budget_days: float | None = None  # when set, the oracle's budget is this split over the map's series
    scenario: str = ""
    jobs: int = 2
    cache: Path = CACHE
    quick: bool = False
    fresh: bool = False
    skipped: dict[str, str] = field(default_factory=dict)

    def traffic_sets(self) -> list[TrafficSet]:
        count = len(self.maps) * len(self.levels)
        each = math.ceil(self.incidents / count) if self.incidents else 0
        return [
            TrafficSet(name, level, self.days, self.seed + index, each, self.controls, self.scenario)
            for index, (name, level) in enumerate((name, level) for name in self.maps for level in self.levels)
        ]


def oracle_budget_days(plan: Plan, journey_map_path: Path) -> float:
    """The oracle's budget per series: ``budget_days``, or the map's budget split over the series it watches."""
    if plan.map_budget_days is None:
        return plan.budget_days
    journey_map = parse_journey_map(journey_map_path.read_text(), str(journey_map_path))
    watched = sum(1 for place, metric in series_of(journey_map) if resolve(journey_map, place, metric).enabled)
    return plan.map_budget_days * max(watched, 1)


def default_maps() -> list[str]:
    """The example map and every map written for the benchmark (bench/maps/*.yml)."""
    return ["example", *sorted(path.stem for path in BENCH_MAPS.glob("*.yml"))]


def _replay(traffic: TrafficSet, cache: Path, fresh: bool) -> Path:
    return replay_traffic(traffic, cache, fresh=fresh)


def _detect(path: Path, contender: Contender) -> tuple[list[Any], float, int]:
    return run_contender(path, contender)


def _evidence(traffic: TrafficSet, contender: Contender, cache: Path, fresh: bool) -> Path:
    return evidence_path.evidence_alarms(traffic, contender, cache, fresh=fresh)


def sweep(plan: Plan, say: Any = print) -> dict[str, Any]:
    """Run the plan; the results (what goes under ``detection`` in latest.json)."""
    began, began_wall = time.monotonic(), time.time()
    started = datetime.now(UTC).isoformat(timespec="seconds")  # the run's start, as in the other bench parts
    info = machine()
    sets = plan.traffic_sets()
    say(f"detection benchmark on {machine_line(info)}; load average {info['load_average_at_start'][0]:.2f}")
    say(
        f"  {len(sets)} traffic set(s): "
        + ", ".join(f"{t.label} ({t.days:g} d, {t.incidents} incidents)" for t in sets)
    )
    runnable: list[Contender] = []
    for contender in plan.contenders:
        why = available(contender, sets[0].map_path())
        if why is None:
            runnable.append(contender)
        else:
            plan.skipped[contender.name] = why
            say(f"  contender {contender.name}: not available in this tree ({why})")
    with ProcessPoolExecutor(max_workers=plan.jobs) as pool:
        paths = list(pool.map(_replay, sets, [plan.cache] * len(sets), [plan.fresh] * len(sets)))
        replay_seconds = time.monotonic() - began
        say(f"  traffic replayed (or read from the cache) in {replay_seconds:.0f} s; {len(runnable)} contender(s)")
        # the evidence path is fed the events again, once per traffic set and settings (the longest tasks: first)
        feeding: dict[Path, Future[Path]] = {}
        evidence_of: dict[tuple[Path, str], Path] = {}
        for path, traffic in zip(paths, sets, strict=True):
            for contender in (contender for contender in runnable if contender.evidence):
                cached = evidence_path.cache_path(traffic, contender, plan.cache)
                if cached not in feeding:
                    feeding[cached] = pool.submit(_evidence, traffic, contender, plan.cache, plan.fresh)
                evidence_of[(path, contender.name)] = cached
        tasks = [(path, contender) for path in paths for contender in runnable if contender.windows]
        futures = [pool.submit(_detect, path, contender) for path, contender in tasks]
        done: dict[tuple[Path, str], tuple[list[Any], float, int]] = {}
        for index, ((path, contender), future) in enumerate(zip(tasks, futures, strict=True), start=1):
            try:
                done[(path, contender.name)] = future.result()
            except Exception as error:  # a contender that breaks on the way is reported, not fatal
                plan.skipped[contender.name] = f"failed on {path.name}: {type(error).__name__}: {error}"[:300]
                say(f"  [{index}/{len(tasks)}] {contender.name}: FAILED ({plan.skipped[contender.name]})")
                continue
            rows, seconds, observations = done[(path, contender.name)]
            say(
                f"  [{index}/{len(tasks)}] {contender.name} on {path.name.split('-')[0]}:"
                f" {len(rows)} alerts, {seconds:.0f} s ({seconds / max(observations, 1) * 1e6:.0f} µs/window)"
            )
        evidence_rows: dict[Path, tuple[list[AlertRow], int, float]] = {}
        for cached, fed in feeding.items():
            try:
                evidence_rows[cached] = evidence_path.load_rows(fed.result())
            except Exception as error:  # reported, not fatal, as a window contender's
                for (_, name), wanted in evidence_of.items():
                    if wanted == cached:
                        plan.skipped[name] = f"evidence path failed: {type(error).__name__}: {error}"[:300]
                continue
            rows, events, seconds = evidence_rows[cached]
            label = cached.name.split(".")[0]
            say(f"  evidence path on {label}: {events:,} events, {len(rows)} alarms, {seconds:.0f} s")
    all_cases: list[power.Case] = []
    runnable = [contender for contender in runnable if contender.name not in plan.skipped]
    outcomes: dict[str, list[power.Outcome]] = {contender.name: [] for contender in runnable}
    cost: dict[str, list[float]] = {contender.name: [0.0, 0.0] for contender in runnable}
    worker: dict[str, list[float]] = {contender.name: [0.0, 0.0] for contender in runnable}
    traffic_info = []
    current_code = code_version()
    # what this run read from the cache (files made before it began) took to make when it was made
    cached_seconds = sum(evidence_rows[cached][2] for cached in evidence_rows if cached.stat().st_mtime < began_wall)
    for path in paths:
        replayed = Replayed.load(path)
        if path.stat().st_mtime < began_wall:
            cached_seconds += replayed.seconds
        cases = power.cases_of(replayed, plan.burn_in)
        power.run_oracle(replayed, cases, oracle_budget_days(plan, replayed.traffic.map_path()))
        all_cases.extend(cases)
        for contender in runnable:
            rows, seconds, observations = done[(path, contender.name)] if contender.windows else ([], 0.0, 0)
            if contender.evidence:  # its alarms, and the whole worker's time per event fed
                alarms, events, fed_seconds = evidence_rows[evidence_of[(path, contender.name)]]
                rows = rows + alarms
                worker[contender.name][0] += fed_seconds
                worker[contender.name][1] += events
            outcomes[contender.name].append(power.score(replayed, cases, rows, plan.burn_in))
            cost[contender.name][0] += seconds
            cost[contender.name][1] += observations
        traffic_info.append(
            {
                "traffic": replayed.traffic.label, "days": round(replayed.days, 3), "events": replayed.events,
                "observations": len(replayed.ts), "series": len(replayed.series),
                "incidents": sum(1 for case in cases if not case.control),
                "controls": sum(1 for case in cases if case.control),
                "replay_seconds": round(replayed.seconds, 1),
                "code_changed": replayed.code != current_code,
            }
        )  # fmt: skip
    table = [power.summary("oracle (CUSUM, knows before/after)", all_cases, [power.oracle_outcome(all_cases)])]
    for contender in runnable:
        row = power.summary(contender.name, all_cases, outcomes[contender.name])
        spent, windows = cost[contender.name]
        row["microseconds_per_window"] = spent / windows * 1e6 if windows and not contender.evidence else None
        spent, events_fed = worker[contender.name]
        row["microseconds_per_event"] = spent / events_fed * 1e6 if events_fed else None
        row["note"] = contender.note
        row["run"] = started  # when a later --merge keeps this row, the table says which run made it
        table.append(row)
    scored = [case for case in all_cases if not case.control and case.scored]
    return {
        "started": started,
        "machine": info,
        "quick": plan.quick,
        "plan": {
            "maps": plan.maps,
            "levels": plan.levels,
            "days": plan.days,
            "incidents": plan.incidents,
            "controls_per_set": plan.controls,
            "seed": plan.seed,
            "burn_in_seconds": plan.burn_in,
            "budget": f"1 false alarm per {plan.budget_days:g} days"
            if plan.map_budget_days is None
            else f"1 false alarm per {plan.map_budget_days:g} days for the whole map, split over its series",
            "scenario": plan.scenario,
        },
        "traffic": traffic_info,
        "skipped": plan.skipped,
        "incidents": {
            "scored": len(scored),
            "oracle_detectable": sum(case.oracle_status == "detected" for case in scored),
            "oracle_undetectable": sum(case.oracle_status == "undetectable" for case in scored),
            "oracle_over_budget": sum(case.oracle_status == "over budget" for case in scored),
            "no_data": sum(case.oracle_status == "no data" for case in scored),
            "controls": sum(1 for case in all_cases if case.control),
            "in_burn_in": sum(1 for case in all_cases if not case.control and not case.scored),
        },
        "contenders": table,
        "cases": [
            {
                "name": case.name,
                "kind": case.kind,
                "shape": case.shape,
                "size": case.size,
                "volume_per_minute": case.volume_per_minute,
                "oracle": case.oracle_status,
                "oracle_delay": case.oracle_delay,
                "oracle_series": case.oracle_series,
                "oracle_units": case.oracle_units,
                "oracle_margin": case.oracle_margin,
                "oracle_effect": case.effect,
                "caught": {
                    name: next((o.caught[case.name] for o in outs if case.name in o.caught), None)
                    for name, outs in outcomes.items()
                },
            }
            for case in scored
        ],
        "seconds": round(time.monotonic() - began, 1),
        "cached_seconds": round(cached_seconds, 1),
    }


# -- output --------------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def _s(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f} s"


def _when(run: str) -> str:
    """'2026-12-01T23:14:06+00:00' -> '2026-12-01 23:14' (each of several joined by ' or ')."""
    return " or ".join(part[:16].replace("T", " ") for part in run.split(" or "))


def _from_cache(results: dict[str, Any]) -> str:
    """The replays and evidence-path feeds a run read from the cache, and what they took to make.

    >>> _from_cache({"cached_seconds": 1560.0})
    ' (its replays and evidence-path feeds came from the cache: 26 min of work when they were made)'
    >>> _from_cache({"cached_seconds": 0.0}), _from_cache({})
    ('', '')
    """
    seconds = results.get("cached_seconds") or 0.0
    if seconds < 30.0:
        return ""
    made = f"{seconds / 60:.0f} min of work when they were made"
    return f" (its replays and evidence-path feeds came from the cache: {made})"


def kept_rows(results: dict[str, Any]) -> str:
    """What the table header says of the rows a --merge kept from earlier runs: which, and from when."""
    names: dict[str, list[str]] = {}
    for row in results["contenders"]:
        run = row.get("run")
        if run is not None and run != results["started"]:
            names.setdefault(run, []).append(row["name"])
    return "".join(
        f"; the rows of {', '.join(rows)} from the run of {_when(run)}" for run, rows in sorted(names.items())
    )


def markdown(results: dict[str, Any]) -> str:
    """The benchmark table (machine and date first)."""
    info, plan, counts = results["machine"], results["plan"], results["incidents"]
    levels = " and ".join(f"{level:g}" for level in plan["levels"])
    lines = [
        f"Measured {results['started'][:16].replace('T', ' ')} UTC on {machine_line(info)} (load average"
        f" {info['load_average_at_start'][0]:.1f} at the start; shared); {plan['days']:g} simulated days x"
        f" {len(plan['maps'])} map(s) ({', '.join(plan['maps'])}) x traffic {levels} events/s;"
        f" {counts['scored']} incidents scored ({counts['oracle_detectable']} detectable by the oracle,"
        f" {counts['oracle_undetectable']} undetectable,"
        + (f" {counts['oracle_over_budget']} caught only over its budget," if counts.get("oracle_over_budget") else "")
        + f" {counts['no_data']} without data; {counts['in_burn_in']} in"
        f" the first {plan['burn_in_seconds'] / 3600:g} h not scored), {counts['controls']} controls;"
        f" budget {plan['budget']}{'' if 'whole map' in plan['budget'] else ' per series'};"
        f" the run took {results['seconds'] / 60:.0f} min"
        + _from_cache(results)
        + (" (**--quick**)" if results.get("quick") else "")
        + kept_rows(results)
        + ".",
        "",
        "| contender | recall | recall of oracle-detectable | false alerts / day (map) | median / p90 time to"
        " detect | median vs oracle | µs / window |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results["contenders"]:
        oracle = row["name"].startswith("oracle")
        false = "budget" if oracle else _f(row["false_per_day"], 2)
        ratio = "1" if oracle else f"{_f(row['median_vs_oracle'], 2)} ({row['both_caught']} both)"
        lines.append(
            f"| {row['name']} | {_pct(row['recall'])} ({row['caught']}/{row['incidents']}) |"
            f" {_pct(row['recall_of_detectable'])} ({row['caught_of_detectable']}/{row['oracle_detectable']}) |"
            f" {false} | {_s(row['median_delay_seconds'])} / {_s(row['p90_delay_seconds'])} | {ratio} |"
            f" {'—' if oracle else _cost(row)} |"
        )
    if results.get("skipped"):
        lines += ["", "Not run (not in this tree yet): " + "; ".join(sorted(results["skipped"])) + "."]
    lines += ["", "Recall by incident size (rows) and touchpoint volume (columns), caught/incidents:", ""]
    volumes = [power.bucket_label(i, power.VOLUME_BUCKETS, "/min") for i in range(len(power.VOLUME_BUCKETS))]
    sizes = [power.bucket_label(i, power.SIZE_BUCKETS, "x") for i in range(len(power.SIZE_BUCKETS))]
    lines += ["| contender | size | " + " | ".join(volumes) + " |", "|---|---|" + "---:|" * len(volumes)]
    for row in results["contenders"]:
        for size in sizes:
            cells = []
            for volume in volumes:
                caught, total = row["power"].get(volume, {}).get(size, [0, 0])
                cells.append(f"{caught}/{total}" if total else "")
            if any(cells):
                lines.append(f"| {row['name'].split(' ')[0]} | {size} | " + " | ".join(cells) + " |")
    return "\n".join(lines + by_margin(results) + missed(results)) + "\n"


WORKER = "shipped+evidence"  # the contender that is what a worker pages on


def by_margin(results: dict[str, Any]) -> list[str]:
    """Recall of the oracle-detectable by how clearly the oracle caught them: its largest evidence
    while the incident could be caught, over its threshold (1 just reaches it). The oracle knows
    the after-level the incident showed; a detector that must cover every after-level, with the
    budget shared over them, catches the incidents the oracle barely caught last."""
    detectable = [case for case in results["cases"] if case["oracle"] == "detected" and case.get("oracle_margin")]
    if not detectable:
        return []  # cases from before 2026-12-05 carry no margin
    edges = power.MARGIN_BUCKETS
    labels = [power.bucket_label(i, edges, "") for i in range(len(edges))]
    buckets = [power.bucket(case["oracle_margin"], edges) for case in detectable]
    groups = [[case for case, b in zip(detectable, buckets, strict=True) if b == index] for index in range(len(edges))]
    lines = [
        "",
        "Recall of the oracle-detectable by the oracle's margin (its largest evidence while the incident"
        " could be caught, over its threshold; 1 just reaches it), caught/incidents:",
        "",
        "| contender | " + " | ".join(labels) + " |",
        "|---|" + "---:|" * len(labels),
    ]
    for row in results["contenders"]:
        if row["name"].startswith("oracle"):
            continue
        cells = []
        for cases in groups:
            caught = sum(case["caught"].get(row["name"]) is not None for case in cases)
            cells.append(f"{caught}/{len(cases)}" if cases else "")
        lines.append(f"| {row['name']} | " + " | ".join(cells) + " |")
    return lines


def missed(results: dict[str, Any], contender: str = WORKER) -> list[str]:
    """The oracle-detectable incidents ``contender`` missed, with what the oracle alarmed on (an
    oracle that alarms after a handful of units knew an after-parameter no detector can know)."""
    cases = [
        case for case in results["cases"]
        if case["oracle"] == "detected" and contender in case["caught"] and case["caught"][contender] is None
    ]  # fmt: skip
    if not cases:
        return []
    lines = [
        "",
        f"Oracle-detectable incidents `{contender}` missed, the series and units (sessions, contacts,"
        " answers) the oracle had judged when it alarmed, the after / before it knew there (the level"
        " the incident happened to show), and its margin:",
        "",
        "| incident | kind, shape | size | volume | oracle's series | units | oracle's delay | after / before it knew"
        " | oracle's margin |",
        "|---|---|---:|---:|---|---:|---:|---:|---:|",
    ]
    for case in cases:
        volume = case["volume_per_minute"]
        lines.append(
            f"| {case['name']} | {case['kind']}, {case['shape']} | {_f(case['size'], 2)}x |"
            f" {'n/a' if volume is None else f'{volume:.2f}/min'} | {case['oracle_series']} |"
            f" {_f(case['oracle_units'], 0)} | {_s(case['oracle_delay'])} | {_f(case.get('oracle_effect'), 2)} |"
            f" {_f(case.get('oracle_margin'), 2)} |"
        )
    return lines


def _cost(row: dict[str, Any]) -> str:
    """A window contender's µs per window; the evidence path's, the whole worker's µs per event fed."""
    if row.get("microseconds_per_event") is not None:
        return f"{row['microseconds_per_event']:,.0f} per event (the worker)"
    return _f(row.get("microseconds_per_window"), 0)


def _f(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def plot(results: dict[str, Any], path: Path) -> None:
    """The power curve: recall by size, one panel per volume bucket, a line per contender."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    volumes = [power.bucket_label(i, power.VOLUME_BUCKETS, "/min") for i in range(len(power.VOLUME_BUCKETS))]
    sizes = [power.bucket_label(i, power.SIZE_BUCKETS, "x") for i in range(len(power.SIZE_BUCKETS))]
    figure, axes = plt.subplots(1, len(volumes), figsize=(4 * len(volumes), 4), sharey=True)
    for axis, volume in zip(axes, volumes, strict=True):
        for row in results["contenders"]:
            oracle = row["name"].startswith("oracle")
            xs, ys = [], []
            for index, size in enumerate(sizes):
                caught, total = row["power"].get(volume, {}).get(size, [0, 0])
                if total:
                    xs.append(index)
                    ys.append(caught / total)
            style = {"color": "black", "linestyle": "--", "linewidth": 2} if oracle else {"marker": "o"}
            axis.plot(xs, ys, label=row["name"].split(" ")[0], **style)
        counts = [sum(results["contenders"][0]["power"].get(volume, {}).get(size, [0, 0])[1:]) for size in sizes]
        axis.set_xticks(range(len(sizes)), [f"{size}\nn={n}" for size, n in zip(sizes, counts, strict=True)])
        axis.set_title(f"touchpoint volume {volume}")
        axis.set_ylim(-0.02, 1.02)
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("recall")
    axes[0].legend(fontsize=8, loc="lower right")
    figure.suptitle(f"Power curve: recall by incident size (incident / normal), {results['started'][:10]}")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)


def write(results: dict[str, Any], out: Path, docs: bool) -> str:
    """latest.json's ``detection`` key (other keys kept), detection.md, the PNG, and the docs' table."""
    document: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {}
    document["detection"] = results
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2) + "\n")
    table = markdown(results)
    (out.parent / ("detection-quick.md" if results["quick"] else "detection.md")).write_text(table)
    if docs:
        plot(results, PNG)
        replace_between_markers(ROOT / "docs" / "detectors.md", table)
        replace_between_markers(ROOT / "README.md", headline(table))
    return table


def headline(table: str) -> str:
    """The README's part of the table: the date line and the contenders' rows."""
    return table.split("\n\nRecall by incident size", 1)[0] + "\n"


def merged(results: dict[str, Any], out: Path) -> dict[str, Any]:
    """``results`` with the rows of the other contenders already in ``out`` for the same plan
    (so one contender can be added or re-run without re-running the others)."""
    document = json.loads(out.read_text()) if out.exists() else {}
    earlier = document.get("detection")
    if not earlier or earlier.get("plan") != results["plan"]:
        raise SystemExit(f"--merge: {out} holds no detection results of the same plan (days, levels, maps, ...)")
    ran = {row["name"] for row in results["contenders"]}
    kept = [row for row in earlier["contenders"] if row["name"] not in ran and not row["name"].startswith("oracle")]
    order = {contender.name: index for index, contender in enumerate(CONTENDERS)}
    rows = results["contenders"][:1] + sorted(
        kept + results["contenders"][1:], key=lambda row: order.get(row["name"], len(order))
    )
    caught = {case["name"]: case["caught"] for case in earlier.get("cases", [])}
    for case in results["cases"]:
        case["caught"] = {**caught.get(case["name"], {}), **case["caught"]}
    skipped = {name: why for name, why in earlier.get("skipped", {}).items() if name not in ran}
    skipped.update(results["skipped"])
    for row in kept:  # a row from before rows said their run: from the earlier run or one it merged
        row.setdefault("run", " or ".join(sorted({earlier["started"], *earlier.get("merged_from", [])})))
    merged_from = sorted({row["run"] for row in kept})
    return {**results, "contenders": rows, "skipped": skipped, "merged_from": merged_from}


def replace_between_markers(path: Path, table: str) -> bool:
    """Put ``table`` between the detection markers of ``path``; False when it has none."""
    text = path.read_text()
    if BEGIN not in text or END not in text:
        return False
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{BEGIN}\n{table}{END}{tail}")
    return True


def _levels(text: str) -> list[float]:
    try:
        levels = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--levels takes events per second separated by commas, got {text!r}"
        ) from None
    if not levels or any(level <= 0 for level in levels):
        raise argparse.ArgumentTypeError(f"--levels must be > 0 events per second, got {text!r}")
    return levels


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.detection", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--days", type=float, default=None, help="simulated days a traffic set (default 7; --quick 1)")
    parser.add_argument(
        "--levels", type=_levels, default=None, metavar="RATE[,RATE]",
        help="traffic levels, mean events per second over the day (default 2,4: a quiet and a busier shop)",
    )  # fmt: skip
    parser.add_argument(
        "--maps", type=_names, default=None, metavar="NAME[,NAME]",
        help="journey maps: 'example' (frictionwatch/examples/journey-map.yml) or a bench/maps/NAME.yml"
        " (default: the example and every bench map)",
    )  # fmt: skip
    parser.add_argument(
        "--incidents", type=int, default=None, help="random incidents in all, split over the traffic sets (default 220)"
    )
    parser.add_argument(
        "--controls", type=int, default=None,
        help="random must-not-alert controls per traffic set (surges, campaign mix, late batches, drift, holidays;"
        " default 1.5 per simulated day: holidays and drift need runs of 3 days and more)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=11, help="seed of the first traffic set (the others: +1, +2, ...)")
    parser.add_argument(
        "--contenders", type=_names, default=None, metavar="NAME[,NAME]",
        help="which rows of bench/sweep.py CONTENDERS to run: " + ", ".join(c.name for c in CONTENDERS)
        + f" (default: {', '.join(FULL_CONTENDERS)})",
    )  # fmt: skip
    parser.add_argument(
        "--burn-in", type=float, default=None, metavar="HOURS",
        help="hours at the start of each set not scored: the detectors' warm-up (default 6; --quick 3)",
    )  # fmt: skip
    parser.add_argument(
        "--budget-days", type=float, default=30.0, help="the oracle's budget: 1 false alarm per N days per series"
    )
    parser.add_argument(
        "--map-budget-days", type=float, default=None, metavar="N",
        help="the oracle's budget for the whole map instead: 1 false alarm per N days, split evenly over the series"
        " the map watches (as detectors.map_false_alarms splits it, and as the sequential-map-1d row is set);"
        " default 1 for a full run, per series (--budget-days) for --quick; 0: per series in a full run too",
    )  # fmt: skip
    parser.add_argument("--scenario", default="", help="a scenario file of incidents and controls added to every set")
    parser.add_argument("--jobs", type=int, default=2, help="processes (default 2: this machine has 2 cores)")
    parser.add_argument("--fresh", action="store_true", help="replay again even when the cache has the traffic")
    parser.add_argument("--cache", type=Path, default=CACHE, help=f"replay cache (default {CACHE.relative_to(ROOT)})")
    parser.add_argument(
        "--quick", action="store_true",
        help="the CI reduced sweep: 1 day, example map, 10 events/s, 30 incidents; window, sequential, evidence",
    )  # fmt: skip
    parser.add_argument(
        "--merge", action="store_true",
        help="keep the other contenders' rows already in --out for the same plan (add or re-run one contender)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=RESULTS / "latest.json", help="results JSON (key 'detection')")
    parser.add_argument(
        "--docs", action=argparse.BooleanOptionalAction, default=None,
        help="write the PNG and the table into docs/detectors.md and README.md (default: on for a full run)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    quick = args.quick
    names = args.contenders or list(QUICK_CONTENDERS if quick else FULL_CONTENDERS)
    by_name = {contender.name: contender for contender in CONTENDERS}
    unknown = [name for name in names if name not in by_name]
    if unknown:
        parser.error(f"--contenders: unknown {', '.join(unknown)}; choose from {', '.join(by_name)}")
    maps = args.maps or (["example"] if quick else default_maps())
    for name in maps:
        if name not in MAPS and not (BENCH_MAPS / f"{name}.yml").exists():
            parser.error(f"--maps: no map {name!r} (example, or a file bench/maps/{name}.yml)")
    days = args.days or (1.0 if quick else 7.0)
    plan = Plan(
        maps=maps,
        levels=args.levels or ([10.0] if quick else [2.0, 4.0]),
        days=days,
        incidents=args.incidents if args.incidents is not None else (30 if quick else 220),
        controls=args.controls if args.controls is not None else round(1.5 * days),
        seed=args.seed,
        contenders=[by_name[name] for name in names],
        burn_in=(args.burn_in if args.burn_in is not None else (3.0 if quick else 6.0)) * 3600.0,
        budget_days=args.budget_days,
        map_budget_days=(None if quick else 1.0) if args.map_budget_days is None else (args.map_budget_days or None),
        scenario=args.scenario,
        jobs=max(1, args.jobs),
        cache=args.cache,
        quick=quick,
        fresh=args.fresh,
    )

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    results = sweep(plan, say)
    if args.merge:
        results = merged(results, args.out)
    table = write(results, args.out, docs=args.docs if args.docs is not None else not quick)
    print(table)
    say(f"results: {args.out} (key 'detection'); took {results['seconds'] / 60:.1f} min")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("MPLBACKEND", "Agg")
    sys.exit(main())
