"""``frictionwatch backtest``: options, progress and outputs around the replay and the scoring.

Wiring (frictionwatch/cli.py)::

    backtest = command("backtest", "...", "...")
    add_backtest_arguments(backtest)
    add_settings(backtest, BACKTEST_SETTINGS, "journey map and metric settings")
    ...
    return run_backtest_command(args, _settings(args))
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import IO, Any

from frictionwatch.alerts.immediate import AlertSettings
from frictionwatch.backtest.nabmode import run_nab
from frictionwatch.backtest.replay import BacktestInputError, ReplayProgress, replay_events, stage_settings, tuned_map
from frictionwatch.backtest.report import (
    events_plots,
    events_summary,
    events_table,
    nab_plot,
    nab_table,
    write_json,
)
from frictionwatch.backtest.scoring import load_incidents, score_replay
from frictionwatch.detectors.budget import FalseAlarmBudget
from frictionwatch.journeymap import JourneyMapError, load_journey_map
from frictionwatch.settings import Settings

#: settings the backtest reads: pass them to cli.add_settings so --journey-map etc. exist
BACKTEST_SETTINGS = (
    "journey_map",
    "window_size",
    "allowed_lateness",
    "rage_clicks",
    "rage_seconds",
    "progress_timeout",
    "early_flow_age",
    "flow_cold_start",
    "short_abandon_seconds",
    "service_level_seconds",
    "contact_timeout",
)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def _budget(text: str) -> FalseAlarmBudget:
    try:
        return FalseAlarmBudget.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


def add_backtest_arguments(parser: argparse.ArgumentParser) -> None:
    """The backtest's own options (the journey map and metric settings come from Settings)."""
    data = parser.add_argument_group("input (an events file, or one NAB series)")
    data.add_argument(
        "events", nargs="?", type=Path, default=None, metavar="EVENTS.jsonl",
        help="events from `frictionwatch generate --output EVENTS.jsonl`, replayed through the worker's code",
    )  # fmt: skip
    data.add_argument("--incidents", type=Path, default=None, help="ground truth from `generate --incidents`")
    data.add_argument("--nab", type=Path, default=None, metavar="FILE.csv", help="a NAB series (timestamp,value)")
    data.add_argument("--labels", type=Path, default=None, help="NAB labels/combined_windows.json (with --nab)")
    tuning = parser.add_argument_group("detector settings to try (override every detector of the journey map)")
    tuning.add_argument(
        "--false-alarms", type=_budget, default=None, metavar="BUDGET",
        help="false alarms the whole map may raise on normal traffic, e.g. '1 per 7d': split over its series"
        " (detectors.map_false_alarms; kind auto and sequential)",
    )  # fmt: skip
    tuning.add_argument(
        "--threshold", type=_positive, default=None,
        help="sensitivity: score (sd) that fires (window detectors, and kind auto on a series' first day)",
    )  # fmt: skip
    tuning.add_argument("--min-volume", type=_count, default=None, help="windows with less volume never fire")
    tuning.add_argument("--consecutive", type=_count, default=None, help="flagged windows in a row before firing")
    tuning.add_argument(
        "--no-evidence", action="store_true",
        help="leave out the evidence path, which the worker runs beside the window detectors: see what"
        " the window detectors alone would page (alerts say which path raised them)",
    )  # fmt: skip
    scoring = parser.add_argument_group("scoring and output")
    scoring.add_argument(
        "--grace", type=float, default=2.0, metavar="WINDOWS",
        help="an alert up to this many windows after an incident's end still counts (default 2)",
    )  # fmt: skip
    scoring.add_argument("--out", type=Path, default=Path("backtest-report"), help="summary.json and plots/ go here")
    scoring.add_argument("--max-plots", type=_count, default=30, help="at most this many PNGs (default 30)")
    scoring.add_argument("--no-plots", action="store_true", help="write no PNGs")
    scoring.add_argument(
        "--check", action="store_true",
        help="exit 1 unless every incident is found with at most --max-false-per-day false alerts",
    )  # fmt: skip
    scoring.add_argument("--max-false-per-day", type=float, default=1.0, help="with --check (default 1)")
    scoring.add_argument("--quiet", action="store_true", help="no progress line")


class Progress:
    """A progress line on stderr: share of the file read, events, speed (the generator's style)."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.tty = stream.isatty()

    def __call__(self, progress: ReplayProgress) -> None:
        share = progress.done_bytes / progress.total_bytes if progress.total_bytes else 1.0
        filled = int(min(share, 1.0) * 30)
        speed = progress.events / progress.wall_seconds if progress.wall_seconds else 0.0
        line = f"[{'#' * filled}{'.' * (30 - filled)}] {share:6.1%}  {progress.events:>10,} events  {speed:>9,.0f}/s"
        print(("\r" + line) if self.tty else line, end="" if self.tty else "\n", file=self.stream, flush=True)

    def finish(self) -> None:
        if self.tty:
            print(file=self.stream)


def _usage(message: str) -> int:
    print(f"frictionwatch backtest: {message}", file=sys.stderr)
    return 2


def run_backtest_command(args: argparse.Namespace, settings: Settings) -> int:
    """Run ``frictionwatch backtest``: 0 done, 1 --check failed, 2 usage or input error."""
    if (args.events is None) == (args.nab is None):
        return _usage("give an events file (EVENTS.jsonl) or --nab FILE.csv, not both")
    if args.nab is not None and args.incidents is not None:
        return _usage("--incidents goes with an events file; a NAB series takes --labels")
    if args.events is not None and args.labels is not None:
        return _usage("--labels goes with --nab; an events file takes --incidents")
    if args.grace < 0:
        return _usage(f"--grace must be >= 0 windows, got {args.grace}")
    try:
        if args.nab is not None:
            return _run_nab(args)
        return _run_events(args, settings)
    except (BacktestInputError, JourneyMapError) as error:
        print(f"frictionwatch backtest: {error}", file=sys.stderr)
        return 2


def _run_events(args: argparse.Namespace, settings: Settings) -> int:
    journey_map = tuned_map(
        load_journey_map(settings.journey_map or None),
        threshold=args.threshold,
        min_volume=args.min_volume,
        consecutive=args.consecutive,
        map_false_alarms=args.false_alarms,
    )
    if args.consecutive == 0:
        raise BacktestInputError("--consecutive must be >= 1")
    incidents = load_incidents(args.incidents) if args.incidents is not None else []
    progress = None if args.quiet else Progress(sys.stderr)
    try:
        result = replay_events(
            args.events, journey_map, stage_settings(settings), progress, evidence=not args.no_evidence
        )
    finally:
        if progress is not None:
            progress.finish()
    score = score_replay(result, incidents, args.grace, AlertSettings.from_settings(settings))
    plots = [] if args.no_plots else events_plots(result, score, args.out / "plots", args.max_plots)
    options: dict[str, Any] = {
        "journey_map": journey_map.source,
        "incidents_file": str(args.incidents) if args.incidents is not None else None,
        "false_alarms": str(args.false_alarms) if args.false_alarms is not None else None,
        "threshold": args.threshold,
        "min_volume": args.min_volume,
        "consecutive": args.consecutive,
        "evidence_path": not args.no_evidence,
        "grace_windows": args.grace,
        "window_size": settings.window_size,
        "allowed_lateness": settings.allowed_lateness,
    }
    write_json(args.out / "summary.json", events_summary(result, score, options, plots))
    print(events_table(result, score))
    print(f"\nsummary: {args.out / 'summary.json'}; {len(plots)} plot(s) in {args.out / 'plots'}")
    if args.check:
        ok = score.detected == len(score.detections) and score.false_alerts_per_day <= args.max_false_per_day
        return 0 if ok else 1
    return 0


def _run_nab(args: argparse.Namespace) -> int:
    if args.consecutive == 0:
        raise BacktestInputError("--consecutive must be >= 1")
    outcome = run_nab(args.nab, args.labels, threshold=args.threshold, consecutive=args.consecutive)
    plots = [] if args.no_plots else [nab_plot(outcome, args.out / "plots")]
    doc = {"mode": "nab", **outcome.summary(), "threshold": args.threshold, "plots": plots}
    write_json(args.out / "summary.json", doc)
    print(nab_table(outcome))
    print(f"\nsummary: {args.out / 'summary.json'}; {len(plots)} plot(s) in {args.out / 'plots'}")
    if args.check:
        return 0 if outcome.recall in (None, 1.0) else 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point until the subcommand is wired: ``python -m frictionwatch.backtest.cli``."""
    parser = argparse.ArgumentParser(prog="frictionwatch backtest")
    add_backtest_arguments(parser)
    parser.add_argument("--journey-map", default="", help="journey map YAML (default: the shipped example)")
    args = parser.parse_args(argv)
    return run_backtest_command(args, Settings(journey_map=args.journey_map))


if __name__ == "__main__":
    sys.exit(main())
