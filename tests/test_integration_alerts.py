"""Both alert paths end to end with the real servers: a broker (each engine), a worker, Debian's
Prometheus and Alertmanager, and a webhook receiver standing in for the on-call tool.

One run: half an hour of history warms the detectors up; then live traffic, first
normal (the control: no alert may fire), then a payment-step outage. The worker's detector
alerts (immediate path: the evidence path, fed as events arrive, and the window detectors) and
the Prometheus rule alert (rule path) must all reach the receiver through Alertmanager, with
their labels and annotations, and must all resolve after the outage: the last notification of
every payment-step alert says resolved (a severity change resolves an alert during the outage
and fires it again under the new label). The evidence path's alert must come no later than the
window detectors' (the order is asserted; the times from the onset to each alert and from the
outage's end to each resolution are printed, not asserted).

In the middle of the incident the worker is replaced, as a deploy does: a second worker joins
(the partitions are split between the two), then the first stops. The incident goes on: no alert
resolves before the outage ends, and every alert keeps the onset it was first sent with (its
`started` annotation), so the worker that took the step over carried its incident on from the
checkpoint rather than opening a new one.

The shipped rules are loaded with test-sized durations (`for:` 15 s, 5-minute ranges
1 minute); the journey map and detectors are the shipped ones.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from processes import Broker, Worker, stop_all, total, wait_until
from servers import WebhookReceiver

from frictionwatch.alerting_stack import Server
from frictionwatch.broker import free_port

pytestmark = pytest.mark.integration
HISTORY = 1800  # seconds of past traffic the detectors learn from (their warm-up is 30 windows)
CONTROL_SECONDS = 100
# Long enough for the rule path when the worker is behind: catching up, it works through the
# outage's windows faster than they happened, and the rule's 1-minute rates must see mostly them
OUTAGE_SECONDS = 240
RATE = "400"
# Normal traffic goes on after the outage until the test ends (it stops the generator): windows
# close only as later events arrive, and the detector resolves only on normal windows after
# the outage. The worker may be minutes behind the live traffic on a busy machine.
TRAFFIC_AFTER = 3600
WINDOW_FLOW = ("early_flow_ratio", "flow_ratio")  # the window detectors' flow metrics
EVIDENCE = ("step_progress", "step_errors")  # the evidence path's (detectors/evidence.py)


def test_alerts_reach_on_call_through_both_paths_and_resolve(
    broker: Broker,
    receiver: WebhookReceiver,
    alertmanager: Server,
    prometheus: Callable[[list[str]], Server],
    tmp_path: Path,
) -> None:
    # One continuous stream: wall-clock traffic that starts HISTORY seconds in the past, so the
    # past is released at once (the detectors learn from it) and the rest is paced live.
    scenario = tmp_path / "outage.yml"
    scenario.write_text(
        "version: 1\nincidents:\n  - {name: payment_outage, kind: step_outage, journey: purchase, step: payment,"
        f" start: {HISTORY + CONTROL_SECONDS}s, duration: {OUTAGE_SECONDS}s, continuation: 0.05}}\n"
    )
    worker_options = (
        "--window-size", "30", "--early-flow-age", "60",
        "--alertmanager-urls", alertmanager.url, "--alert-resend-seconds", "20", "--alert-hold-seconds", "20",
    )  # fmt: skip
    worker = Worker(broker.bootstrap_servers, tmp_path, *worker_options)
    successor_port = free_port()  # the worker that replaces it mid-incident: scraped from the start
    prometheus([f"127.0.0.1:{worker.port}", f"127.0.0.1:{successor_port}"])
    workers = [worker]
    began = time.time()
    live = subprocess.Popen(
        [sys.executable, "-m", "frictionwatch", "generate", "--output", "kafka", "--bootstrap-servers",
         broker.bootstrap_servers, "--time", "wall", "--start", str(began - HISTORY), "--rate", RATE, "--flat",
         "--duration", f"{HISTORY + CONTROL_SECONDS + OUTAGE_SECONDS + TRAFFIC_AFTER}s", "--scenario", str(scenario),
         "--batch", "20", "--seed", "6", "--quiet"],
    )  # fmt: skip
    onset = began + CONTROL_SECONDS
    try:
        wait_until(lambda: time.time() >= onset - 5, CONTROL_SECONDS + 10, "the end of the control period", poll=1)

        # the history's windows and the first live one (a busy machine may still be working through them)
        def closed() -> float:
            return total(worker.samples(), "frictionwatch_windows_final_total", source="journey.clicks")

        wait_until(lambda: closed() > HISTORY / 30, 900, "the worker to close the history's windows and a live one")
        # The half hour of history arrives at once: a real backlog, which the pipeline-health rules
        # (window close delay, lag) rightly report. No friction alert may fire on normal traffic.
        before = [alert for at, alert in receiver.alerts if at < onset]
        friction = [
            f"{at - began:.0f} s after the start: {a['labels']} {a['annotations'].get('description')}"
            f" (started {a['annotations'].get('started')})"
            for at, a in receiver.alerts
            if at < onset and not a["labels"]["alertname"].startswith("Frictionwatch")
        ]
        assert friction == [], "friction alerts during normal traffic:\n" + "\n".join(friction)
        # (the successor's target is down until it starts: Prometheus rightly reports that worker down)
        successor_down = {"alertname": "FrictionwatchWorkerDown", "instance": f"127.0.0.1:{successor_port}"}
        reported = {a["labels"]["alertname"] for a in before if successor_down.items() - a["labels"].items()}
        pipeline = reported - {"JourneyStepFlowDrop"}
        assert pipeline <= {"FrictionwatchWindowCloseDelayHigh", "FrictionwatchLagGrowing"}, pipeline

        def arrived(
            source: str, status: str = "firing", metrics: tuple[str, ...] = WINDOW_FLOW
        ) -> list[tuple[float, dict[str, Any]]]:
            return [
                (at, alert) for at, alert in receiver.alerts
                if alert["status"] == status and alert["labels"].get("source") == source
                and alert["labels"].get("step") == "payment"
                and (source == "rule" or alert["labels"].get("metric") in metrics)
            ]  # fmt: skip

        def heard() -> str:
            """What reached the receiver since the onset: for a failed wait."""
            return "; ".join(
                f"{at - onset:+.0f} s {a['status']} {a['labels']['alertname']} {a['labels'].get('source')}"
                f" {a['labels'].get('step', a['labels'].get('queue', ''))} {a['labels'].get('metric', '')}"
                for at, a in receiver.alerts if at >= onset
            )  # fmt: skip

        def wait_for(condition: Callable[[], Any], what: str) -> Any:
            # generous deadlines: a busy machine leaves the worker behind the live traffic
            try:
                return wait_until(condition, 600, what)
            except AssertionError as error:
                raise AssertionError(f"{error}\nreceived since the onset: {heard()}") from None

        evidence = wait_for(lambda: arrived("detector", metrics=EVIDENCE), "the evidence path's alert")[0]
        immediate = wait_for(lambda: arrived("detector"), "the window detectors' alert")[0]

        # A deploy mid-incident: a second worker joins, then the first stops; the second carries on.
        successor = Worker(broker.bootstrap_servers, tmp_path, *worker_options, name="successor", port=successor_port)
        workers.append(successor)
        wait_until(
            lambda: total(successor.samples(), "frictionwatch_events_received_total") > 0, 600,
            "the second worker to take over partitions",
        )  # fmt: skip
        assert worker.stop() == 0, worker.tail()
        handed_over = time.time()
        print(f"\nthe first worker stopped {handed_over - onset:.0f} s after the onset")
        rule = wait_for(lambda: arrived("rule"), "the Prometheus rule's alert")[0]
        print(f"\nonset to alert at the receiver: evidence path {evidence[0] - onset:.0f} s"
              f" ({evidence[1]['labels']['metric']}), window detectors {immediate[0] - onset:.0f} s,"
              f" rule path {rule[0] - onset:.0f} s")  # fmt: skip
        # Alertmanager sends a group's first alert after 1 s and the alerts that join it a minute
        # later: arriving no later, the evidence path's alert was posted first (or within that second)
        assert evidence[0] <= immediate[0], heard()
        assert evidence[1]["labels"]["severity"] in ("warning", "critical")
        for name in ("summary", "description", "started", "examples", "runbook_url"):
            assert evidence[1]["annotations"].get(name), f"annotation {name} missing: {evidence[1]['annotations']}"
        labels, annotations = immediate[1]["labels"], immediate[1]["annotations"]
        assert labels["journey"] == "purchase" and labels["stage"] == "purchase"
        assert labels["severity"] in ("warning", "critical") and labels["channel"] in ("web", "app", "kiosk", "all")
        assert labels["metric"] in ("early_flow_ratio", "flow_ratio")
        for name in ("summary", "description", "runbook_url", "dashboard_url", "started", "band", "volume"):
            assert annotations.get(name), f"annotation {name} missing: {annotations}"
        assert annotations["runbook_url"].endswith("/JourneyStepFlowDrop.md")
        assert 1 <= len(annotations["examples"].split(", ")) <= 5, annotations  # "all": its channels' sessions
        assert rule[1]["annotations"]["runbook_url"].endswith("/JourneyStepFlowDrop.md")

        def firing() -> list[dict[str, str]]:
            """The payment step's paging alerts (one per label set) whose last notification since the
            onset says firing. A severity change resolves an alert and fires it again under the new label,
            so the first "resolved" of a metric can come during the outage: only the last one tells.
            Late echoes (severity info) page nobody and are left out."""
            last: dict[tuple[tuple[str, str], ...], str] = {}
            for at, alert in receiver.alerts:
                labels = alert["labels"]
                if at >= onset and labels.get("step") == "payment" and labels.get("severity") != "info":
                    last[tuple(sorted(alert["labels"].items()))] = alert["status"]
            return [dict(labels) for labels, status in last.items() if status == "firing"]

        def all_resolved() -> bool:
            paths = (
                arrived("detector", "resolved"),
                arrived("detector", "resolved", EVIDENCE),
                arrived("rule", "resolved"),
            )
            return all(paths) and not firing()

        try:  # the incident resolves as a whole once every metric of the step has been normal for the hold time
            wait_until(all_resolved, 900, "every alert of the payment step to resolve")
        except AssertionError as error:
            raise AssertionError(f"{error}\nstill firing: {firing()}\nreceived since the onset: {heard()}") from None
        end = onset + OUTAGE_SECONDS
        last_resolved = {
            "window detectors": arrived("detector", "resolved")[-1][0] - end,
            "evidence path": arrived("detector", "resolved", EVIDENCE)[-1][0] - end,
            "rule path": arrived("rule", "resolved")[-1][0] - end,
        }
        print("end of the outage to the last resolved at the receiver: "
              + ", ".join(f"{path} {seconds:.0f} s" for path, seconds in last_resolved.items()))  # fmt: skip
        # none may end while the outage still goes on (the hold time keeps an incident open)
        assert min(last_resolved.values()) >= 0, heard()
        # one onset per alert, before the hand-over and after it: the incident was carried on, not opened again
        onsets: dict[tuple[tuple[str, str], ...], set[str]] = {}
        for at, alert in receiver.alerts:
            labels = alert["labels"]
            paging = labels.get("severity") != "info"  # late echoes are incidents of their own
            if at >= onset and labels.get("step") == "payment" and labels.get("source") == "detector" and paging:
                onsets.setdefault(tuple(sorted(labels.items())), set()).add(alert["annotations"]["started"])
        carried_on = [a for at, a in receiver.alerts if at > handed_over and a["labels"].get("step") == "payment"]
        assert any(alert["labels"].get("source") == "detector" for alert in carried_on), heard()
        reopened = {
            "{channel} {metric}".format_map(dict(labels)): sorted(starts)
            for labels, starts in onsets.items()
            if len(starts) > 1
        }
        assert reopened == {}, f"alerts sent again with a later onset after the hand-over: {reopened}\n{heard()}"
    finally:
        live.terminate()
        live.wait(30)
        exit_codes = stop_all(workers)
    assert exit_codes == [0] * len(workers), [each.tail() for each in workers]
