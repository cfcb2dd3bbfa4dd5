"""Pipeline health, for whoever runs frictionwatch: is every event read, validated, counted
in time, and do alerts get out? Pipeline alerts link here (``/d/frictionwatch-pipeline/pipeline-health``)."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as board

from frictionwatch.grafana.kit import choice, frame, query, thresholds
from frictionwatch.grafana.panels import PanelBuilder, number, time_series

UID = "frictionwatch-pipeline"
TITLE = "Pipeline health"
WORKER = 'instance=~"$instance"'
TOPIC = f'topic=~"$topic", {WORKER}'


def per_second(counter: str, by: str = "topic", labels: str = TOPIC) -> str:
    return f"sum by ({by}) (rate({counter}{{{labels}}}[$__rate_interval]))"


def filters() -> list[board.QueryVariable]:
    return [
        choice(
            "topic", "Topic", "label_values(frictionwatch_records_consumed_total, topic)",
            "Kafka topics the workers read: clicks, contacts, feedback.",
        ),
        choice(
            "instance", "Worker", 'label_values(up{job="frictionwatch"}, instance)',
            "frictionwatch workers Prometheus scrapes (host:port).",
        ),
    ]  # fmt: skip


def overview() -> list[PanelBuilder]:
    return [
        number(
            "Workers up",
            "frictionwatch workers Prometheus can scrape. 0 (red) means no friction metric and no alert: "
            "FrictionwatchWorkerDown fires after a minute.",
            "short",
            query(f'sum(up{{job="frictionwatch", {WORKER}}})', instant=True),
            colours=thresholds("red", (1, "green")),
        ),
        number(
            "Events processed per second",
            "Valid events the workers processed per second, all selected topics together. 0 for 15 minutes "
            "fires FrictionwatchNoEvents.",
            "suffix: /s",
            query(f"sum(rate(frictionwatch_events_processed_total{{{TOPIC}}}[5m]))", instant=True),
        ),
        number(
            "Share of events dead-lettered",
            "Events that failed validation and went to the dead-letter topic, as a share of the events read, "
            "over 5 minutes. Above 5 % (red) FrictionwatchDeadLetterRateHigh fires.",
            "percentunit",
            query(
                f"sum(rate(frictionwatch_events_deadlettered_total{{{TOPIC}}}[5m])) / "
                f"sum(rate(frictionwatch_events_received_total{{{TOPIC}}}[5m]))",
                instant=True,
            ),
            colours=thresholds("green", (0.01, "orange"), (0.05, "red")),
        ),
        number(
            "Behind live",
            "How far the slowest partition's event time (its watermark) is behind the wall clock. Above 5 "
            "minutes (red) FrictionwatchWindowCloseDelayHigh fires: friction metrics and alerts come that late.",
            "s",
            query(f"max(frictionwatch_watermark_delay_seconds{{{TOPIC}}})", instant=True),
            colours=thresholds("green", (120, "orange"), (300, "red")),
        ),
    ]  # fmt: skip


def throughput() -> list[PanelBuilder]:
    return [
        time_series(
            "Events per second, by topic",
            "Events read (received) and validated and counted (processed) per second. The gap is dead-lettered "
            "or re-routed to their partition.",
            "suffix: /s",
            query(per_second("frictionwatch_events_received_total"), "received {{topic}}"),
            query(per_second("frictionwatch_events_processed_total"), "processed {{topic}}"),
        ),
        time_series(
            "Dead-lettered per second, by reason",
            "Events sent to the dead-letter topic, by topic and reason (not JSON, missing field, unknown step, "
            "...). The dead-letter records say which event and why (docs/events.md).",
            "suffix: /s",
            query(per_second("frictionwatch_events_deadlettered_total", by="topic, reason"), "{{topic}} {{reason}}"),
        ),
        time_series(
            "Late window amounts per second",
            "Amounts that arrived after their window had closed: the events are processed, but left out of "
            "that window's friction metrics. Above 1 % of the events FrictionwatchLateEvents fires.",
            "suffix: /s",
            query(
                f"{per_second('frictionwatch_events_late_total')} "
                f"or {per_second('frictionwatch_events_processed_total')} * 0",
                "{{topic}}",
            ),
        ),
        time_series(
            "Consumer lag, by partition",
            "Records the workers still have to read on each partition (from the high-watermark of the latest "
            "fetch). Lag above 10,000 and growing for 10 minutes fires FrictionwatchLagGrowing: add workers "
            "(docs/operations.md, Scaling out).",
            "short",
            query(f"max by (topic, partition) (frictionwatch_consumer_lag{{{TOPIC}}})", "{{topic}} [{{partition}}]"),
            colours=thresholds("green", (10000, "red")),
        ),
    ]  # fmt: skip


def event_time() -> list[PanelBuilder]:
    return [
        time_series(
            "Watermark delay: how far behind live",
            "Wall clock minus each topic's latest event time, slowest partition. Red above 5 minutes.",
            "s",
            query(f"max by (topic) (frictionwatch_watermark_delay_seconds{{{TOPIC}}})", "{{topic}}"),
            span=8,
            colours=thresholds("green", (300, "red")),
        ),
        time_series(
            "Window close delay",
            "Wall clock minus the end of the window, when it closed. About window lateness (5 s) in steady "
            "state; customer touches allow 300 s by design. Red above 2 minutes.",
            "s",
            query(f"max by (topic) (frictionwatch_window_close_delay_seconds{{{TOPIC}}})", "{{topic}}"),
            span=8,
            colours=thresholds("green", (120, "red")),
        ),
        time_series(
            "Final windows per minute, complete or not",
            "Windows merged from every partition's counts (complete) or closed after waiting for a silent "
            "partition (incomplete). Incomplete windows hold partial ratios.",
            "suffix: /min",
            query(
                f'sum by (source, complete) (rate(frictionwatch_windows_final_total{{source=~"$topic", {WORKER}}}'
                "[$__rate_interval])) * 60",
                "{{source}} complete={{complete}}",
            ),
            span=8,
        ),
        time_series(
            "Device clocks off (p90), by channel",
            "How far off the clocks of the devices sending each topic's events are (either way), 90th "
            "percentile of the events where it could be measured: from sent_ts, or a ts ahead of its record's "
            "arrival (then at least that far). The worker corrects their event times (docs/events.md); events "
            "of a channel off by more than 60 s above 5 % of the topic's events fire FrictionwatchClockSkew.",
            "s",
            query(
                "histogram_quantile(0.9, sum by (le, topic, channel) "
                f"(rate(frictionwatch_clock_skew_seconds_bucket{{{TOPIC}}}[$__rate_interval])))",
                "{{topic}} {{channel}}",
            ),
            span=12,
            colours=thresholds("green", (60, "orange"), (600, "red")),
        ),
        time_series(
            "Event times corrected for device clocks, per second",
            "Events whose event time the worker corrected because their device's clock was off by more than "
            "clock_tolerance (5 s): ahead (fast: ts after the record arrived, or per sent_ts) or behind (slow, "
            "known only from sent_ts). Clocks behind without sent_ts show as late amounts instead.",
            "suffix: /s",
            query(
                per_second("frictionwatch_events_time_corrected_total", by="topic, channel, direction"),
                "{{topic}} {{channel}} {{direction}}",
            ),
            span=12,
        ),
    ]  # fmt: skip


def alert_delivery() -> list[PanelBuilder]:
    def per_minute(counter: str) -> str:
        return f"sum by (alertmanager) (rate({counter}{{{WORKER}}}[$__rate_interval])) * 60"

    return [
        time_series(
            "Detector alerts sent to Alertmanager, and failures",
            "The immediate path: alerts the workers delivered to each Alertmanager per minute, attempts that "
            "failed (retried with back-off), and alerts dropped (buffer full, or rejected).",
            "suffix: /min",
            query(per_minute("frictionwatch_alerts_sent_total"), "sent {{alertmanager}}"),
            query(per_minute("frictionwatch_alerts_failed_total"), "failed {{alertmanager}}"),
            query(per_minute("frictionwatch_alerts_retried_total"), "retried {{alertmanager}}"),
            query(per_minute("frictionwatch_alerts_dropped_total"), "dropped {{alertmanager}}"),
        ),
        time_series(
            "Alerts waiting for delivery",
            "Alerts buffered while an Alertmanager can't be reached. Growing means on-call hears nothing from "
            "the detectors.",
            "short",
            query(f"sum by (alertmanager) (frictionwatch_alerts_buffered{{{WORKER}}})", "{{alertmanager}}"),
            colours=thresholds("green", (1, "orange")),
        ),
    ]


def capacity() -> list[PanelBuilder]:
    return [
        time_series(
            "Sessions, contacts and customers held in memory",
            "State each worker keeps for its partitions: open sessions, contacts in flight, recent customer "
            "touches. It grows with traffic and moves with partitions when workers join or leave.",
            "short",
            query(f"sum by (instance, kind) (frictionwatch_state_size{{{WORKER}}})", "{{instance}} {{kind}}"),
        ),
        time_series(
            "Partitions owned by each worker",
            "Partitions of each topic a worker owns. After a worker joins or leaves, Kafka moves partitions "
            "and this settles within a few seconds.",
            "short",
            query(f"sum by (instance, topic) (frictionwatch_assigned_partitions{{{TOPIC}}})", "{{instance}} {{topic}}"),
        ),
    ]  # fmt: skip


def dashboard() -> board.Dashboard:
    built = frame(
        UID, TITLE,
        "Whoever runs frictionwatch: events read and dead-lettered, lateness, lag, how far behind live the "
        "windows close, alert delivery and the state the workers hold. Pipeline alerts link here.",
    )  # fmt: skip
    for variable in filters():
        built = built.with_variable(variable)
    sections = (
        ("Overview", overview()),
        ("Throughput and validation", throughput()),
        ("Event time: watermarks, windows and device clocks", event_time()),
        ("Alert delivery", alert_delivery()),
        ("Capacity", capacity()),
    )
    for title, panels in sections:
        built = built.with_row(board.Row(title))
        for panel in panels:
            built = built.with_panel(panel)
    return built
