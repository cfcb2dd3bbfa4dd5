"""Panel shapes the dashboards use, each with a title, a description, a unit and its queries."""

from __future__ import annotations

from grafana_foundation_sdk.builders import bargauge, common, prometheus, stat, statetimeline, table, text, timeseries
from grafana_foundation_sdk.builders import dashboard as board
from grafana_foundation_sdk.cog import builder as cog
from grafana_foundation_sdk.models import common as options
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.text import TextMode

from frictionwatch.grafana.kit import datasource

#: any panel builder (time series, stat, table, ...), as a dashboard or row takes it.
PanelBuilder = cog.Builder[model.Panel]


def time_series(
    title: str,
    description: str,
    unit: str,
    *queries: prometheus.Dataquery,
    span: int = 12,
    height: int = 8,
    limits: tuple[float | None, float | None] = (None, None),
    colours: board.ThresholdsConfig | None = None,
) -> timeseries.Panel:
    """Lines over time; ``colours`` (thresholds) are drawn as dashed lines."""
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(datasource())
        .unit(unit)
        .span(span)
        .height(height)
        .line_width(1)
        .fill_opacity(5)
        .span_nulls(False)
        .legend(
            common.VizLegendOptions()
            .display_mode(options.LegendDisplayMode.LIST)
            .placement(options.LegendPlacement.BOTTOM)
            .show_legend(True)
        )
        .tooltip(common.VizTooltipOptions().mode(options.TooltipDisplayMode.MULTI).sort(options.SortOrder.DESCENDING))
    )
    low, high = limits
    if low is not None:
        panel = panel.min(low)
    if high is not None:
        panel = panel.max(high)
    if colours is not None:
        panel = panel.thresholds(colours).thresholds_style(
            common.GraphThresholdsStyleConfig().mode(options.GraphThresholdsStyleMode.DASHED)
        )
    for built in queries:
        panel = panel.with_target(built)
    return panel


def number(
    title: str,
    description: str,
    unit: str,
    *queries: prometheus.Dataquery,
    span: int = 6,
    height: int = 5,
    colours: board.ThresholdsConfig | None = None,
) -> stat.Panel:
    """Big numbers: the latest value of each series, coloured by ``colours``."""
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(datasource())
        .unit(unit)
        .span(span)
        .height(height)
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .color_mode(options.BigValueColorMode.BACKGROUND if colours is not None else options.BigValueColorMode.NONE)
        .graph_mode(options.BigValueGraphMode.NONE)
    )
    if colours is not None:
        panel = panel.thresholds(colours)
    for built in queries:
        panel = panel.with_target(built)
    return panel


def ranking(
    title: str,
    description: str,
    unit: str,
    built: prometheus.Dataquery,
    *,
    span: int = 12,
    height: int = 9,
    colours: board.ThresholdsConfig | None = None,
) -> bargauge.Panel:
    """Horizontal bars, one per series, in the order the query returns them (sort it in PromQL)."""
    panel = (
        bargauge.Panel()
        .title(title)
        .description(description)
        .datasource(datasource())
        .unit(unit)
        .span(span)
        .height(height)
        .min(0)
        .orientation(options.VizOrientation.HORIZONTAL)
        .display_mode(options.BarGaugeDisplayMode.BASIC)
        .show_unfilled(True)
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .with_target(built)
    )
    return panel.thresholds(colours) if colours is not None else panel


def table_of(
    title: str,
    description: str,
    unit: str,
    *queries: prometheus.Dataquery,
    span: int = 12,
    height: int = 9,
    hidden: tuple[str, ...] = ("Time",),
    renamed: dict[str, str] | None = None,
    units: dict[str, str] | None = None,
) -> table.Panel:
    """A table of instant queries (format table), joined on their labels into one row per series."""
    panel = (
        table.Panel()
        .title(title)
        .description(description)
        .datasource(datasource())
        .unit(unit)
        .span(span)
        .height(height)
        .with_transformation(model.DataTransformerConfig(id_val="merge", options={}))
        .with_transformation(
            model.DataTransformerConfig(
                id_val="organize",
                options={"excludeByName": dict.fromkeys(hidden, True), "renameByName": renamed or {}},
            )
        )
    )
    for column, column_unit in (units or {}).items():
        panel = panel.override_by_name(column, [model.DynamicConfigValue(id_val="unit", value=column_unit)])
    for built in queries:
        panel = panel.with_target(built)
    return panel


def timeline(
    title: str, description: str, built: prometheus.Dataquery, states: dict[str, tuple[str, str]], *, span: int = 24
) -> statetimeline.Panel:
    """A band per series, coloured by state: ``states`` maps a value to (text, colour)."""
    mapping = model.ValueMap(
        options={
            value: model.ValueMappingResult(text=text_, color=colour, index=index)
            for index, (value, (text_, colour)) in enumerate(states.items())
        }
    )
    return (
        statetimeline.Panel()
        .title(title)
        .description(description)
        .datasource(datasource())
        .unit("none")
        .span(span)
        .height(8)
        .mappings([mapping])
        .show_value(options.VisibilityMode.NEVER)
        .merge_values(True)
        .with_target(built)
    )


def notes(title: str, description: str, markdown: str, *, span: int = 24, height: int = 10) -> text.Panel:
    """Text for the reader (Markdown), no query."""
    return (
        text.Panel()
        .title(title)
        .description(description)
        .mode(TextMode.MARKDOWN)
        .content(markdown)
        .span(span)
        .height(height)
    )
