"""``frictionwatch generate``: options, progress and outputs around :func:`run`."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path
from typing import IO

from frictionwatch.generator import clocks
from frictionwatch.generator.config import GeneratorConfig
from frictionwatch.generator.records import TOPIC_KINDS
from frictionwatch.generator.scenario import ScenarioError, load_scenario
from frictionwatch.generator.sinks import JsonLinesSink, KafkaSink, Sink, Summary, run, write_ground_truth
from frictionwatch.journeymap import JourneyMapError, load_journey_map, parse_duration
from frictionwatch.settings import Settings


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _epoch(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected epoch seconds or an RFC 3339 time, got {text!r}") from None
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no UTC offset (add Z or +hh:mm)")
    return parsed.timestamp()


def _clock_skew(text: str) -> clocks.ClockSkew:
    try:
        return clocks.parse_clock_skew(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_generate_arguments(parser: argparse.ArgumentParser) -> None:
    what = parser.add_argument_group("what and how much")
    what.add_argument("--rate", type=float, default=200.0, help="mean events per second over the day (default 200)")
    what.add_argument(
        "--duration", type=_duration, default=None, metavar="DURATION",
        help="event time to cover: 90s, 10m, 24h, ... (default 1h unless --count is given)",
    )  # fmt: skip
    what.add_argument("--count", type=int, default=None, help="stop after this many events (valid + malformed)")
    what.add_argument("--seed", type=int, default=1, help="random seed: the same seed gives the same traffic")
    what.add_argument(
        "--time", dest="time_mode", choices=("simulated", "wall"), default="simulated",
        help="simulated: event time runs as fast as possible, ending now (default); "
        "wall: event time is the clock and output is paced at --rate",
    )  # fmt: skip
    what.add_argument("--start", type=_epoch, default=None, help="event time of the start (epoch or RFC 3339)")
    what.add_argument(
        "--flat", action="store_true", help="constant rate and staffing instead of the daily curve (no lunch "
        "breaks or evening shift: a run's traffic does not depend on the time of day)",
    )  # fmt: skip
    what.add_argument(
        "--scenario", type=Path, default=None,
        help="YAML file of incidents and controls to inject (format and kinds: frictionwatch/generator/scenario.py)",
    )  # fmt: skip
    what.add_argument(
        "--random-incidents", type=int, default=0, metavar="N",
        help="also inject N incidents drawn from --seed: kind, touchpoint, magnitude (log-uniform, tiny to "
        "huge), shape, 5-60 min, any time of day, apart per touchpoint (needs --duration; see --incidents)",
    )  # fmt: skip
    what.add_argument(
        "--random-controls", type=int, default=0, metavar="M",
        help="also inject M controls that must not alert (traffic surge, late batch, campaign mix; "
        "holiday and slow drift from 2 days on), drawn from --seed",
    )  # fmt: skip
    what.add_argument("--malformed-rate", type=float, default=0.0, help="share of records made malformed on purpose")
    what.add_argument("--clock-skew", type=_clock_skew, action="append", default=[], metavar="SPEC", help=clocks.HELP)
    out = parser.add_argument_group("output")
    out.add_argument(
        "--output", default="kafka", metavar="kafka|FILE.jsonl",
        help="kafka (needs --bootstrap-servers) or a JSON-lines file for replay and backtests (default kafka)",
    )  # fmt: skip
    out.add_argument("--batch", type=int, default=1, help="Kafka: pack up to N events per record, per partition")
    out.add_argument("--incidents", type=Path, default=None, help="write the incidents' ground truth here (JSON lines)")
    out.add_argument("--summary", type=Path, default=None, help="write the run's counts here as JSON")
    out.add_argument("--quiet", action="store_true", help="no progress line")


def check_scenario(path: Path, settings: Settings) -> bool:
    """Validate a scenario file against the journey map; print the result. True when valid."""
    try:
        scenario = load_scenario(path, load_journey_map(settings.journey_map or None))
    except (ScenarioError, JourneyMapError) as error:
        print(f"scenario {path}: invalid\n{error}", file=sys.stderr)
        return False
    print(f"scenario {path}: OK, {len(scenario.specs)} incident(s)")
    return True


class Progress:
    """A progress line on stderr: events so far, speed, and how far through the run."""

    def __init__(self, config: GeneratorConfig, stream: IO[str]) -> None:
        self.config = config
        self.stream = stream
        self.tty = stream.isatty()

    def __call__(self, summary: Summary) -> None:
        done = []
        if self.config.count:
            done.append(summary.total / self.config.count)
        if self.config.duration and summary.first_ts is not None and summary.last_ts is not None:
            start = self.config.start if self.config.start is not None else summary.first_ts
            done.append((summary.last_ts - start) / self.config.duration)
        share = max(done, default=0.0)
        filled = int(min(share, 1.0) * 30)
        speed = summary.total / summary.wall_seconds if summary.wall_seconds else 0.0
        line = f"[{'#' * filled}{'.' * (30 - filled)}] {share:6.1%}  {summary.total:>10,} events  {speed:>9,.0f}/s"
        print(("\r" + line) if self.tty else line, end="" if self.tty else "\n", file=self.stream, flush=True)

    def finish(self) -> None:
        if self.tty:
            print(file=self.stream)


def run_generate_command(args: argparse.Namespace, settings: Settings) -> int:
    try:
        journey_map = load_journey_map(settings.journey_map or None)
        duration = args.duration if args.duration is not None or args.count is not None else 3600.0
        config = GeneratorConfig(
            seed=args.seed, rate=args.rate, duration=duration, count=args.count, time_mode=args.time_mode,
            start=args.start, malformed_rate=args.malformed_rate, scenario=args.scenario, daily_pattern=not args.flat,
            random_incidents=args.random_incidents, random_controls=args.random_controls,
            clock_skews=tuple(args.clock_skew),
        )  # fmt: skip
        sink = _sink(args, settings)
    except (ValueError, OSError) as error:  # JourneyMapError and ScenarioError are ValueErrors
        print(f"frictionwatch generate: {error}", file=sys.stderr)
        return 2
    progress = None if args.quiet else Progress(config, sys.stderr)
    try:
        summary = run(journey_map, config, sink, progress)
    except ValueError as error:  # a bad scenario, or random incidents that don't fit the span
        print(f"frictionwatch generate: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted; records generated so far were flushed", file=sys.stderr)
        return 130
    finally:
        if progress is not None:
            progress.finish()
    if args.incidents is not None:
        write_ground_truth(summary.incidents, args.incidents)
    if args.summary is not None:
        args.summary.write_text(summary.to_json())
    if not args.quiet:
        by_kind = ", ".join(f"{summary.events[kind]:,} {kind}" for kind in TOPIC_KINDS)
        malformed = sum(summary.malformed.values())
        print(f"generated {by_kind}, {malformed:,} malformed, in {summary.wall_seconds:.1f} s", file=sys.stderr)
    return 0


def _sink(args: argparse.Namespace, settings: Settings) -> Sink:
    if args.output != "kafka":
        if args.batch != 1:
            raise ValueError("--batch applies to --output kafka only (a file holds one event per line)")
        return JsonLinesSink(args.output)
    from confluent_kafka import Producer

    from frictionwatch.kafka import ensure_topics, producer_config

    topics = settings.topics
    partitions = ensure_topics(settings, list(topics.values()))
    producer = Producer(producer_config(settings))
    counts = {kind: partitions[name] for kind, name in topics.items()}
    return KafkaSink(producer, topics, counts, batch=args.batch, max_record_bytes=settings.max_record_bytes)
