"""Feedback, for product and contact-centre teams: CSAT, NPS and CES per touchpoint (a
journey step, or a contact queue) and how many answers each rests on."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as board

from frictionwatch.grafana.kit import choice, frame, query, thresholds
from frictionwatch.grafana.panels import PanelBuilder, table_of, time_series

UID = "frictionwatch-feedback"
TITLE = "Feedback"
TOUCHPOINT = 'journey=~"$journey", channel=~"$channel", queue=~"$queue"'
BY = "journey, step, channel, queue"
LEGEND = "{{journey}} {{step}} {{channel}} {{queue}}"


def answers(counter: str, survey: str, window: str) -> str:
    """PromQL: answers (or their sum) of ``survey`` per touchpoint over ``window``."""
    return f'sum by ({BY}) (increase({counter}{{survey="{survey}", {TOUCHPOINT}}}[{window}]))'


def csat(window: str) -> str:
    return (
        f"{answers('frictionwatch_feedback_csat_satisfied_total', 'csat', window)} / "
        f"{answers('frictionwatch_feedback_responses_total', 'csat', window)}"
    )


def nps(window: str) -> str:
    return (
        f"({answers('frictionwatch_feedback_nps_promoters_total', 'nps', window)} - "
        f"{answers('frictionwatch_feedback_nps_detractors_total', 'nps', window)}) / "
        f"{answers('frictionwatch_feedback_responses_total', 'nps', window)} * 100"
    )


def ces(window: str) -> str:
    return (
        f"{answers('frictionwatch_feedback_score_total', 'ces', window)} / "
        f"{answers('frictionwatch_feedback_responses_total', 'ces', window)}"
    )


def filters() -> list[board.QueryVariable]:
    def values_of(label: str) -> str:
        return f"label_values(frictionwatch_feedback_responses_total, {label})"

    return [
        choice("journey", "Journey", values_of("journey"), "Journeys whose steps are rated.", hide_empty=True),
        choice("channel", "Channel", values_of("channel"), "Web, app, phone, chat, ...", hide_empty=True),
        choice("queue", "Queue", values_of("queue"), "Contact-centre queues that are rated.", hide_empty=True),
    ]


def scores() -> list[PanelBuilder]:
    return [
        time_series(
            "CSAT: share of satisfied customers",
            "Customer satisfaction: answers of 4 or 5 on the 1-5 scale, as a share of all CSAT answers, per "
            "rated step or queue, over the last hour (rolling).",
            "percentunit",
            query(csat("1h"), LEGEND),
            span=8,
            limits=(0, 1),
        ),
        time_series(
            "NPS: promoters minus detractors",
            "Net promoter score: (answers of 9-10 minus answers of 0-6) / all NPS answers x 100, from -100 to "
            "100, per rated step or queue, over the last hour (rolling). Red below 0: more detractors than "
            "promoters.",
            "none",
            query(nps("1h"), LEGEND),
            span=8,
            limits=(-100, 100),
            colours=thresholds("red", (0, "green")),
        ),
        time_series(
            "CES: customer effort",
            "Customer effort score: the mean answer on the 1-7 scale, per rated step or queue, over the last "
            "hour (rolling). Higher means more effort: the touchpoint is getting harder to get through.",
            "none",
            query(ces("1h"), LEGEND),
            span=8,
            limits=(1, 7),
        ),
    ]


def volume() -> list[PanelBuilder]:
    return [
        time_series(
            "Survey answers per hour",
            "How many survey answers arrive, per survey (CSAT, NPS, CES), rolling 15 minutes. Scores resting "
            "on few answers move a lot: read them together.",
            "suffix: /h",
            query(
                f"sum by (survey) (rate(frictionwatch_feedback_responses_total{{{TOUCHPOINT}}}[15m])) * 3600",
                "{{survey}}",
            ),
        ),
        table_of(
            "Scores per touchpoint over the window of the dashboard",
            "One row per rated step or queue: CSAT, NPS and CES over the window of the dashboard, and the "
            "number of answers they rest on.",
            "none",
            query(csat("$__range"), instant=True, table=True),
            query(nps("$__range"), instant=True, table=True),
            query(ces("$__range"), instant=True, table=True),
            query(
                f"sum by ({BY}) (increase(frictionwatch_feedback_responses_total{{{TOUCHPOINT}}}[$__range]))",
                instant=True, table=True,
            ),
            renamed={
                "journey": "Journey", "step": "Step", "channel": "Channel", "queue": "Queue",
                "Value #A": "CSAT", "Value #B": "NPS", "Value #C": "CES", "Value #D": "Answers",
            },
            units={"CSAT": "percentunit", "Answers": "short"},
        ),
    ]  # fmt: skip


def dashboard() -> board.Dashboard:
    built = frame(
        UID, TITLE,
        "Product and contact-centre teams: what customers say about each journey step and queue (CSAT, NPS, "
        "CES) and how many answers each score rests on.",
        hours=24,
        refresh="1m",
    )  # fmt: skip
    for variable in filters():
        built = built.with_variable(variable)
    for title, panels in (("Scores per touchpoint", scores()), ("Answers", volume())):
        built = built.with_row(board.Row(title))
        for panel in panels:
            built = built.with_panel(panel)
    return built
