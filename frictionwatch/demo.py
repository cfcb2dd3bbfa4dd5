"""``frictionwatch demo``: broker, worker and traffic on this machine, with a status line.

The generator runs in this process in wall-clock mode; the worker is a separate
``frictionwatch worker`` process (as in production) whose log goes to a file, so the
terminal shows only what a person needs: where to look, and what is happening.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from frictionwatch import metrics_page
from frictionwatch.alerting_stack import Server, StackError, WebhookReceiver, start_alertmanager, start_prometheus
from frictionwatch.broker import BrokerError, EmbeddedBroker, free_port, wait_for_port
from frictionwatch.generator import GeneratedRecord, GeneratorConfig, Incident, KafkaSink, Summary, incidents, run
from frictionwatch.journeymap import JourneyMapError, load_journey_map
from frictionwatch.kafka import ensure_topics, producer_config
from frictionwatch.settings import Settings

STATUS_EVERY_SECONDS = 10.0
#: arrays of up to this many events per record, as a collector sends them: the history goes out
#: fast, and live events still leave within the sink's linger (50 ms)
DEMO_BATCH = 100
#: how long the live traffic waits for the worker to work through the history, at most
CATCH_UP_TIMEOUT_SECONDS = 300.0


def demo_scenario() -> Path:
    return Path(str(resources.files("frictionwatch") / "examples" / "demo-scenario.yml"))


DEMO_WINDOW_SECONDS = 10.0
DEMO_EARLY_FLOW_AGE = 30.0
WATCHED = ("purchase", "payment")  # the step the demo's outage hits


@dataclass
class WorkerCounts:
    """What the worker's /metrics says it has done, summed over topics, and the watched step's signal."""

    received: float = 0.0
    processed: float = 0.0
    deadlettered: float = 0.0
    early_progressed: float = 0.0  # the watched step's early checks, every channel
    early_waiting: float = 0.0

    @classmethod
    def scrape(cls, url: str) -> WorkerCounts | None:
        try:
            samples = metrics_page.scrape(url, timeout=2)
        except OSError:
            return None
        watched = {"journey": WATCHED[0], "step": WATCHED[1]}
        return cls(
            received=metrics_page.total(samples, "frictionwatch_events_received_total"),
            processed=metrics_page.total(samples, "frictionwatch_events_processed_total"),
            deadlettered=metrics_page.total(samples, "frictionwatch_events_deadlettered_total"),
            early_progressed=metrics_page.total(samples, "frictionwatch_step_early_progressed_total", **watched),
            early_waiting=metrics_page.total(samples, "frictionwatch_step_early_waiting_total", **watched),
        )


class HistoryFirst:
    """The demo's sink: the history (records before ``live_start``) goes out at once, then, before
    the first live record, ``catch_up`` is called with how many history records there were (the
    worker works through them before the live traffic begins)."""

    def __init__(self, sink: KafkaSink, live_start: float, catch_up: Callable[[int], None]) -> None:
        self.sink = sink
        self.live_start = live_start
        self.catch_up = catch_up
        self.history = 0
        self.live = False
        self.records = sink.records  # the same counts, kept up to date by the Kafka sink

    def write(self, record: GeneratedRecord) -> None:
        if not self.live:
            if record.ts < self.live_start:
                self.history += 1
            else:
                self.live = True
                self.sink.flush()
                self.catch_up(self.history)
        self.sink.write(record)

    def idle(self) -> None:
        self.sink.idle()

    def close(self) -> None:
        self.sink.close()


class CatchUp:
    """Waits until the worker has worked through ``history`` records (processed or dead-lettered),
    printing its progress every few seconds and when it has caught up."""

    def __init__(self, metrics_url: str, started: float, history_seconds: float) -> None:
        self.metrics_url = metrics_url
        self.started = started
        self.history_seconds = history_seconds

    def __call__(self, history: int) -> None:
        began = time.monotonic()
        next_line = began
        print(
            f"  {began - self.started:5.0f} s   sent the history: {history:,} events of the last"
            f" {self.history_seconds / 60:g} min; the live traffic waits until the worker has worked through them",
            flush=True,
        )
        while True:
            counts = WorkerCounts.scrape(self.metrics_url)
            done = counts.processed + counts.deadlettered if counts is not None else 0.0
            now = time.monotonic()
            if done >= history:
                rate = history / max(now - self.started, 1e-9)
                print(
                    f"  {now - self.started:5.0f} s   caught up: the worker has worked through the history"
                    f" ({rate:,.0f} events/s since the demo began); live traffic from now",
                    flush=True,
                )
                return
            if now - began >= CATCH_UP_TIMEOUT_SECONDS:
                print(
                    f"  {now - self.started:5.0f} s   not caught up after {CATCH_UP_TIMEOUT_SECONDS:.0f} s"
                    f" ({done:,.0f} of {history:,} events of history): the live traffic begins anyway",
                    flush=True,
                )
                return
            if now >= next_line:
                print(
                    f"  {now - self.started:5.0f} s   catching up: {done:>8,.0f} of {history:,} events of history"
                    f" ({done / history if history else 1.0:.0%})",
                    flush=True,
                )
                next_line = now + STATUS_EVERY_SECONDS / 2
            time.sleep(0.5)  # polling the worker's /metrics: it has no event to wait on


class StatusLine:
    """Prints one line every few seconds: generated vs processed vs dead-lettered."""

    def __init__(self, metrics_url: str, started: float, incidents: list[Incident], clock_start: float) -> None:
        self.metrics_url = metrics_url
        self.started = started
        self.incidents = incidents
        self.clock_start = clock_start
        self.next_line = started + STATUS_EVERY_SECONDS
        self.previous = WorkerCounts()

    def __call__(self, summary: Summary) -> None:
        now = time.monotonic()
        if now < self.next_line:
            return
        self.next_line = now + STATUS_EVERY_SECONDS
        counts = WorkerCounts.scrape(self.metrics_url)
        if counts is None or counts.received == 0:
            worker = "worker starting..."
        else:
            worker = f"processed {counts.processed:>8,.0f}   dead-lettered {counts.deadlettered:>5,.0f}"
            progressed = counts.early_progressed - self.previous.early_progressed
            judged = progressed + counts.early_waiting - self.previous.early_waiting
            if judged:
                worker += f"   payment early flow {progressed / judged:4.0%} of {judged:3.0f}"
            self.previous = counts
        wall = self.clock_start + (now - self.started)
        active = [incident.name for incident in self.incidents if incident.start <= wall < incident.end]
        note = f"   << {', '.join(active)} >>" if active else ""
        print(f"  {now - self.started:5.0f} s   generated {summary.total:>8,}   {worker}{note}", flush=True)


def run_demo(args: argparse.Namespace, settings: Settings) -> int:
    try:
        journey_map = load_journey_map(settings.journey_map or None)
    except JourneyMapError as error:
        print(f"frictionwatch demo: invalid journey map:\n{error}", file=sys.stderr)
        return 1
    log_dir = Path(tempfile.mkdtemp(prefix="frictionwatch-demo-"))
    metrics_port = settings.metrics_port if args.metrics_port is not None else free_port(settings.metrics_host)
    signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM stops the demo as cleanly as Ctrl-C
    try:
        broker = EmbeddedBroker(settings.broker_host, settings.broker_port, log_path=log_dir / "broker.log").start()
    except BrokerError as error:
        print(f"frictionwatch demo: {error}", file=sys.stderr)
        return 1
    worker: subprocess.Popen[bytes] | None = None
    alerting: _AlertingStack | None = None
    sink: HistoryFirst | None = None
    try:
        settings = settings.with_bootstrap(broker.bootstrap_servers)
        partitions = ensure_topics(settings, [*settings.topics.values(), settings.topic_deadletter])
        worker_log = log_dir / "worker.log"
        alerting = _AlertingStack(log_dir) if args.with_alerting else None
        worker = _start_worker(settings, metrics_port, worker_log, alerting.alertmanager.url if alerting else None)
        metrics_url = f"http://{settings.metrics_host}:{metrics_port}/metrics"
        if alerting is not None:
            alerting.scrape(f"{settings.metrics_host}:{metrics_port}")
        scenario = args.scenario or demo_scenario()
        print(
            "frictionwatch demo\n"
            f"  kafka (embedded)  {broker.bootstrap_servers}   topics: {', '.join(partitions)}\n"
            f"  worker metrics    {metrics_url}\n"
            f"  worker log        {worker_log}\n"
            f"  windows           {DEMO_WINDOW_SECONDS:g} s; the early flow signal judges step visits at"
            f" {DEMO_EARLY_FLOW_AGE:g} s\n"
            f"  traffic           {args.rate:g} events/s, seed {args.seed}, "
            f"{args.malformed_rate:.0%} malformed, incidents from {scenario}\n"
            + (alerting.describe() if alerting else "")
            + f"  stop              Ctrl-C{f' (or after {args.duration:g} s)' if args.duration else ''}\n",
            flush=True,
        )
        wait_for_port(settings.metrics_host, metrics_port, 60, None)
        # Traffic starts args.history seconds in the past: that part is released at once, so the
        # detectors have learned what normal looks like before the live part begins.
        live_start = time.time()
        config = GeneratorConfig(
            seed=args.seed,
            rate=args.rate,
            duration=args.history + (args.duration or 365 * 86400.0),
            time_mode="wall",
            start=live_start - args.history,
            malformed_rate=args.malformed_rate,
            scenario=scenario,
            daily_pattern=False,  # the rate asked for, not tonight's share of it
        )
        began = live_start
        injected = incidents(journey_map, config)
        for incident in injected:
            print(
                f"  incident          {incident.name} ({incident.kind}) from {incident.start - began:.0f} s"
                f" for {incident.end - incident.start:.0f} s",
                flush=True,
            )
        print(
            "  payment early flow: share of payment visits past payment 30 s after they began,"
            " in the windows closed since the last line",
            flush=True,
        )
        from confluent_kafka import Producer

        counts = {kind: partitions[name] for kind, name in settings.topics.items()}
        started = time.monotonic()
        sink = HistoryFirst(
            KafkaSink(Producer(producer_config(settings)), settings.topics, counts, batch=DEMO_BATCH),
            live_start,
            CatchUp(metrics_url, started, args.history),
        )
        try:
            status = StatusLine(metrics_url, started, injected, began)
            summary = run(journey_map, config, sink, status)
        except KeyboardInterrupt:
            print("\nstopping...", flush=True)
            summary = None
        _report(summary, metrics_url)
    except KeyboardInterrupt:
        print("\nstopping...", flush=True)
    except (BrokerError, StackError) as error:
        print(f"frictionwatch demo: {error}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        failed = worker is not None and _stop(worker) not in (0, -signal.SIGTERM)
        if alerting is not None:
            alerting.stop()
        sink = None  # the producer goes before the broker: it would log failed reconnects
        broker.stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if args.keep_logs or failed:
            print(f"logs kept in {log_dir}", flush=True)
        else:
            shutil.rmtree(log_dir, ignore_errors=True)
    print("stopped: worker, generator and broker", flush=True)
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


class _AlertingStack:
    """Alertmanager and Prometheus on loopback, and a receiver printing every alert they deliver."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.receiver = WebhookReceiver(on_alert=_print_alert)
        self.alertmanager = start_alertmanager(log_dir, self.receiver.url)
        self.prometheus: Server | None = None

    def scrape(self, target: str) -> None:
        rules = sorted(Path(str(resources.files("frictionwatch.alerts") / "rules")).glob("*.yml"))
        self.prometheus = start_prometheus(self.log_dir, [target], rules, self.alertmanager)

    def describe(self) -> str:
        prometheus = (
            f"  prometheus        {self.prometheus.url}/alerts (rules from alerts/rules)\n" if self.prometheus else ""
        )
        return prometheus + f"  alertmanager      {self.alertmanager.url}  (alerts are printed here as they arrive)\n"

    def stop(self) -> None:
        if self.prometheus is not None:
            self.prometheus.stop()
        self.alertmanager.stop()
        self.receiver.stop()


def _print_alert(alert: dict[str, Any]) -> None:
    labels = alert.get("labels", {})
    where = "/".join(labels[key] for key in ("journey", "step", "channel", "queue") if labels.get(key))
    summary = alert.get("annotations", {}).get("summary", "")
    print(
        f"  ALERT {alert.get('status', '?'):8} {labels.get('alertname')} [{labels.get('severity')}]"
        f" {where} ({labels.get('source', '?')}): {summary}",
        flush=True,
    )


def _start_worker(
    settings: Settings, metrics_port: int, log_path: Path, alertmanager_url: str | None
) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "frictionwatch", "worker", "--bootstrap-servers", settings.bootstrap_servers]
    command += ["--metrics-host", settings.metrics_host, "--metrics-port", str(metrics_port)]
    command += ["--window-size", str(DEMO_WINDOW_SECONDS), "--early-flow-age", str(DEMO_EARLY_FLOW_AGE)]
    command += ["--broker-quirks", "tansu"]  # the embedded broker's workarounds (docs/operations.md)
    if alertmanager_url is not None:
        command += ["--alertmanager-urls", alertmanager_url]
    if settings.journey_map:
        command += ["--journey-map", settings.journey_map]
    with log_path.open("wb") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _report(summary: Summary | None, metrics_url: str, catch_up: float = 120.0) -> None:
    """Print the final accounting, once the worker has caught up with what was generated
    (waiting up to ``catch_up`` s: a busy machine may leave it behind)."""
    deadline = time.monotonic() + catch_up
    counts = WorkerCounts.scrape(metrics_url)
    told = False
    while summary is not None and time.monotonic() < deadline:
        if counts is not None and counts.processed + counts.deadlettered >= summary.total:
            break
        if not told:
            print(f"waiting up to {catch_up:.0f} s for the worker to process the rest...", flush=True)
            told = True
        time.sleep(0.5)  # waiting on another process's counters
        counts = WorkerCounts.scrape(metrics_url)
    if summary is not None:
        print(f"generated {summary.total:,} events ({sum(summary.malformed.values()):,} malformed on purpose)")
    if counts is not None:
        print(f"worker: processed {counts.processed:,.0f}, dead-lettered {counts.deadlettered:,.0f}", flush=True)


def _stop(process: subprocess.Popen[bytes], timeout: float = 20.0) -> int:
    """Stop ``process`` (SIGTERM, then SIGKILL after ``timeout``); its exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode
