"""Detector tuning, for product teams: what each anomaly detector saw, what it expected,
how far off it judged the window, and when it flagged; how to try a setting first.
Detector alerts link here (``/d/frictionwatch-detectors/detector-tuning``)."""

from __future__ import annotations

from grafana_foundation_sdk.builders import common
from grafana_foundation_sdk.builders import dashboard as board
from grafana_foundation_sdk.models import dashboard as model

from frictionwatch.grafana.kit import Annotation, choice, frame, query
from frictionwatch.grafana.panels import PanelBuilder, notes, table_of, time_series, timeline

UID = "frictionwatch-detectors"
TITLE = "Detector tuning"
SERIES = 'journey=~"$journey", step=~"$step", channel=~"$channel", queue=~"$queue", metric=~"$metric"'
LABELS = "journey, step, channel, queue, survey, metric"
LEGEND = "{{journey}} {{step}} {{channel}} {{queue}} {{survey}} · {{metric}}"

BACKTEST = """\
Before changing a detector setting in the journey map's `detectors:` section, replay a day of
traffic through the same detectors and see what the setting would have found:

```sh
frictionwatch generate --output day.jsonl --duration 24h --rate 30 --seed 11 \\
    --scenario my-incidents.yml --incidents truth.jsonl
frictionwatch backtest day.jsonl --incidents truth.jsonl --out report/ --threshold 5 --consecutive 3
```

It prints, per injected incident, whether it was found, how late and by which metric; the
false alerts per simulated day; precision and recall. `report/summary.json` holds the numbers
and `report/` a plot per series (observed value, expected band, alerts, incidents shaded), the
same picture as the panels above. Replay your own events the same way: any JSON-lines file of
the event contract works. Details: `docs/backtest.md` and `docs/detectors.md`.

A running worker applies a changed journey map (or `kill -HUP`) without losing what its
detectors learned.
"""


def filters() -> list[board.QueryVariable]:
    def values_of(label: str) -> str:
        return f"label_values(frictionwatch_detector_observed, {label})"

    return [
        choice("journey", "Journey", values_of("journey"), "Journeys with detectors.", hide_empty=True),
        choice("step", "Step", values_of("step"), "Journey steps with detectors.", hide_empty=True),
        choice("channel", "Channel", values_of("channel"), "Web, app, phone, chat, ...", hide_empty=True),
        choice("queue", "Queue", values_of("queue"), "Contact-centre queues with detectors.", hide_empty=True),
        choice(
            "metric", "Metric", values_of("metric"),
            "What is judged: early_flow_ratio, flow_ratio, step_conversion, dropoff_ratio, errors_per_visit, "
            "abandonment_ratio, average_speed_of_answer, service_level, csat, nps, ces (docs/detectors.md).",
        ),
    ]  # fmt: skip


def dashed(ref_id: str) -> board.DashboardFieldConfigSourceOverrides:
    style = common.LineStyle().fill("dash").dash([10, 10]).build()
    return (
        board.DashboardFieldConfigSourceOverrides()
        .matcher(model.MatcherConfig(id_val="byFrameRefID", options=ref_id))
        .properties([model.DynamicConfigValue(id_val="custom.lineStyle", value=style)])
    )


def judged() -> list[PanelBuilder]:
    band = time_series(
        "Observed value against the expected band",
        "For each touchpoint and metric: the value in the latest complete window (solid) and the band the "
        "detector expected it in (dashed: the expected value and the lower and upper edges). Pick one "
        "touchpoint and metric in the filters above to read it. Ratios are 0-1, waits in seconds, NPS -100 "
        "to 100, CES 1-7.",
        "none",
        query(f"frictionwatch_detector_observed{{{SERIES}}}", "observed " + LEGEND),
        query(f"frictionwatch_detector_expected{{{SERIES}}}", "expected " + LEGEND),
        query(f"frictionwatch_detector_lower{{{SERIES}}}", "lower " + LEGEND),
        query(f"frictionwatch_detector_upper{{{SERIES}}}", "upper " + LEGEND),
        span=24,
        height=10,
    ).overrides([dashed("B"), dashed("C"), dashed("D")])
    score = time_series(
        "Score against threshold",
        "How unusual each window is in the bad direction (flow down, waits up, ...), in standard deviations "
        "of what the detector learned, against the threshold (dashed) at which it flags. A score hovering just "
        "under the threshold on normal days means the setting is tight; far above it during real incidents "
        "means there is room.",
        "none",
        query(f"frictionwatch_detector_score{{{SERIES}}}", "score " + LEGEND),
        query(f"frictionwatch_detector_threshold{{{SERIES}}}", "threshold " + LEGEND),
    ).overrides([dashed("B")])
    volume = time_series(
        "Volume each verdict rests on",
        "Sessions, contacts or survey answers behind each window's value. Below the detector's min_volume "
        "(10 by default) it pools recent windows or does not judge: a 50 % drop-off of 4 sessions is no "
        "incident.",
        "short",
        query(f"frictionwatch_detector_volume{{{SERIES}}}", LEGEND),
    )
    return [band, score, volume]


def history() -> list[PanelBuilder]:
    return [
        timeline(
            "Detector alert history",
            "When each detector flagged its touchpoint (red): every flagged stretch sent a detector alert to "
            "Alertmanager (source=\"detector\"), re-sent while it lasted and resolved when it ended.",
            query(f"max by ({LABELS}) (frictionwatch_detector_anomaly{{{SERIES}}})", LEGEND),
            {"0": ("normal", "green"), "1": ("flagged", "red")},
        ),
        timeline(
            "Rule alert history",
            "When Prometheus's threshold rules (alerts/rules, source=\"rule\") were firing, for comparison with "
            "the detectors: a rule that fires where the detector stays quiet may point to a setting too loose.",
            query(
                'max by (alertname, journey, step, channel, queue) (ALERTS{alertstate="firing", '
                'journey=~"$journey", channel=~"$channel", queue=~"$queue"})',
                "{{alertname}} {{journey}} {{step}} {{channel}} {{queue}}",
            ),
            {"1": ("firing", "red")},
        ),
        table_of(
            "Latest verdict per series",
            "Every detector's latest verdict: observed value, expected value and band, score, threshold and the "
            "volume it rests on. Sort by a column by clicking its header.",
            "none",
            *(
                query(f"frictionwatch_detector_{name}{{{SERIES}}}", instant=True, table=True)
                for name in ("observed", "expected", "lower", "upper", "score", "threshold", "volume")
            ),
            span=24,
            height=10,
            renamed={
                "Value #A": "Observed", "Value #B": "Expected", "Value #C": "Lower", "Value #D": "Upper",
                "Value #E": "Score", "Value #F": "Threshold", "Value #G": "Volume",
            },
            hidden=("Time", "__name__", "instance", "job", "stage"),
        ),
    ]  # fmt: skip


def dashboard() -> board.Dashboard:
    built = frame(
        UID, TITLE,
        "Product teams: per touchpoint and metric, what the anomaly detectors observed against what they "
        "expected, the score against the threshold, when they alerted, and how to try a setting with a "
        "backtest before deploying it.",
        hours=6,
    )  # fmt: skip
    for variable in filters():
        built = built.with_variable(variable)
    built = built.annotation(
        Annotation(
            "Detector anomalies",
            f"max by ({LABELS}) (frictionwatch_detector_anomaly{{{SERIES}}}) == 1",
            "{{metric}} unusual at {{journey}}{{queue}} {{step}} {{channel}}",
            "journey,step,channel,queue,metric",
            "red",
        )
    )
    sections = (
        ("Observed against expected", judged()),
        ("Alert history", history()),
    )
    for title, panels in sections:
        built = built.with_row(board.Row(title))
        for panel in panels:
            built = built.with_panel(panel)
    built = built.with_row(board.Row("Try a setting first: backtest"))
    return built.with_panel(
        notes(
            "How to run a backtest",
            "Replay a day of traffic through the detectors with a candidate setting before deploying it.",
            BACKTEST,
            height=12,
        )
    )
