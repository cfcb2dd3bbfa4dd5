"""Event-to-alert latency through Alertmanager, per incident, on both alert paths.

One run, the way the alerting integration test does it but longer: a worker with
10-second windows (``--alertmanager-urls``: the immediate path), Debian's Prometheus
loading the shipped ``alerts/rules`` unchanged (scrape and evaluation every second, as
:mod:`frictionwatch.alerting_stack` configures it: the rule path), Alertmanager routing
everything at once to a webhook receiver. The generator sends wall-clock traffic at a
steady 1,000 events/s that starts ``history`` seconds in the past (released at once, so
the detectors learn what normal looks like), then paces the rest live, with seven
incidents on seven different touchpoints, staggered, long enough for the rules' ``for:``:
two step outages, two understaffed queues, an error burst, a queue's waits ramping up
(``linear_ramp``) and an error burst at a quiet step (the store channel of the product
step, about six sessions a minute).

The latency of an incident is the time from its onset (wall clock = event time) to the
first firing alert at the receiver whose labels name its touchpoint (journey and step, or
channel and queue), per path (``source="detector"`` or ``"rule"``).

Alertmanager runs the shipped ``alerts/alertmanager.yml`` (every receiver pointed at the
bench's webhook), so its routing and ``group_wait`` count in the figures. The worker posts
its alerts through a recording proxy: the **delivery** time of an incident's first detector
alert is from the worker's post (the detector fired) to the webhook receiving it.

The **oracle** column (:func:`oracle_delays`) is the anchor of issue 12's target: the same
events made again and replayed through the worker's stages into the same 10-s final
windows, and per incident the CUSUM of bench/oracle.py that knows the true before and
after, at the example map's false-alarm budget split over its series. It is what a
detector fed those final windows could do at best; the worker's evidence path (fed as events
arrive, before a window closes: docs/detectors.md) can beat it. ``immediate_by`` says which of
the worker's two paths sent an incident's first detector alert: ``evidence`` or ``window``.
"""

from __future__ import annotations

import http.server
import json
import os
import statistics
import threading
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from bench import power
from bench.common import (
    ROOT,
    BenchError,
    Progress,
    free_metrics_port,
    machine,
    python_module,
    say,
    scrape,
    stop,
    tail,
    total,
)
from bench.sweep import TrafficSet, replay
from frictionwatch.alerting_stack import StackError, WebhookReceiver, start_alertmanager, start_prometheus
from frictionwatch.broker import EmbeddedBroker
from frictionwatch.detectors.evidence import EVIDENCE_METRICS
from frictionwatch.detectors.explain import sequential_series
from frictionwatch.generator.config import GeneratorConfig
from frictionwatch.journeymap import load_journey_map
from frictionwatch.streams.stage import StageSettings

RATE = 1000
WINDOW_SIZE = 10
EARLY_FLOW_AGE = 30  # seconds; the default 60 suits 60-s windows (see bench/README.md)
#: the detectors the worker runs: what the example map's kind auto answers with from a series'
#: second day on (a first day of history at 1,000 events/s is out of the bench's reach)
DETECTOR_KIND = "sequential"
EXAMPLE_MAP = ROOT / "frictionwatch" / "examples" / "journey-map.yml"


@dataclass(frozen=True)
class Incident:
    name: str
    kind: str
    target: dict[str, str]  # journey+step or channel+queue
    parameters: str

    def matches(self, labels: dict[str, str]) -> bool:
        return all(labels.get(key) == value for key, value in self.target.items())


INCIDENTS = (
    Incident("payment_outage", "step_outage", {"journey": "purchase", "step": "payment"}, "continuation: 0.05"),
    Incident("chat_orders_understaffed", "understaffed", {"channel": "chat", "queue": "orders"}, "factor: 4"),
    Incident("article_errors", "error_burst", {"journey": "support", "step": "article"}, "error_rate: 0.5"),
    Incident("cart_outage", "step_outage", {"journey": "purchase", "step": "cart"}, "continuation: 0.05"),
    Incident("phone_billing_understaffed", "understaffed", {"channel": "phone", "queue": "billing"}, "factor: 4"),
    Incident(
        "phone_technical_ramp",
        "understaffed",
        {"channel": "phone", "queue": "technical"},
        "factor: 4, shape: linear_ramp",
    ),
    Incident(  # about 6 sessions a minute on the store channel of the product step: a quiet step
        "store_product_errors",
        "error_burst",
        {"journey": "purchase", "step": "product", "channel": "store"},
        "error_rate: 0.5",
    ),
)
SEED = 11
#: seconds of history, of normal traffic after it, between two onsets, and of each incident
TIMING = (900.0, 90.0, 20.0, 420.0)
QUICK_TIMING = (600.0, 60.0, 10.0, 240.0)


def scenario(
    history: float, control: float, stagger: float, duration: float, incidents: tuple[Incident, ...] = INCIDENTS
) -> tuple[str, list[float]]:
    """The scenario file's text and each incident's offset from the run's start."""
    lines, offsets = ["version: 1", "incidents:"], []
    for index, incident in enumerate(incidents):
        offset = history + control + index * stagger
        offsets.append(offset)
        where = ", ".join(f"{key}: {value}" for key, value in incident.target.items())
        lines.append(
            f"  - {{name: {incident.name}, kind: {incident.kind}, {where}, start: {offset:.0f}s,"
            f" duration: {duration:.0f}s, {incident.parameters}}}"
        )
    return "\n".join(lines) + "\n", offsets


def steady_state_map(workdir: Path) -> Path:
    """The example map with its detectors' kind set to :data:`DETECTOR_KIND` (its budget and
    overrides unchanged), written into ``workdir``; the path."""
    document = yaml.safe_load(EXAMPLE_MAP.read_text())
    document["detectors"]["defaults"]["kind"] = DETECTOR_KIND
    path = workdir / "latency-journey-map.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def oracle_delays(
    start: float, seconds: float, scenario_path: Path, rate: float = RATE
) -> dict[str, tuple[float | None, str]]:
    """Per incident name: the oracle's onset-to-alarm seconds (None when it can't tell within
    the incident) and its status, on the run's own events.

    The generator makes the run's traffic again (same seed, start, rate and scenario; event
    time does not depend on the pacing), the worker's stages turn it into the same 10-s final
    windows, and :func:`bench.power.run_oracle` runs, per incident, the CUSUM that knows the
    true before and after (bench/oracle.py). Its budget is the example map's, split over the
    series as the shipped detectors split it (``map_false_alarms``: one false alarm a day for
    the whole map).
    """
    traffic = TrafficSet("example", rate, seconds / 86400.0, SEED, 0, scenario=str(scenario_path), start=start)
    config = GeneratorConfig(
        seed=SEED, rate=rate, duration=seconds, start=start, scenario=scenario_path, daily_pattern=False
    )
    replayed = replay(traffic, config, StageSettings(window_size=WINDOW_SIZE, early_age=EARLY_FLOW_AGE), report=False)
    journey_map = load_journey_map(traffic.map_path())
    if journey_map.map_false_alarms is None:
        raise BenchError("the example map has no map_false_alarms: the oracle's budget comes from it")
    budget = journey_map.map_false_alarms.split(sequential_series(journey_map))
    cases = [case for case in power.cases_of(replayed, burn_in=0.0) if not case.control]
    power.run_oracle(replayed, cases, budget.period / budget.alarms / 86400.0)
    prefix = f"{traffic.label}: "
    return {case.name.removeprefix(prefix): (case.oracle_delay, case.oracle_status) for case in cases}


class AlertProxy:
    """Forwards what the worker posts to Alertmanager, noting when each alert was posted.

    ``posted`` maps an alert's labels (sorted items) to the time of its first post (the firing one).
    """

    def __init__(self, target: str) -> None:
        self.posted: dict[tuple[tuple[str, str], ...], float] = {}
        self.lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                at = time.time()
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with proxy.lock:
                    for alert in json.loads(body):  # an alert's first post fires it (resolving comes later)
                        proxy.posted.setdefault(tuple(sorted(alert["labels"].items())), at)
                request = urllib.request.Request(
                    target + self.path, data=body, headers={"Content-Type": "application/json"}, method="POST"
                )
                with urllib.request.urlopen(request, timeout=10) as answer:
                    status = answer.status
                self.send_response(status)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def posted_at(self, labels: dict[str, str]) -> float | None:
        with self.lock:
            return self.posted.get(tuple(sorted(labels.items())))

    def stop(self) -> None:
        self.server.shutdown()


def shipped_routing(webhook_url: str) -> dict[str, Any]:
    """alerts/alertmanager.yml with every receiver posting to ``webhook_url`` (its path names the receiver).

    >>> config = shipped_routing("http://127.0.0.1:1/alerts")
    >>> sorted({hook["url"] for receiver in config["receivers"] for hook in receiver["webhook_configs"]})
    ['http://127.0.0.1:1/alerts/oncall', 'http://127.0.0.1:1/alerts/ops', 'http://127.0.0.1:1/alerts/product-teams']
    """
    config: dict[str, Any] = yaml.safe_load((ROOT / "alerts" / "alertmanager.yml").read_text())
    for receiver in config["receivers"]:
        receiver["webhook_configs"] = [{"url": f"{webhook_url}/{receiver['name']}", "send_resolved": True}]
    return config


def summarise(values: list[float | None]) -> dict[str, float | int | None]:
    """Median and max of the latencies that were measured, and how many were missed.

    >>> summarise([10.0, None, 30.0, 20.0])
    {'median': 20.0, 'max': 30.0, 'measured': 3, 'missed': 1}
    """
    found = [value for value in values if value is not None]
    return {
        "median": statistics.median(found) if found else None,
        "max": max(found) if found else None,
        "measured": len(found),
        "missed": len(values) - len(found),
    }


def run(broker: EmbeddedBroker, workdir: Path, *, quick: bool = False) -> dict[str, Any]:
    history, control, stagger, duration = QUICK_TIMING if quick else TIMING
    text, offsets = scenario(history, control, stagger, duration)
    path = workdir / "latency-scenario.yml"
    path.write_text(text)
    say(
        f"event-to-alert latency: {RATE:,} events/s, {WINDOW_SIZE}-s windows, kind {DETECTOR_KIND},"
        f" {len(INCIDENTS)} incidents of {duration:.0f} s, {history:.0f} s of history first"
    )
    receiver = WebhookReceiver()
    try:
        alertmanager = start_alertmanager(workdir, receiver.url, config=shipped_routing(receiver.url))
    except StackError as error:
        receiver.stop()
        raise BenchError(str(error)) from None
    proxy = AlertProxy(alertmanager.url)
    port = free_metrics_port()
    worker = python_module(
        "frictionwatch", "worker", "--bootstrap-servers", broker.bootstrap_servers, "--metrics-port", str(port),
        "--window-size", str(WINDOW_SIZE), "--early-flow-age", str(EARLY_FLOW_AGE), "--alertmanager-urls",
        proxy.url, "--journey-map", str(steady_state_map(workdir)), "--log-level", "warning",
        "--group-id", "bench-latency", "--broker-quirks", broker.quirks,
        log=workdir / "latency-worker.log",
    )  # fmt: skip
    rules = sorted((ROOT / "alerts" / "rules").glob("*.yml"))
    prometheus = start_prometheus(workdir, [f"127.0.0.1:{port}"], rules, alertmanager)
    load = os.getloadavg()[0]
    began = time.time()
    start = round(began - history, 3)
    total_seconds = history + control + stagger * (len(INCIDENTS) - 1) + duration + 30
    generator = python_module(
        "frictionwatch", "generate", "--output", "kafka", "--bootstrap-servers", broker.bootstrap_servers,
        "--time", "wall", "--start", str(start), "--rate", str(RATE), "--flat", "--duration", f"{total_seconds:.0f}s",
        "--scenario", str(path), "--batch", "100", "--seed", str(SEED), "--quiet",
        log=workdir / "latency-generate.log",
    )  # fmt: skip
    onsets = [start + offset for offset in offsets]
    progress = Progress("incidents under way")
    try:
        while True:
            if worker.poll() is not None:
                raise BenchError(f"the worker exited:\n{tail(workdir / 'latency-worker.log')}")
            found = _latencies(receiver, proxy, onsets)
            immediate = sum(1 for item in found if item["immediate"] is not None)
            rule = sum(1 for item in found if item["rule"] is not None)
            lag = _processed(port)
            progress.update(
                f"{max(0.0, time.time() - onsets[0]):4.0f} s since the first onset; alerts: {immediate}/"
                f"{len(INCIDENTS)} immediate, {rule} by rule; {lag:,.0f} events processed"
            )
            if generator.poll() is not None:
                break
            time.sleep(1.0)  # polling the receiver and the worker: there is no event to wait on
    finally:
        stop(generator)
        code = stop(worker)
        prometheus.stop()
        proxy.stop()
        alertmanager.stop()
        receiver.stop()
    if code not in (0, -15):
        say(f"  (the worker exited with {code})")
    found = _latencies(receiver, proxy, onsets)
    matched = {id(alert) for item in found for alert in item.pop("alerts")}
    unrelated = _other_alerts(receiver, matched, onsets[0])
    immediate_summary = summarise([item["immediate"] for item in found])
    delivery_summary = summarise([item["delivery"] for item in found if item["immediate"] is not None])
    progress.done(
        f"immediate path median {immediate_summary['median'] or 0:.0f} s, max {immediate_summary['max'] or 0:.0f} s;"
        f" detector fired -> webhook median {delivery_summary['median'] or 0:.2f} s"
    )
    say("  the oracle: the run's events again, through the same stages, and a CUSUM knowing each incident")
    oracle = oracle_delays(start, total_seconds, path)
    for item in found:
        item["oracle"], item["oracle_status"] = oracle.get(item["name"], (None, "no data"))
    oracle_summary = summarise([item["oracle"] for item in found])
    both = [item for item in found if item["immediate"] is not None and item["oracle"] is not None]
    mine = statistics.median(item["immediate"] for item in both) if both else None
    theirs = statistics.median(item["oracle"] for item in both) if both else None
    say(
        f"  oracle median {oracle_summary['median'] or 0:.0f} s ({oracle_summary['missed']} it can't tell);"
        f" immediate path {mine / theirs if mine is not None and theirs else float('nan'):.2f}x its median"
    )
    return {
        "started": datetime.fromtimestamp(began, UTC).isoformat(timespec="seconds"),
        "machine": machine()["cpu"],  # the README's table may hold parts measured on other machines
        "load_average_at_start": load,
        "rate": RATE,
        "window_size": WINDOW_SIZE,
        "detector_kind": DETECTOR_KIND,
        "early_flow_age": EARLY_FLOW_AGE,
        "history_seconds": history,
        "incident_seconds": duration,
        "incidents": found,
        "immediate": immediate_summary,
        "rule": summarise([item["rule"] for item in found]),
        "oracle": oracle_summary,
        #: the immediate path's median over the oracle's, both over the incidents both alerted on
        "immediate_vs_oracle": round(mine / theirs, 2) if mine is not None and theirs else None,
        "delivery": delivery_summary,
        "routing": "alerts/alertmanager.yml",
        "other_alerts": unrelated,
    }


def _other_alerts(receiver: WebhookReceiver, matched: set[int], first_onset: float) -> list[dict[str, Any]]:
    """Firing alerts that name no incident's touchpoint, once each, with when they first came:
    before the first onset they are false alerts on normal traffic; after it, at another
    touchpoint than the incidents' (e.g. a journey step fed by a queue that is understaffed)."""
    with receiver.lock:
        alerts = list(receiver.alerts)
    found: dict[tuple[str, ...], dict[str, Any]] = {}
    for at, alert in alerts:
        if alert["status"] != "firing" or id(alert) in matched:
            continue
        labels = alert["labels"]
        where = "/".join(labels[key] for key in ("journey", "step", "channel", "queue") if labels.get(key))
        name, source, metric = labels.get("alertname", "?"), labels.get("source", "?"), labels.get("metric", "")
        found.setdefault(
            (name, source, where, metric),
            {"alertname": name, "source": source, "where": where, "metric": metric,
             "severity": labels.get("severity", ""), "seconds_after_first_onset": round(at - first_onset, 1)},
        )  # fmt: skip
    return sorted(found.values(), key=lambda alert: alert["seconds_after_first_onset"])


def _processed(port: int) -> float:
    try:
        return total(scrape(f"http://127.0.0.1:{port}/metrics"), "frictionwatch_events_processed_total")
    except OSError:
        return 0.0


def _latencies(receiver: WebhookReceiver, proxy: AlertProxy, onsets: list[float]) -> list[dict[str, Any]]:
    """Per incident: seconds from onset to the first alert of each path naming its touchpoint,
    and from the worker posting that detector alert to the webhook receiving it (delivery)."""
    with receiver.lock:
        alerts = list(receiver.alerts)
    found = []
    for incident, onset in zip(INCIDENTS, onsets, strict=True):
        item: dict[str, Any] = {"name": incident.name, "kind": incident.kind, "target": incident.target,
                                "immediate": None, "rule": None, "delivery": None, "alertnames": [],
                                "alerts": []}  # fmt: skip
        for at, alert in alerts:
            labels = alert["labels"]
            if alert["status"] != "firing" or at < onset or not incident.matches(labels):
                continue
            path = "immediate" if labels.get("source") == "detector" else "rule"
            item["alerts"].append(alert)
            if item[path] is None:
                item[path] = round(at - onset, 1)
                posted = proxy.posted_at(labels) if path == "immediate" else None
                if path == "immediate":  # the evidence path, or the window detectors
                    item["immediate_by"] = "evidence" if labels.get("metric") in EVIDENCE_METRICS else "window"
                if posted is not None:
                    item["delivery"] = round(at - posted, 3)
                item["alertnames"].append(f"{labels.get('alertname')} ({path}, {labels.get('metric', 'rule')})")
        found.append(item)
    return found
