"""frictionwatch backtest: a generated day with injected incidents, replayed through the
worker's metric and detector code, and one NAB series.

The acceptance bar of the issue: "A backtest over a generated day with several injected
incidents finds every incident with at most one false alert per simulated day, in CI".
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import pytest

from frictionwatch.backtest import add_backtest_arguments, run_backtest_command
from frictionwatch.backtest.replay import BacktestInputError, replay_events
from frictionwatch.backtest.scoring import load_incidents
from frictionwatch.detectors.evidence import EVIDENCE_METRICS
from frictionwatch.generator import GeneratorConfig, JsonLinesSink, run, write_ground_truth
from frictionwatch.journeymap import load_journey_map
from frictionwatch.settings import Settings

START = 1_795_478_400.0  # 2026-11-24T00:00:00Z, a multiple of 60
SCENARIO = """\
version: 1
incidents:
  - name: payment_outage
    kind: step_outage
    journey: purchase
    step: payment
    start: 10h
    duration: 30m
  - name: phone_billing_understaffed
    kind: understaffed
    channel: phone
    queue: billing
    start: 14h
    duration: 45m
  - name: checkout_errors
    kind: error_burst
    journey: purchase
    step: checkout
    start: 19h
    duration: 20m
"""
NAB_DIR = Path(os.environ.get("FRICTIONWATCH_NAB_DIR", Path(__file__).resolve().parent / "data" / "nab"))


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_backtest_arguments(parser)
    return parser.parse_args(argv)


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One generated day, backtested once with the shipped journey map's detector settings."""
    root = tmp_path_factory.mktemp("backtest")
    scenario = root / "scenario.yml"
    scenario.write_text(SCENARIO)
    events, truth, out = root / "day.jsonl", root / "truth.jsonl", root / "out"
    config = GeneratorConfig(seed=11, rate=30.0, duration=86400.0, start=START, scenario=scenario, malformed_rate=0.01)
    summary = run(load_journey_map(), config, JsonLinesSink(events))
    write_ground_truth(summary.incidents, truth)
    args = parse(str(events), "--incidents", str(truth), "--out", str(out), "--max-plots", "6", "--quiet")
    code = run_backtest_command(args, Settings())
    doc = json.loads((out / "summary.json").read_text())
    return {"code": code, "summary": doc, "out": out, "events": events, "truth": truth}


def test_summary_has_the_documented_fields(day: dict[str, Any]) -> None:
    assert day["code"] == 0
    doc = day["summary"]
    assert doc["mode"] == "events"
    assert {"events", "malformed", "late_amounts", "first_ts", "last_ts"} <= set(doc["replay"])
    assert sum(doc["replay"]["malformed"].values()) > 0  # 1% malformed records were skipped and counted
    totals = doc["totals"]
    for key in ("incidents", "detected", "alerts", "true_alerts", "false_alerts", "false_alerts_per_day",
                "alerts_after_end", "precision", "recall", "simulated_days", "grace_seconds", "false_pages",
                "false_pages_per_day"):  # fmt: skip
        assert key in totals
    assert totals["incidents"] == 3
    assert abs(totals["simulated_days"] - 1.0) < 0.01
    names = [incident["name"] for incident in doc["incidents"]]
    assert names == ["payment_outage", "phone_billing_understaffed", "checkout_errors"]
    for incident in doc["incidents"]:
        assert {"kind", "where", "start", "end", "detected", "delay_seconds", "caught_by", "metric"} <= set(incident)
    for alert in doc["alerts"]:
        assert {"series", "touchpoint", "metric", "start", "end", "windows", "incident", "after_end"} <= set(alert)
        assert alert["sent_as"] in ("info", "warning", "critical")
    assert totals["false_pages"] <= totals["false_alerts"]


def test_plots_are_png_files(day: dict[str, Any]) -> None:
    plots = day["summary"]["plots"]
    assert 1 <= len(plots) <= 6
    for plot in plots:
        assert Path(plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert any(Path(plot).name.startswith("purchase_payment") for plot in plots)  # incident touchpoints first


def test_finds_every_incident_with_at_most_one_false_alert_per_day(day: dict[str, Any]) -> None:
    doc = day["summary"]
    missed = [incident["name"] for incident in doc["incidents"] if not incident["detected"]]
    noisy = list(doc["false_alerts_by_series"].items())[:5]
    assert not missed, f"incidents missed: {missed}"
    assert doc["totals"]["false_alerts_per_day"] <= 1.0, f"false alerts per day; noisiest series: {noisy}"


def test_the_evidence_path_pages_beside_the_window_detectors_as_in_the_worker(day: dict[str, Any]) -> None:
    """The backtest runs both of the worker's paths; --no-evidence the window detectors alone.

    The evidence path only adds alerts, so each incident is found no later than by the window
    detectors alone, and the window detectors' alerts are the same in both runs (only the
    severity they are sent with may differ: the tracker groups both paths' alerts)."""
    out = day["out"].parent / "windows-only"
    args = parse(str(day["events"]), "--incidents", str(day["truth"]), "--out", str(out), "--no-plots", "--quiet",
                 "--no-evidence")  # fmt: skip
    assert run_backtest_command(args, Settings()) == 0
    alone, both = json.loads((out / "summary.json").read_text()), day["summary"]
    assert both["options"]["evidence_path"] is True and alone["options"]["evidence_path"] is False
    assert {alert["path"] for alert in alone["alerts"]} == {"windows"}
    evidence = [alert for alert in both["alerts"] if alert["path"] == "evidence"]
    assert evidence, "the evidence path raised no alert on a day with a payment outage"
    assert {alert["metric"] for alert in evidence} <= set(EVIDENCE_METRICS)
    detected = ("series", "start", "end", "windows", "peak_score", "severity")  # not sent_as: one tracker sees both
    assert [[a[k] for k in detected] for a in both["alerts"] if a["path"] == "windows"] == [
        [a[k] for k in detected] for a in alone["alerts"]
    ]
    for with_evidence, windows_only in zip(both["incidents"], alone["incidents"], strict=True):
        if windows_only["detected"]:
            assert with_evidence["delay_seconds"] <= windows_only["delay_seconds"], with_evidence["name"]
    # the payment outage: the evidence path counts stalled visits as they happen, not at window ends
    payment = next(incident for incident in both["incidents"] if incident["name"] == "payment_outage")
    assert payment["path"] == "evidence", payment


def test_bad_input_names_file_and_line(tmp_path: Path) -> None:
    events = tmp_path / "bad.jsonl"
    events.write_text('{"topic": "clicks", "key": "s", "value": {"schema": 1}}\nnot json\n')
    with pytest.raises(BacktestInputError, match=r"bad\.jsonl:2: not a JSON line"):
        replay_events(events, load_journey_map())
    truth = tmp_path / "truth.jsonl"
    truth.write_text('{"incident": "x", "kind": "step_outage", "metric": "errors", "start": 1, "end": "soon"}\n')
    with pytest.raises(BacktestInputError, match=r"truth\.jsonl:1: 'end' must be epoch seconds"):
        load_incidents(truth)
    assert run_backtest_command(parse(str(events), "--out", str(tmp_path)), Settings()) == 2
    assert run_backtest_command(parse("--out", str(tmp_path)), Settings()) == 2  # no input: usage error


def test_nab_mode_scores_one_real_file(tmp_path: Path) -> None:
    series = NAB_DIR / "data" / "realKnownCause" / "ec2_request_latency_system_failure.csv"
    labels = NAB_DIR / "labels" / "combined_windows.json"
    if not series.is_file() or not labels.is_file():
        pytest.fail(f"NAB corpus not found at {NAB_DIR}; set FRICTIONWATCH_NAB_DIR", pytrace=False)
    args = parse("--nab", str(series), "--labels", str(labels), "--out", str(tmp_path), "--quiet")
    assert run_backtest_command(args, Settings()) == 0
    doc = json.loads((tmp_path / "summary.json").read_text())
    assert doc["mode"] == "nab" and doc["rows"] == 4032 and doc["label_windows"] == 3
    assert set(doc["nab"]) == {"standard", "reward_low_FP_rate", "reward_low_FN_rate"}
    assert -100.0 <= doc["nab"]["standard"]["normalized"] <= 100.0
    assert 0 <= doc["label_windows_detected"] <= doc["label_windows_scored"] <= 3
    assert Path(doc["plots"][0]).read_bytes()[:4] == b"\x89PNG"
