"""The Grafana dashboards: the committed JSON is what the code makes, it is a valid dashboard
for the Grafana pinned in docker-compose.yml, the links alerts and runbooks carry open a real
dashboard with real filters, and every query is valid PromQL on series the workers export.

Whether every query returns data from a real worker is tests/test_integration_dashboards.py.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import yaml
from grafana_foundation_sdk.builders.dashboard import Dashboard as DashboardBuilder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models.dashboard import Dashboard as DashboardModel
from prometheus_client import CollectorRegistry
from test_alert_rules import exported_series, metric_names, tool

from frictionwatch.alerts.sender import AlertSender
from frictionwatch.grafana.__main__ import main as generate
from frictionwatch.grafana.catalogue import DASHBOARDS
from frictionwatch.grafana.kit import ALL
from frictionwatch.grafana.render import as_json

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "grafana" / "dashboards"
PROVISIONING = ROOT / "grafana" / "provisioning"
#: uid -> slug: alerts, runbooks and settings already link /d/<uid>/<slug>.
LINKED = {
    "frictionwatch-journeys": "journey-friction-overview",
    "frictionwatch-contact-centre": "contact-centre",
    "frictionwatch-detectors": "detector-tuning",
    "frictionwatch-feedback": "feedback",
    "frictionwatch-pipeline": "pipeline-health",
}
#: core panel plugins of Grafana 11 the dashboards may use
PANEL_TYPES = {"row", "timeseries", "stat", "table", "bargauge", "state-timeline", "text"}
#: Grafana's built-in variables, and what a test puts in their place
BUILT_IN = {"__rate_interval": "1m", "__interval": "15s", "__range": "15m"}
#: series Prometheus makes itself, not the workers
PROMETHEUS_SERIES = {"up", "ALERTS"}
#: where the rest of the repository links dashboards
LINKING_FILES = [
    *sorted((ROOT / "alerts").rglob("*.yml")), ROOT / "alerts" / "immediate.py", ROOT / "frictionwatch" / "settings.py",
    *sorted((ROOT / "docs").rglob("*.md")), ROOT / "README.md",
]  # fmt: skip


def committed() -> dict[str, dict[str, Any]]:
    return {path.name: json.loads(path.read_text()) for path in sorted(COMMITTED.glob("*.json"))}


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def variables(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {variable["name"]: variable for variable in dashboard["templating"]["list"]}


def queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str, bool]]:
    """(where, PromQL, instant) of every panel query and annotation query of the dashboard."""
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield f"{dashboard['uid']} panel {panel['title']!r} {target['refId']}", target["expr"], target["instant"]
    for annotation in dashboard["annotations"]["list"]:
        if "expr" in annotation:
            yield f"{dashboard['uid']} annotation {annotation['name']!r}", annotation["expr"], False


def variable_selector(query: str) -> tuple[str, str]:
    """``label_values(selector, label)`` -> (selector, label)."""
    found = re.fullmatch(r"label_values\((.+), (\w+)\)", query)
    assert found, f"not a label_values(selector, label) query: {query}"
    return found.group(1), found.group(2)


def concrete(expr: str, value: str = ALL) -> str:
    """The PromQL Grafana sends: built-in variables replaced, filters set to ``value`` (All)."""
    for name, replacement in BUILT_IN.items():
        expr = expr.replace(f"${name}", replacement)
    return re.sub(r"\$\{?(\w+)\}?", value, expr)


def every_query() -> list[tuple[str, str, bool]]:
    """Every query of every committed dashboard, variables' selectors included, made concrete."""
    found = []
    for dashboard in committed().values():
        found += [(where, concrete(expr), instant) for where, expr, instant in queries(dashboard)]
        for name, variable in variables(dashboard).items():
            selector, label = variable_selector(variable["query"])
            found.append((f"{dashboard['uid']} variable {name}", f"group by ({label}) ({concrete(selector)})", True))
    return found


def slug(title: str) -> str:
    """Grafana's slug of a dashboard title (lower case, runs of other characters as one dash)."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


# -- (a) the JSON is the code's ---------------------------------------------------------------


def test_the_committed_json_is_what_the_code_makes() -> None:
    assert sorted(path.name for path in COMMITTED.glob("*.json")) == sorted(DASHBOARDS)
    for name, build in DASHBOARDS.items():
        assert (COMMITTED / name).read_text() == as_json(build()), (
            f"grafana/dashboards/{name} is not what the code makes: run python -m frictionwatch.grafana"
        )


def test_the_command_writes_and_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert generate(["--check"]) == 0
    assert generate(["--check", "--out", str(tmp_path)]) == 1
    assert generate(["--out", str(tmp_path)]) == 0
    assert generate(["--check", "--out", str(tmp_path)]) == 0
    assert {path.name for path in tmp_path.iterdir()} == set(DASHBOARDS)
    assert "differs from the code" in capsys.readouterr().err


def test_the_same_code_makes_the_same_bytes() -> None:
    for build in DASHBOARDS.values():
        assert as_json(build()) == as_json(build())


# -- (b) valid for the pinned Grafana ---------------------------------------------------------


def test_the_sdk_is_built_for_the_grafana_that_docker_compose_runs() -> None:
    image = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["grafana"]["image"]
    grafana = image.rsplit(":", 1)[1]
    sdk = version("grafana-foundation-sdk").split("!")[-1]
    assert grafana.split(".")[:2] == sdk.split(".")[:2], (image, sdk)
    assert re.fullmatch(r"\d+\.\d+\.\d+", grafana), f"pin an exact Grafana version, not {image}"


def test_every_dashboard_has_its_uid_slug_and_schema_version() -> None:
    schema_version = DashboardBuilder("x").build().schema_version
    by_uid = {dashboard["uid"]: (name, dashboard) for name, dashboard in committed().items()}
    assert set(by_uid) == set(LINKED)
    for uid, (name, dashboard) in by_uid.items():
        assert slug(dashboard["title"]) == LINKED[uid] and name == f"{LINKED[uid]}.json"
        assert dashboard["schemaVersion"] == schema_version
        assert dashboard["description"] and "frictionwatch" in dashboard["tags"]
        assert dashboard["time"]["from"].startswith("now-") and dashboard["refresh"]


def test_the_sdk_reads_every_dashboard_back() -> None:
    register_default_plugins()
    for name, dashboard in committed().items():
        model = DashboardModel.from_json(dashboard)
        assert model.uid == dashboard["uid"], name
        assert len(model.panels or []) == len(dashboard["panels"]), name


def provisioned_datasource() -> dict[str, Any]:
    config = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    (source,) = config["datasources"]
    return dict(source)


def test_panels_are_complete_and_fit_the_grid() -> None:
    datasource = {"type": "prometheus", "uid": provisioned_datasource()["uid"]}
    for name, dashboard in committed().items():
        ids = [panel["id"] for panel in panels(dashboard)]
        assert len(ids) == len(set(ids)) and all(isinstance(i, int) and i > 0 for i in ids), name
        cells: set[tuple[int, int]] = set()
        for panel in panels(dashboard):
            where = f"{name} panel {panel.get('title')!r}"
            assert panel["type"] in PANEL_TYPES, where
            grid = panel["gridPos"]
            assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24 and grid["h"] > 0, where
            covered = {
                (x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])
            }
            assert not covered & cells, f"{where} overlaps another panel"
            cells |= covered
            assert panel["title"], where
            if panel["type"] == "row":
                continue
            assert len(panel.get("description", "")) >= 40, f"{where}: describe it for its readers"
            if panel["type"] == "text":
                assert panel["options"]["content"].strip(), where
                continue
            assert panel["datasource"] == datasource, where
            assert panel["fieldConfig"]["defaults"].get("unit"), f"{where} has no unit"
            assert panel["targets"], f"{where} has no query"
            ref_ids = [target["refId"] for target in panel["targets"]]
            assert len(set(ref_ids)) == len(ref_ids), where
            for target in panel["targets"]:
                assert target["datasource"] == datasource and target["expr"].strip(), where
            steps = panel["fieldConfig"]["defaults"].get("thresholds", {}).get("steps", [])
            if steps:
                values = [step["value"] for step in steps]
                assert values[0] is None and values[1:] == sorted(values[1:]), where


def test_annotations_query_the_provisioned_prometheus() -> None:
    uid = provisioned_datasource()["uid"]
    for name, dashboard in committed().items():
        for annotation in dashboard["annotations"]["list"]:
            if annotation.get("builtIn") == 1:
                continue
            assert annotation["datasource"] == {"type": "prometheus", "uid": uid}, name
            assert annotation["expr"] and annotation["titleFormat"] and annotation["enable"], name
    overview = committed()["journey-friction-overview.json"]
    assert any("frictionwatch_detector_anomaly" in a.get("expr", "") for a in overview["annotations"]["list"])


def test_filters_are_valid_and_every_filter_a_query_uses_exists() -> None:
    uid = provisioned_datasource()["uid"]
    for name, dashboard in committed().items():
        defined = variables(dashboard)
        assert len(defined) == len(dashboard["templating"]["list"]), f"{name}: duplicate variable names"
        for variable_name, variable in defined.items():
            assert variable["type"] == "query" and variable["datasource"]["uid"] == uid, variable_name
            assert variable["includeAll"] and variable["allValue"] == ALL and variable["label"], variable_name
            variable_selector(variable["query"])
        used = {
            match
            for _, expr, _ in queries(dashboard)
            for match in re.findall(r"\$\{?(\w+)\}?", expr)
            if match not in BUILT_IN
        }
        used |= {match for v in defined.values() for match in re.findall(r"\$(\w+)", v["query"])}
        assert used <= set(defined), f"{name} uses undefined filters {used - set(defined)}"
    for uid_, filters in (
        ("frictionwatch-journeys", {"journey", "step", "channel"}),
        ("frictionwatch-contact-centre", {"channel", "queue"}),
        ("frictionwatch-feedback", {"journey", "channel", "queue"}),
        ("frictionwatch-pipeline", {"topic", "instance"}),
    ):
        (dashboard,) = [d for d in committed().values() if d["uid"] == uid_]
        assert filters <= set(variables(dashboard)), uid_


def test_every_dashboard_link_in_the_repository_opens_a_dashboard_with_its_filters() -> None:
    by_uid = {dashboard["uid"]: dashboard for dashboard in committed().values()}
    links = [
        (path.relative_to(ROOT), found)
        for path in LINKING_FILES
        for found in re.finditer(r"/d/([\w-]+)/([\w-]+)(\?[^\"'\s)]*)?", path.read_text())
    ]
    assert len(links) >= 10, "expected the alert rules' dashboard links"
    for path, found in links:
        uid, link_slug, parameters = found.group(1), found.group(2), found.group(3) or ""
        assert uid in by_uid, f"{path}: {found.group(0)} names no dashboard"
        assert link_slug == LINKED[uid], f"{path}: {found.group(0)} has the wrong slug"
        filters = set(re.findall(r"var-(\w+)=", parameters))
        assert filters <= set(variables(by_uid[uid])), f"{path}: {found.group(0)} sets unknown filters"


# -- every query is valid PromQL on exported series ------------------------------------------


def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    rules = {
        "groups": [
            {
                "name": "dashboards",
                "rules": [
                    {"record": f"dashboard:query_{number}", "expr": expr}
                    for number, (_, expr, _) in enumerate(every_query())
                ],
            }
        ]
    }
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump(rules))
    result = subprocess.run(
        [tool("promtool"), "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def worker_series() -> set[str]:
    registry = CollectorRegistry()
    AlertSender(["http://alertmanager:9093"], registry)
    names = {family.name + "_total" for family in registry.collect() if family.type == "counter"}
    return exported_series() | names | {family.name for family in registry.collect()}


def test_every_query_names_series_the_workers_export() -> None:
    known = worker_series() | PROMETHEUS_SERIES
    used = {(where, name) for where, expr, _ in every_query() for name in metric_names(expr)}
    assert len(used) > 50
    unknown = sorted(f"{where}: {name}" for where, name in used if name not in known)
    assert not unknown, "dashboards query series nobody exports:\n" + "\n".join(unknown)


def test_concrete_replaces_filters_and_built_in_variables() -> None:
    expr = 'sum(rate(x{a=~"$journey", b=~"${queue}"}[$__rate_interval])) / y[$__range]'
    assert concrete(expr) == 'sum(rate(x{a=~".*", b=~".*"}[1m])) / y[15m]'
