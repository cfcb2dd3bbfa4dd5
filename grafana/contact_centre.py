"""Contact centre, for the contact-centre floor and on-call: queues' volume, abandonment,
waits, speed of answer, service level, repeat contacts and channel switches. Alerts on
queues link here (``/d/frictionwatch-contact-centre/contact-centre``)."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as board

from frictionwatch.grafana.kit import choice, frame, query, thresholds
from frictionwatch.grafana.panels import PanelBuilder, number, table_of, time_series

UID = "frictionwatch-contact-centre"
TITLE = "Contact centre"
QUEUE = 'channel=~"$channel", queue=~"$queue"'
LEGEND = "{{channel}} / {{queue}}"


def total(counter: str, labels: str = QUEUE, by: str = "") -> str:
    """PromQL: how much ``counter`` grew over the dashboard's window, summed (``by`` labels)."""
    grouping = f" by ({by})" if by else ""
    return f"sum{grouping} (increase({counter}{{{labels}}}[$__range]))"


def per_minute(counter: str) -> str:
    return f"sum (rate({counter}{{{QUEUE}}}[$__rate_interval])) * 60"


def filters() -> list[board.QueryVariable]:
    return [
        choice(
            "channel", "Channel", "label_values(frictionwatch_contacts_offered_total, channel)",
            "Contact channels of the journey map: phone, chat, email, callback.",
        ),
        choice(
            "queue", "Queue", 'label_values(frictionwatch_contacts_offered_total{channel=~"$channel"}, queue)',
            "Queues of the chosen channels (billing, orders, technical, ...).",
        ),
    ]  # fmt: skip


def volume() -> list[PanelBuilder]:
    answered_or_abandoned = (
        f"({total('frictionwatch_contacts_answered_total')} + {total('frictionwatch_contacts_abandoned_total')})"
    )
    judged = f"({answered_or_abandoned} - {total('frictionwatch_contacts_wait_unknown_total')})"
    return [
        number(
            "Contacts offered, answered, abandoned",
            "Over the window of the dashboard: contacts that joined a queue (offered), were answered, or hung up "
            "after waiting at least 5 s (abandoned). Short abandons (under 5 s, often misdials) are counted "
            "apart and left out of every ratio.",
            "short",
            query(total("frictionwatch_contacts_offered_total"), "offered", instant=True),
            query(total("frictionwatch_contacts_answered_total"), "answered", instant=True),
            query(total("frictionwatch_contacts_abandoned_total"), "abandoned", instant=True),
            query(total("frictionwatch_contacts_short_abandoned_total"), "short abandons", instant=True),
            span=12,
        ),
        number(
            "Abandonment",
            "Abandoned / (answered + abandoned) over the window of the dashboard. Above 10 % (red) the "
            "ContactAbandonmentHigh alert fires.",
            "percentunit",
            query(f"{total('frictionwatch_contacts_abandoned_total')} / {answered_or_abandoned}", instant=True),
            colours=thresholds("green", (0.05, "orange"), (0.10, "red")),
        ),
        number(
            "Service level",
            "Contacts answered within 20 s / (answered + abandoned), contacts with an unknown wait left out, "
            "over the window of the dashboard. Below the 80 % target it is red.",
            "percentunit",
            query(f"{total('frictionwatch_contacts_answered_within_service_level_total')} / {judged}", instant=True),
            colours=thresholds("red", (0.8, "green")),
        ),
        time_series(
            "Contacts per minute: offered, answered, abandoned",
            "How many contacts join the selected queues, are answered and are abandoned each minute. Offered "
            "running above answered means the queue is growing.",
            "suffix: /min",
            query(per_minute("frictionwatch_contacts_offered_total"), "offered"),
            query(per_minute("frictionwatch_contacts_answered_total"), "answered"),
            query(per_minute("frictionwatch_contacts_abandoned_total"), "abandoned"),
            query(per_minute("frictionwatch_contacts_short_abandoned_total"), "short abandons"),
        ),
        time_series(
            "Abandonment per window, by queue",
            "Abandoned / (answered + abandoned) in each complete window, per channel and queue. The red line "
            "is the 10 % alert threshold.",
            "percentunit",
            query(f"frictionwatch_window_contacts_abandonment_ratio{{{QUEUE}}}", LEGEND),
            limits=(0, 1),
            colours=thresholds("green", (0.10, "red")),
        ),
    ]  # fmt: skip


def waiting() -> list[PanelBuilder]:
    def quantile(level: float) -> str:
        return (
            f"histogram_quantile({level}, sum by (le, channel, queue) "
            f"(rate(frictionwatch_contact_wait_seconds_bucket{{{QUEUE}}}[$__rate_interval])))"
        )

    return [
        time_series(
            "Queue wait: median and 90th percentile",
            "How long customers waited in the queue before being answered or hanging up: half waited less "
            "than p50, 9 in 10 less than p90. Above 2 minutes (red) on phone or chat the ContactWaitP90High "
            "alert fires. Waits beyond 20 minutes (e-mail, callbacks) read as 20 minutes.",
            "s",
            query(quantile(0.5), "p50 " + LEGEND),
            query(quantile(0.9), "p90 " + LEGEND),
            span=8,
            colours=thresholds("green", (120, "red")),
        ),
        time_series(
            "Average speed of answer per window",
            "Mean wait of the contacts answered in each complete window (answered contacts with a known wait). "
            "Orange above the 20 s service-level target.",
            "s",
            query(f"frictionwatch_window_contacts_average_speed_of_answer_seconds{{{QUEUE}}}", LEGEND),
            span=8,
            colours=thresholds("green", (20, "orange")),
        ),
        time_series(
            "Service level per window",
            "Share of the contacts answered within 20 s, of those answered or abandoned in each complete "
            "window. Below the 80 % target (red line) the ContactServiceLevelLow alert fires.",
            "percentunit",
            query(f"frictionwatch_window_contacts_service_level_ratio{{{QUEUE}}}", LEGEND),
            span=8,
            limits=(0, 1),
            colours=thresholds("red", (0.8, "green")),
        ),
    ]  # fmt: skip


def repeats() -> list[PanelBuilder]:
    def hourly(counter: str) -> str:
        return f"sum by (channel, queue) (rate({counter}{{{QUEUE}}}[15m])) * 3600"

    return [
        time_series(
            "Repeat contacts and channel switches per hour",
            "Repeat contacts: the customer contacted us (on any channel) less than 24 h before; they measure "
            "problems not solved the first time. Channel switches: the customer's previous touch, a web "
            "session or a contact, was on another channel (web, then chat, then phone). Rolling 15 minutes.",
            "suffix: /h",
            query(hourly("frictionwatch_contacts_repeat_total"), "repeat " + LEGEND),
            query(hourly("frictionwatch_contacts_channel_switches_total"), "switch " + LEGEND),
        ),
        time_series(
            "Share of contacts that are repeats",
            "Repeat contacts / contacts offered over the last hour, per queue: the inverse of first-contact "
            "resolution.",
            "percentunit",
            query(
                "sum by (channel, queue) (increase(frictionwatch_contacts_repeat_total"
                f"{{{QUEUE}}}[1h])) / sum by (channel, queue) (increase(frictionwatch_contacts_offered_total"
                f"{{{QUEUE}}}[1h]))",
                LEGEND,
            ),
            limits=(0, 1),
        ),
        table_of(
            "Queues over the window of the dashboard",
            "One row per channel and queue: contacts offered, abandonment, average speed of answer, service "
            "level and the share of repeat contacts, over the window of the dashboard.",
            "short",
            query(total("frictionwatch_contacts_offered_total", by="channel, queue"), instant=True, table=True),
            query(
                f"{total('frictionwatch_contacts_abandoned_total', by='channel, queue')} / "
                f"({total('frictionwatch_contacts_answered_total', by='channel, queue')} + "
                f"{total('frictionwatch_contacts_abandoned_total', by='channel, queue')})",
                instant=True, table=True,
            ),
            query(
                f"{total('frictionwatch_contacts_answered_wait_seconds_total', by='channel, queue')} / "
                f"({total('frictionwatch_contacts_answered_total', by='channel, queue')} - "
                f"{total('frictionwatch_contacts_answered_wait_unknown_total', by='channel, queue')})",
                instant=True, table=True,
            ),
            query(
                f"{total('frictionwatch_contacts_answered_within_service_level_total', by='channel, queue')} / "
                f"({total('frictionwatch_contacts_answered_total', by='channel, queue')} + "
                f"{total('frictionwatch_contacts_abandoned_total', by='channel, queue')} - "
                f"{total('frictionwatch_contacts_wait_unknown_total', by='channel, queue')})",
                instant=True, table=True,
            ),
            query(
                f"{total('frictionwatch_contacts_repeat_total', by='channel, queue')} / "
                f"{total('frictionwatch_contacts_offered_total', by='channel, queue')}",
                instant=True, table=True,
            ),
            span=24,
            renamed={
                "channel": "Channel", "queue": "Queue", "Value #A": "Offered", "Value #B": "Abandonment",
                "Value #C": "Average speed of answer", "Value #D": "Service level", "Value #E": "Repeat contacts",
            },
            units={
                "Abandonment": "percentunit", "Average speed of answer": "s", "Service level": "percentunit",
                "Repeat contacts": "percentunit",
            },
        ),
    ]  # fmt: skip


def dashboard() -> board.Dashboard:
    built = frame(
        UID, TITLE,
        "Contact-centre floor and on-call: queue volume, abandonment, waits, speed of answer, service level, "
        "repeat contacts and channel switches, per channel and queue. Alerts on queues link here.",
    )  # fmt: skip
    for variable in filters():
        built = built.with_variable(variable)
    sections = (
        ("Volume and abandonment", volume()),
        ("Waiting", waiting()),
        ("Repeat contacts and channel switches", repeats()),
    )
    for title, panels in sections:
        built = built.with_row(board.Row(title))
        for panel in panels:
            built = built.with_panel(panel)
    return built
