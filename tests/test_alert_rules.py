"""The alerting rules, their unit tests, the Alertmanager config and the runbooks hang together.

Runs promtool and amtool (Debian packages prometheus and prometheus-alertmanager; scripts/test
installs them). A missing tool is a failure, not a skip: alerts nobody checked are worse than none.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from frictionwatch.alerts.immediate import ALERT_NAMES, AlertTracker
from frictionwatch.detectors.bank import Finding
from frictionwatch.detectors.base import Verdict
from frictionwatch.journeymap import load_journey_map
from frictionwatch.streams.exposition import FrictionMetrics
from frictionwatch.streams.metrics import IngestMetrics

ROOT = Path(__file__).resolve().parent.parent
RULES = sorted((ROOT / "alerts" / "rules").glob("*.yml"))
RULE_TESTS = sorted((ROOT / "alerts" / "rules" / "tests").glob("*.yml"))
ALERTMANAGER = ROOT / "alerts" / "alertmanager.yml"
RUNBOOKS = ROOT / "docs" / "runbooks"
RUNBOOK_BASE = "https://github.com/frictionwatch/frictionwatch/blob/main/docs/runbooks/"
#: alerts the workers push to Alertmanager themselves (source="detector"): they need runbooks too
DETECTOR_ALERTS = (
    "JourneyStepFlowDrop", "JourneyStepDropOff", "JourneyStepErrors", "ContactWaitHigh",
    "ContactAbandonmentHigh", "ContactServiceLevelLow", "FeedbackScoreDrop",
)  # fmt: skip
#: series Prometheus makes itself, not the workers
PROMETHEUS_SERIES = {"up"}
SEVERITIES = {"critical", "warning", "info"}


def tool(name: str) -> str:
    path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if path is None:
        pytest.fail(
            f"{name} is not installed: run scripts/test (it installs the Debian packages prometheus and "
            f"prometheus-alertmanager), or apt-get install prometheus prometheus-alertmanager",
            pytrace=False,
        )
    return path


def run(*command: str) -> str:
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    output = f"$ {' '.join(command)}\n{result.stdout}{result.stderr}"
    assert result.returncode == 0, output
    return output


def alert_rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for path in RULES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            rules.extend(rule | {"file": path.name} for rule in group["rules"] if "alert" in rule)
    return rules


def recorded_names() -> set[str]:
    return {
        rule["record"]
        for path in RULES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "record" in rule
    }


def test_there_are_rules_and_tests() -> None:
    assert {path.name for path in RULES} >= {"friction.yml", "pipeline.yml"}
    assert RULE_TESTS, "no promtool tests in alerts/rules/tests"


def test_promtool_check_rules() -> None:
    run(tool("promtool"), "check", "rules", *(str(path.relative_to(ROOT)) for path in RULES))


def test_promtool_test_rules() -> None:
    run(tool("promtool"), "test", "rules", *(str(path.relative_to(ROOT)) for path in RULE_TESTS))


def test_amtool_check_config() -> None:
    run(tool("amtool"), "check-config", str(ALERTMANAGER.relative_to(ROOT)))


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        ({"alertname": "FrictionwatchWorkerDown", "severity": "critical", "source": "rule"}, "oncall"),
        ({"alertname": "FrictionwatchLagGrowing", "severity": "warning", "source": "rule"}, "ops"),
        ({"alertname": "JourneyStepFlowDrop", "severity": "critical", "source": "detector", "journey": "purchase"},
         "product-teams,oncall"),
        ({"alertname": "ContactWaitHigh", "severity": "warning", "source": "detector", "channel": "phone"},
         "product-teams,ops"),
        ({"alertname": "FeedbackScoreDrop", "severity": "info", "source": "detector", "journey": "purchase"},
         "product-teams"),
        ({"alertname": "JourneyStepErrors", "source": "detector", "journey": "purchase"}, "product-teams"),
        # a late echo of an incident that has resolved: the worker sends it as info, it pages no one
        ({"alertname": "JourneyStepDropOff", "severity": "info", "source": "detector", "journey": "purchase",
          "step": "payment", "channel": "web", "metric": "dropoff_ratio"}, "product-teams"),
        ({"alertname": "SomethingElse"}, "ops"),
    ],
)  # fmt: skip
def test_alertmanager_routes(labels: dict[str, str], receivers: str) -> None:
    output = run(
        tool("amtool"), "config", "routes", "test", f"--config.file={ALERTMANAGER.relative_to(ROOT)}",
        f"--verify.receivers={receivers}", *(f"{key}={value}" for key, value in labels.items()),
    )  # fmt: skip
    assert receivers in output


def seconds(duration: str) -> float:
    """An Alertmanager duration such as 1s, 30s, 5m, 1h (one unit)."""
    match = re.fullmatch(r"(\d+)(ms|s|m|h)", duration)
    assert match, f"unexpected duration {duration!r}"
    return int(match[1]) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[match[2]]


def test_critical_and_warning_alerts_wait_at_most_a_few_seconds_for_their_group() -> None:
    """group_wait is added to every alert's delay (detector fired -> webhook received)."""
    routes = yaml.safe_load(ALERTMANAGER.read_text())["route"]["routes"]
    for severity in ("critical", "warning"):
        (route,) = [route for route in routes if route.get("matchers") == [f'severity="{severity}"']]
        assert seconds(route["group_wait"]) <= 5, severity


def test_rule_and_detector_alerts_of_one_touchpoint_share_the_group_labels() -> None:
    """A rule's `by` labels and the worker's labels put one touchpoint's alerts in one group."""
    group_by = set(yaml.safe_load(ALERTMANAGER.read_text())["route"]["group_by"])
    assert group_by == {"journey", "step", "channel", "queue"}
    verdict = Verdict(0, 0.1, 0.4, 0.3, 0.5, 9.0, 120, True, "critical")
    detector: dict[str, set[str]] = {}
    for metric, name in ALERT_NAMES.items():
        place = (
            ("purchase", "payment", "web", "", "") if name.startswith("Journey") else ("", "", "phone", "billing", "")
        )
        (alert,) = AlertTracker().update([Finding(place, metric, verdict, 4.0)], 0, 60, {})
        detector[name] = group_by & set(alert["labels"])
    shared = [rule for rule in alert_rules() if rule["alert"] in detector]
    assert {rule["alert"] for rule in shared} >= {"JourneyStepFlowDrop", "ContactAbandonmentHigh"}
    for rule in shared:
        by = {label.strip() for labels in re.findall(r"\bby \(([^)]*)\)", rule["expr"]) for label in labels.split(",")}
        assert group_by & by == detector[rule["alert"]], f"{rule['alert']}: rule groups by {group_by & by}"


def test_every_alert_is_complete() -> None:
    problems = []
    for rule in alert_rules():
        name, labels, annotations = rule["alert"], rule.get("labels", {}), rule.get("annotations", {})
        where = f"{rule['file']}: {name}"
        if not rule.get("for"):
            problems.append(f"{where}: no for:")
        if labels.get("severity") not in SEVERITIES:
            problems.append(f"{where}: severity {labels.get('severity')!r} is not one of {sorted(SEVERITIES)}")
        if not labels.get("team"):
            problems.append(f"{where}: no team label")
        for key in ("summary", "description", "runbook_url", "dashboard_url"):
            if not annotations.get(key):
                problems.append(f"{where}: no {key} annotation")
        if annotations.get("runbook_url") != f"{RUNBOOK_BASE}{name}.md":
            problems.append(f"{where}: runbook_url should be {RUNBOOK_BASE}{name}.md")
        if not (RUNBOOKS / f"{name}.md").is_file():
            problems.append(f"{where}: docs/runbooks/{name}.md is missing")
    assert not problems, "\n".join(problems)


def test_every_alert_name_has_a_runbook_listed_in_the_index() -> None:
    names = {rule["alert"] for rule in alert_rules()} | set(DETECTOR_ALERTS)
    index = (RUNBOOKS / "README.md").read_text()
    missing = sorted(name for name in names if not (RUNBOOKS / f"{name}.md").is_file())
    unlisted = sorted(name for name in names if f"({name}.md)" not in index)
    assert not missing, f"runbooks missing: {missing}"
    assert not unlisted, f"runbooks not linked from docs/runbooks/README.md: {unlisted}"


def fired_in_tests() -> set[str]:
    """Alert names some promtool test expects to fire (a non-empty exp_alerts)."""
    fired: set[str] = set()
    for path in RULE_TESTS:
        for test in yaml.safe_load(path.read_text()).get("tests", []):
            for case in test.get("alert_rule_test", []):
                if case.get("exp_alerts"):
                    fired.add(case["alertname"])
    return fired


def quiet_in_tests() -> set[str]:
    """Alert names some promtool test expects not to fire (an empty exp_alerts)."""
    return {
        case["alertname"]
        for path in RULE_TESTS
        for test in yaml.safe_load(path.read_text()).get("tests", [])
        for case in test.get("alert_rule_test", [])
        if not case.get("exp_alerts")
    }


def test_every_alert_has_a_test_that_fires_it_and_one_that_does_not() -> None:
    names = {rule["alert"] for rule in alert_rules()}
    assert not names - fired_in_tests(), f"no promtool test fires: {sorted(names - fired_in_tests())}"
    assert not names - quiet_in_tests(), f"no promtool test expects silence: {sorted(names - quiet_in_tests())}"


def exported_series() -> set[str]:
    """Every series name the worker exports, as Prometheus stores it."""
    registry = CollectorRegistry()
    FrictionMetrics(registry, load_journey_map())
    IngestMetrics(registry, ["journey.clicks", "journey.contacts", "journey.feedback"])
    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created")}
    names: set[str] = set()
    for family in registry.collect():
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names


PROMQL_WORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool",
    "inf", "nan", "atan2",
}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression selects (enough PromQL for our rules)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)  # strings
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges and subqueries
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)  # label lists
    expr = re.sub(r"\boffset\s+-?\w+", "", expr)
    names: set[str] = set()
    for match in re.finditer(r"(?<![\w.])([a-zA-Z_:][\w:]*)(\s*\()?", expr):
        word, call = match.group(1), match.group(2)
        if not call and word not in PROMQL_WORDS:
            names.add(word)
    return names


def test_metric_names_parser() -> None:
    expr = (
        'sum by (le, channel) (rate(a_bucket{x="y z"}[5m] offset 1w)) > 0.5 and on (channel) '
        'histogram_quantile(0.9, b_total) or up{job="frictionwatch"} == 0'
    )
    assert metric_names(expr) == {"a_bucket", "b_total", "up"}


def test_rules_use_only_exported_metrics() -> None:
    known = exported_series() | PROMETHEUS_SERIES | recorded_names()
    used = {(rule["alert"], name) for rule in alert_rules() for name in metric_names(rule["expr"])}
    assert used, "no metric names found in the rules"
    unknown = sorted(f"{alert}: {name}" for alert, name in used if name not in known)
    assert not unknown, "rules use series the workers don't export:\n" + "\n".join(unknown)
