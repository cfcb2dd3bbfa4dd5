"""Every query of every dashboard returns data from the real thing: the embedded broker, a
worker, Debian's Prometheus (scraping it, with the shipped rules) and Alertmanager, fed by the
generator with a payment-step outage.

Some panels only have data during an incident (firing alerts, detector flags, the anomaly
annotations): the generator sends 20 minutes of history at once (the detectors learn from
it; the backlog also trips the pipeline rules), then live traffic in which the payment step
breaks. Sessions time out after 5 minutes instead of 30 (a copy of the shipped journey map), so
that step conversion and drop-off, counted when sessions end, have data within the test's
minutes. A share of the app devices send live events from clocks 90 s fast (the device-clock
panels). Queries are polled until each has returned at least one finite value; panels with
`$__range` are asked about the last 15 minutes, filters are set to All (`.*`).
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from processes import Broker, Worker, total, wait_until
from test_alert_rules import metric_names
from test_dashboards import PROMETHEUS_SERIES, every_query

from frictionwatch.alerting_stack import Server
from frictionwatch.journeymap import example_path
from frictionwatch.metrics_page import scrape

pytestmark = pytest.mark.integration
HISTORY = 1200  # seconds of past traffic: 40 windows of 30 s, past the detectors' warm-up (30)
OUTAGE_AFTER = 20  # seconds into the live traffic
RATE = "400"


def has_data(prometheus: Server, expr: str, instant: bool, since: float) -> bool:
    """Whether ``expr`` gives at least one finite value now (instant) or since ``since`` (range)."""
    now = time.time()
    if instant:
        path = "/api/v1/query?" + urllib.parse.urlencode({"query": expr, "time": f"{now:.3f}"})
    else:
        parameters = {"query": expr, "start": f"{since:.3f}", "end": f"{now:.3f}", "step": "5"}
        path = "/api/v1/query_range?" + urllib.parse.urlencode(parameters)
    answer = prometheus.get(path)
    assert answer["status"] == "success", f"{expr}: {answer}"
    values = [
        float(value)
        for series in answer["data"]["result"]
        for _, value in (series["values"] if "values" in series else [series["value"]])
    ]
    return any(math.isfinite(value) for value in values)


def quick_journey_map(directory: Path) -> Path:
    """The shipped journey map, with sessions ending after 5 minutes of inactivity."""
    text = example_path().read_text()
    assert "session_timeout: 30m" in text
    path = directory / "journeys.yml"
    path.write_text(text.replace("session_timeout: 30m", "session_timeout: 5m"))
    return path


@pytest.mark.engines("tansu")  # the dashboards read /metrics, the same on both brokers: CI time goes elsewhere
def test_every_dashboard_query_returns_data(
    broker: Broker, alertmanager: Server, prometheus: Callable[[list[str]], Server], tmp_path: Path
) -> None:
    journeys = str(quick_journey_map(tmp_path))
    scenario = tmp_path / "incidents.yml"
    scenario.write_text(
        "version: 1\nincidents:\n  - {name: payment_outage, kind: step_outage, journey: purchase, step: payment,"
        f" start: {HISTORY + OUTAGE_AFTER}s, duration: 15m, continuation: 0.05}}\n"
    )
    worker = Worker(
        broker.bootstrap_servers, tmp_path, "--window-size", "30", "--early-flow-age", "60",
        "--alertmanager-urls", alertmanager.url, "--alert-resend-seconds", "20", "--journey-map", journeys,
    )  # fmt: skip
    server = prometheus([f"127.0.0.1:{worker.port}"])
    began = time.time()
    generator = subprocess.Popen(
        [sys.executable, "-m", "frictionwatch", "generate", "--output", "kafka", "--bootstrap-servers",
         broker.bootstrap_servers, "--time", "wall", "--start", str(began - HISTORY), "--rate", RATE, "--flat",
         "--duration", f"{HISTORY + 900}s", "--scenario", str(scenario), "--batch", "20", "--seed", "12",
         "--malformed-rate", "0.01", "--clock-skew", f"share=0.3,offset=90s,channel=app,from={HISTORY}s",
         "--journey-map", journeys, "--quiet"],
    )  # fmt: skip
    wanted = {(where, expr, instant) for where, expr, instant in every_query()}
    answered: set[tuple[str, str, bool]] = set()

    def every_query_answered() -> bool:
        for query in sorted(wanted - answered):
            if has_data(server, query[1], query[2], began):
                answered.add(query)
        return answered == wanted

    try:
        wait_until(
            lambda: total(worker.samples(), "frictionwatch_windows_final_total", source="journey.clicks") > 30,
            900, "the worker to reduce the history's windows",
        )  # fmt: skip
        try:
            wait_until(every_query_answered, 900, "every dashboard query to return data", poll=5)
        except AssertionError:
            missing = "\n".join(f"  {where}: {expr}" for where, expr, _ in sorted(wanted - answered))
            raise AssertionError(
                f"queries that never returned data:\n{missing}\nworker log:\n{worker.tail()}"
            ) from None
        print(f"\nall {len(wanted)} dashboard queries returned data {time.time() - began:.0f} s after the start")

        # Statically too: every series name the dashboards query is on the worker's /metrics page.
        with urllib.request.urlopen(worker.url, timeout=5) as response:
            page = response.read().decode()
        exported = set(re.findall(r"^# TYPE (\S+) (\w+)", page, flags=re.MULTILINE))
        suffixes = {"histogram": ("_bucket", "_sum", "_count")}  # counters are named ..._total on the page
        names = {name + suffix for name, kind in exported for suffix in suffixes.get(kind, ("",))}
        names |= {name for name, _ in scrape(worker.url)}
        used = {name for _, expr, _ in wanted for name in metric_names(expr)}
        assert used - names <= PROMETHEUS_SERIES, sorted(used - names - PROMETHEUS_SERIES)
        alerts = server.get("/api/v1/query?query=" + urllib.parse.quote('ALERTS{alertstate="firing"}'))
        print("firing rule alerts:", json.dumps(sorted({a["metric"]["alertname"] for a in alerts["data"]["result"]})))
    finally:
        generator.terminate()
        generator.wait(30)
        exit_code = worker.stop()
    assert exit_code == 0, worker.tail()
