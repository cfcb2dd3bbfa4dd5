"""What every frictionwatch dashboard shares: the Prometheus data source, queries, filters
(template variables), thresholds, the anomaly annotation and the dashboard frame."""

from __future__ import annotations

from typing import Final

from grafana_foundation_sdk.builders import dashboard as board
from grafana_foundation_sdk.builders import prometheus
from grafana_foundation_sdk.cog import builder as cog
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

#: uid of the Prometheus data source in grafana/provisioning/datasources/prometheus.yml.
PROMETHEUS_UID: Final = "prometheus"
#: every dashboard carries this tag; each links to the others through it.
TAG: Final = "frictionwatch"
#: what a filter set to "All" matches: every value, the empty one too (feedback on a queue
#: has journey="", feedback on a step has queue="").
ALL: Final = ".*"


def datasource() -> model.DataSourceRef:
    return model.DataSourceRef(type_val="prometheus", uid=PROMETHEUS_UID)


def query(expr: str, legend: str = "", *, instant: bool = False, table: bool = False) -> prometheus.Dataquery:
    """A PromQL query: a time series over the dashboard's range, or (``instant``) its latest value."""
    built = prometheus.Dataquery().expr(expr).datasource(datasource())
    built = built.instant() if instant else built.range()
    if legend:
        built = built.legend_format(legend)
    if table:
        built = built.format(PromQueryFormat.TABLE)
    return built


def choice(name: str, label: str, values_of: str, description: str, *, hide_empty: bool = False) -> board.QueryVariable:
    """A filter at the top of the dashboard: several values or All, listed by ``label_values(...)``."""
    variable = (
        board.QueryVariable(name)
        .label(label)
        .description(description)
        .datasource(datasource())
        .query(values_of)
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(ALL)
        .current(model.VariableOption(selected=True, text=["All"], value=["$__all"]))
    )
    return variable.regex("/.+/") if hide_empty else variable


def thresholds(base: str, *steps: tuple[float, str]) -> board.ThresholdsConfig:
    """Colours by value: ``base`` below the first step, then each step's colour from its value up."""
    levels = [model.Threshold(value=None, color=base)] + [model.Threshold(value=v, color=c) for v, c in steps]
    return board.ThresholdsConfig().mode(model.ThresholdsMode.ABSOLUTE).steps(levels)


class PrometheusAnnotation(model.AnnotationQuery):
    """An annotation query on Prometheus: a marker wherever ``expr`` has a sample.

    The SDK's model lacks the Prometheus fields (step, title and tags from labels), so they
    are added here, as Grafana's Prometheus annotation editor saves them.
    """

    def __init__(self, name: str, expr: str, title: str, tag_keys: str, colour: str) -> None:
        super().__init__(name=name, datasource=datasource(), enable=True, hide=False, icon_color=colour, expr=expr)
        self.title = title
        self.tag_keys = tag_keys

    def to_json(self) -> dict[str, object]:
        payload = super().to_json()
        payload.update(step="30s", titleFormat=self.title, tagKeys=self.tag_keys, textFormat="", useValueForTime=False)
        return payload


class Annotation(cog.Builder[model.AnnotationQuery]):
    def __init__(self, name: str, expr: str, title: str, tag_keys: str, colour: str) -> None:
        self.annotation = PrometheusAnnotation(name, expr, title, tag_keys, colour)

    def build(self) -> model.AnnotationQuery:
        return self.annotation


def built_in_annotations() -> board.AnnotationQuery:
    """Grafana's own annotations (those people add by hand), as every dashboard has them."""
    return (
        board.AnnotationQuery()
        .name("Annotations & Alerts")
        .datasource(model.DataSourceRef(type_val="grafana", uid="-- Grafana --"))
        .enable(True)
        .hide(True)
        .icon_color("rgba(0, 211, 255, 1)")
        .type("dashboard")
        .built_in(1)
    )


def frame(uid: str, title: str, description: str, *, refresh: str = "30s", hours: int = 3) -> board.Dashboard:
    """A dashboard with frictionwatch's uid, tag, time range, refresh and links to the others."""
    return (
        board.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags([TAG])
        .timezone("browser")
        .time(f"now-{hours}h", "now")
        .refresh(refresh)
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .readonly()
        .annotation(built_in_annotations())
        .link(
            board.DashboardLink("frictionwatch")
            .type(model.DashboardLinkType.DASHBOARDS)
            .tags([TAG])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
    )
