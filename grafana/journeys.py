"""Journey friction overview, for ops: where in the journey customers get stuck, drop off,
and what it costs in conversions. Alerts link here (``/d/frictionwatch-journeys/...``)."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as board

from frictionwatch.grafana.kit import Annotation, choice, frame, query, thresholds
from frictionwatch.grafana.panels import PanelBuilder, number, ranking, table_of, time_series

UID = "frictionwatch-journeys"
TITLE = "Journey friction overview"
TOUCHPOINT = 'journey=~"$journey", step=~"$step", channel=~"$channel"'
LEGEND = "{{journey}} / {{step}} · {{channel}}"


def filters() -> list[board.QueryVariable]:
    return [
        choice(
            "journey", "Journey", "label_values(frictionwatch_step_sessions_entered_total, journey)",
            "The customer journeys of the journey map (purchase, support, ...).",
        ),
        choice(
            "step", "Step", 'label_values(frictionwatch_step_sessions_entered_total{journey=~"$journey"}, step)',
            "Funnel steps of the chosen journeys.",
        ),
        choice(
            "channel", "Channel",
            'label_values(frictionwatch_step_sessions_entered_total{journey=~"$journey"}, channel)',
            "Where the customer was: web, app, kiosk, store, chat.",
        ),
    ]  # fmt: skip


def markers() -> list[Annotation]:
    return [
        Annotation(
            "Detector anomalies",
            f'max by (journey, step, channel, metric) (frictionwatch_detector_anomaly{{{TOUCHPOINT}, queue=""}}) == 1',
            "{{metric}} unusual at {{journey}} / {{step}} ({{channel}})",
            "journey,step,channel,metric",
            "red",
        ),
        Annotation(
            "Rule alerts firing",
            'ALERTS{alertstate="firing", source="rule", journey=~"$journey"}',
            "{{alertname}} {{journey}} {{step}} {{channel}} {{queue}}",
            "alertname,severity",
            "orange",
        ),
    ]


def right_now() -> list[PanelBuilder]:
    return [
        table_of(
            "Active alerts",
            "Alerts Prometheus's rules fire right now (journeys, contact centre, pipeline). The detectors' "
            "own alerts go straight to Alertmanager; the touchpoints they flag are in the next panel. "
            "Red markers on the graphs below show when a detector flagged a step.",
            "none",
            query('ALERTS{alertstate="firing", journey=~"$journey"}', instant=True, table=True),
            hidden=("Time", "Value", "__name__", "alertstate"),
        ).no_value("No alert is firing"),
        table_of(
            "Touchpoints the detectors flag now",
            "Journey steps whose friction metric (early flow, flow, step conversion, drop-off, errors, rage "
            "clicks) the anomaly detectors judge unusual in the latest window, against the step's own "
            "seasonal baseline. Each of them has sent an alert to on-call.",
            "none",
            query(
                "max by (journey, step, channel, metric) "
                f'(frictionwatch_detector_anomaly{{{TOUCHPOINT}, queue=""}}) == 1',
                instant=True, table=True,
            ),
            hidden=("Time", "Value"),
        ).no_value("Nothing unusual"),
        number(
            "Goal conversion, latest window",
            "Share of the sessions that ended in the latest complete window and reached a goal step of "
            "their journey (an order confirmed, an issue resolved). Final when sessions end, so it confirms "
            "a problem rather than announcing it.",
            "percentunit",
            query('frictionwatch_window_goal_conversion_ratio{journey=~"$journey"}', "{{journey}}"),
            span=8,
        ),
        ranking(
            "Friction by touchpoint: conversions lost per window (top 10)",
            "Ranked by what friction costs, not by ratio: goal conversions lost at each step and channel "
            "against the step's usual conversion, averaged over the window of the dashboard. 0 while a step "
            "converts as usual. Start with the top bar.",
            "short",
            query(
                "sort_desc(topk(10, sum by (journey, step, channel) "
                f"(avg_over_time(frictionwatch_window_step_conversions_lost{{{TOUCHPOINT}}}[$__range]))))",
                LEGEND, instant=True,
            ),
            span=16,
            height=8,
            colours=thresholds("green", (1, "orange"), (5, "red")),
        ),
    ]  # fmt: skip


def flow() -> list[PanelBuilder]:
    return [
        time_series(
            "Early flow: share of step visits past the step after a minute",
            "The leading signal. Each visit to a step is judged once, a minute after it began: has the "
            "customer moved on? A step that stops letting customers through shows here within two windows. "
            "Its normal level depends on how long people usually spend on the step, so compare a step with "
            "its own past; red markers show where the detectors found it unusual.",
            "percentunit",
            query(f"frictionwatch_window_step_early_flow_ratio{{{TOUCHPOINT}}}", LEGEND),
            limits=(0, 1),
        ),
        time_series(
            "Flow: share of step visits that reached a later step in time",
            "Visits that reached a later step within the step's progress timeout (about the 95th percentile "
            "of its dwell time). Final later than early flow, and steadier.",
            "percentunit",
            query(f"frictionwatch_window_step_flow_ratio{{{TOUCHPOINT}}}", LEGEND),
            limits=(0, 1),
        ),
    ]


def funnel() -> list[PanelBuilder]:
    ended = f"sum by (journey, step) (increase(frictionwatch_step_ended_reached_total{{{TOUCHPOINT}}}[$__range]))"
    return [
        ranking(
            "Funnel: sessions reaching each step",
            "Sessions that reached each step for the first time in the window of the dashboard, largest first "
            "(the funnel's order: each step loses some customers). Funnels are open: a session may enter at any "
            "step.",
            "short",
            query(
                "sort_desc(sum by (journey, step) "
                f"(increase(frictionwatch_step_sessions_entered_total{{{TOUCHPOINT}}}[$__range])))",
                "{{journey}} / {{step}}", instant=True,
            ),
        ),
        table_of(
            "Step conversion and drop-off",
            "Per step, over the window of the dashboard: sessions that ended after reaching the step, the share "
            "of them that also reached the next step (step conversion) and the share that ended at this step "
            "without converting (drop-off). Counted when sessions end, up to 30 minutes after the customer left.",
            "short",
            query(ended, instant=True, table=True),
            query(
                "sum by (journey, step) (increase(frictionwatch_step_ended_reached_next_total"
                f"{{{TOUCHPOINT}}}[$__range])) / {ended}",
                instant=True, table=True,
            ),
            query(
                "sum by (journey, step) "
                f"(increase(frictionwatch_step_dropoffs_total{{{TOUCHPOINT}}}[$__range])) / {ended}",
                instant=True, table=True,
            ),
            renamed={
                "journey": "Journey", "step": "Step", "Value #A": "Sessions ended having reached the step",
                "Value #B": "Step conversion", "Value #C": "Drop-off",
            },
            units={"Step conversion": "percentunit", "Drop-off": "percentunit"},
        ),
        time_series(
            "Step conversion per window",
            "Of the sessions that ended in each window having reached the step, the share that also reached "
            "the next step. Exact but late: use the flow signals above to act, this to report.",
            "percentunit",
            query(f"frictionwatch_window_step_conversion_ratio{{{TOUCHPOINT}}}", LEGEND),
            limits=(0, 1),
        ),
        time_series(
            "Drop-off per window",
            "Of the sessions that ended in each window having reached the step, the share that ended at this "
            "step without reaching a goal: the customers the journey lost here.",
            "percentunit",
            query(f"frictionwatch_window_step_dropoff_ratio{{{TOUCHPOINT}}}", LEGEND),
            limits=(0, 1),
        ),
    ]  # fmt: skip


def symptoms() -> list[PanelBuilder]:
    return [
        time_series(
            "Errors and rage clicks per minute",
            "Error events the trackers report at each step, and rage clicks (3 clicks on one target within a "
            "second): customers fighting the page.",
            "suffix: /min",
            query(
                "sum by (journey, step) "
                f"(rate(frictionwatch_step_errors_total{{{TOUCHPOINT}}}[$__rate_interval])) * 60",
                "errors {{journey}} / {{step}}",
            ),
            query(
                "sum by (journey, step) "
                f"(rate(frictionwatch_step_rage_clicks_total{{{TOUCHPOINT}}}[$__rate_interval])) * 60",
                "rage clicks {{journey}} / {{step}}",
            ),
        ),
        time_series(
            "Time to reach the next step, 90th percentile",
            "9 in 10 customers who moved from the step to the next one of the journey did so within this "
            "time. A slow page or a confusing form pushes it up before customers give up.",
            "s",
            query(
                "histogram_quantile(0.9, sum by (le, journey, step) "
                f"(rate(frictionwatch_step_to_next_seconds_bucket{{{TOUCHPOINT}}}[$__rate_interval])))",
                "{{journey}} / {{step}}",
            ),
        ),
    ]  # fmt: skip


def dashboard() -> board.Dashboard:
    built = frame(
        UID, TITLE,
        "Ops: where customers get stuck in each journey, how it shows in the funnel, and what it costs. "
        "Alerts on journeys link here.",
    )  # fmt: skip
    for variable in filters():
        built = built.with_variable(variable)
    for annotation in markers():
        built = built.annotation(annotation)
    sections = (
        ("Right now", right_now()),
        ("Leading signal: are customers getting through each step?", flow()),
        ("Funnel: step conversion and drop-off", funnel()),
        ("Symptoms at the step", symptoms()),
    )
    for title, panels in sections:
        built = built.with_row(board.Row(title))
        for panel in panels:
            built = built.with_panel(panel)
    return built
