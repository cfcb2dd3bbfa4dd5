"""Prometheus exposition of the friction metrics (docs/metrics.md is the reference).

Two kinds of series:

* **Counters and histograms**, one per window field, incremented by the worker that
  counted them when a window of its partition closes (histograms: as events arrive).
  Each worker exports its own share; ``sum`` across workers in PromQL.
* **Gauges of the latest final window** (``frictionwatch_window_*``), set by the one
  worker that reduces the touchpoint's group: complete counts and ratios of the latest
  window in which every partition has been heard from.

Labels come from the journey map only, and every series is created at start-up so
panels and alerts never see a gap before the first event.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from frictionwatch.detectors.bank import Finding, SeriesPlace
from frictionwatch.journeymap import JourneyMap
from frictionwatch.streams.contacts import contact_ratios
from frictionwatch.streams.derived import ConversionBaseline, ratio, step_ratios
from frictionwatch.streams.feedback import feedback_scores
from frictionwatch.streams.reduce import FinalWindow
from frictionwatch.streams.sessions import StepObservation
from frictionwatch.streams.windows import Touchpoint, Window

STEP_LABELS: Final = ("journey", "stage", "step", "channel")
QUEUE_LABELS: Final = ("channel", "queue")
FEEDBACK_LABELS: Final = ("journey", "stage", "step", "channel", "queue", "survey")

#: window field -> (counter name without _total, help), per label set.
STEP_FIELDS: Final = {
    "sessions_entered": ("frictionwatch_step_sessions_entered", "Sessions that reached the step for the first time."),
    "step_visits": ("frictionwatch_step_visits", "Entries into the step, re-entries after back-tracking included."),
    "backtracks": ("frictionwatch_step_backtracks", "Sessions that went from this step back to an earlier one."),
    "clicks": ("frictionwatch_step_clicks", "Clicks at the step."),
    "errors": ("frictionwatch_step_errors", "Error events at the step."),
    "rage_clicks": ("frictionwatch_step_rage_clicks", "Rage clicks: bursts of clicks on one target."),
    "flow_progressed": ("frictionwatch_step_flow_progressed", "Step visits that reached a later step in time."),
    "flow_stalled": ("frictionwatch_step_flow_stalled", "Step visits that did not reach a later step in time."),
    "early_progressed": ("frictionwatch_step_early_progressed", "Step visits past the step at the early check."),
    "early_waiting": ("frictionwatch_step_early_waiting", "Step visits still there (or gone) at the early check."),
    "sessions_ended": ("frictionwatch_step_sessions_ended", "Sessions that ended at this step."),
    "ended_reached": ("frictionwatch_step_ended_reached", "Ended sessions that had reached the step."),
    "ended_reached_next": ("frictionwatch_step_ended_reached_next", "... and the next step too."),
    "dropoffs": ("frictionwatch_step_dropoffs", "Sessions that ended at this (non-goal) step."),
    "conversions": ("frictionwatch_step_conversions", "Ended sessions that reached this goal step."),
}
QUEUE_FIELDS: Final = {
    "offered": ("frictionwatch_contacts_offered", "Contacts queued."),
    "answered": ("frictionwatch_contacts_answered", "Contacts answered."),
    "abandoned": ("frictionwatch_contacts_abandoned", "Contacts abandoned after the short-abandon threshold."),
    "short_abandoned": ("frictionwatch_contacts_short_abandoned", "Contacts abandoned within the threshold."),
    "resolved": ("frictionwatch_contacts_resolved", "Contacts resolved."),
    "transferred": ("frictionwatch_contacts_transferred", "Contacts transferred."),
    "answered_wait_seconds_sum": ("frictionwatch_contacts_answered_wait_seconds", "Queue wait of answered contacts."),
    "answered_within_service_level": (
        "frictionwatch_contacts_answered_within_service_level",
        "Contacts answered within the service-level wait.",
    ),
    "abandoned_wait_seconds_sum": ("frictionwatch_contacts_abandoned_wait_seconds", "Wait of abandoned contacts."),
    "wait_unknown": ("frictionwatch_contacts_wait_unknown", "Answered or abandoned contacts with no known wait."),
    "answered_wait_unknown": ("frictionwatch_contacts_answered_wait_unknown", "Answered contacts with no known wait."),
    "repeat_contacts": ("frictionwatch_contacts_repeat", "Contacts by a customer who contacted us within the horizon."),
    "channel_switches": (
        "frictionwatch_contacts_channel_switches",
        "Contacts that followed the customer's session or contact on another channel.",
    ),
}
FEEDBACK_FIELDS: Final = {
    "responses": ("frictionwatch_feedback_responses", "Survey answers."),
    "score_sum": ("frictionwatch_feedback_score", "Sum of survey scores."),
    "csat_satisfied": ("frictionwatch_feedback_csat_satisfied", "CSAT answers of 4 or 5."),
    "nps_promoters": ("frictionwatch_feedback_nps_promoters", "NPS answers of 9 or 10."),
    "nps_detractors": ("frictionwatch_feedback_nps_detractors", "NPS answers of 0 to 6."),
}
STEP_TIME_BUCKETS: Final = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800)
WAIT_BUCKETS: Final = (5, 10, 20, 30, 45, 60, 90, 120, 180, 300, 600, 1200)
NAN: Final = math.nan


def _value(number: float | None) -> float:
    return NAN if number is None else number


class PartitionProgress:
    """One input partition's watermark and its delay behind the wall clock at its latest record
    (0 before its first event), read by the partition's gauges when scraped."""

    __slots__ = ("delay", "lag", "watermark")

    def __init__(self, lag: Gauge) -> None:
        self.watermark = 0.0
        self.delay = 0.0
        self.lag = lag  # the partition's child of frictionwatch_consumer_lag

    def read_watermark(self) -> float:
        return self.watermark

    def read_delay(self) -> float:
        return self.delay


class FrictionMetrics:
    """Every friction series of one worker, registered in ``registry``."""

    def __init__(
        self, registry: CollectorRegistry, journey_map: JourneyMap, clock: Callable[[], float] = time.time
    ) -> None:
        self.journey_map = journey_map
        self.clock = clock
        self.stages = {(j.name, s.name): s.stage for j in journey_map.journeys.values() for s in j.steps}
        self.step_counters = {f: Counter(n, h, STEP_LABELS, registry=registry) for f, (n, h) in STEP_FIELDS.items()}
        self.queue_counters = {f: Counter(n, h, QUEUE_LABELS, registry=registry) for f, (n, h) in QUEUE_FIELDS.items()}
        self.feedback_counters = {
            f: Counter(n, h, FEEDBACK_LABELS, registry=registry) for f, (n, h) in FEEDBACK_FIELDS.items()
        }
        self.step_time = Histogram(
            "frictionwatch_step_to_next_seconds", "Time from entering a step to entering the next step of the journey.",
            STEP_LABELS, buckets=STEP_TIME_BUCKETS, registry=registry,
        )  # fmt: skip
        self.wait = Histogram(
            "frictionwatch_contact_wait_seconds", "Queue wait of answered and abandoned contacts.",
            (*QUEUE_LABELS, "outcome"), buckets=WAIT_BUCKETS, registry=registry,
        )  # fmt: skip
        self._health(registry)
        self._window_gauges(registry)
        self.baseline = ConversionBaseline()
        self._partitions: dict[tuple[str, int], PartitionProgress] = {}
        #: (input kind, touchpoint) -> amount name -> its counter's child (None: no counter counts it)
        self._window_children: dict[tuple[str, Touchpoint], dict[str, Counter | None]] = {}
        #: (journey, step, channel) -> its step-time histogram's child; (channel, queue, outcome) ->
        #: its wait histogram's child: ``labels()`` costs more than the observation
        self._step_time_children: dict[tuple[str, str, str], Histogram] = {}
        self._wait_children: dict[tuple[str, str, str], Histogram] = {}
        #: (place, metric) -> its detector gauges' children, in the order :meth:`findings` sets them
        self._finding_children: dict[tuple[SeriesPlace, str], tuple[Gauge, ...]] = {}
        self._initialise()

    def _health(self, registry: CollectorRegistry) -> None:
        self.late = Counter(
            "frictionwatch_events_late", "Window amounts that arrived after their window closed (not counted in it).",
            ["topic"], registry=registry,
        )  # fmt: skip
        self.duplicates = Counter(
            "frictionwatch_events_duplicate",
            "Events skipped because their event_id was seen within the dedup horizon (re-deliveries).",
            ["topic"], registry=registry,
        )  # fmt: skip
        self.refetched = Counter(
            "frictionwatch_records_refetched",
            "Times the consumer skipped records (around a rebalance) and the worker fetched them again.",
            ["topic"], registry=registry,
        )  # fmt: skip
        self.rebuilt_records = Counter(
            "frictionwatch_state_rebuilt_records",
            "Records replayed to rebuild a partition's state after a restart or a hand-over.",
            ["topic"], registry=registry,
        )  # fmt: skip
        self.rebuild_seconds = Counter(
            "frictionwatch_state_rebuild_seconds",
            "Time spent replaying records to rebuild partition state, seconds.",
            ["topic"], registry=registry,
        )  # fmt: skip
        self.watermark = Gauge(
            "frictionwatch_watermark_timestamp_seconds", "Latest event time seen on the partition (its watermark).",
            ["topic", "partition"], registry=registry,
        )  # fmt: skip
        self.watermark_delay = Gauge(
            "frictionwatch_watermark_delay_seconds", "Wall clock minus the partition's watermark.",
            ["topic", "partition"], registry=registry,
        )  # fmt: skip
        self.close_delay = Gauge(
            "frictionwatch_window_close_delay_seconds", "Wall clock minus the end of the window when it closed.",
            ["topic"], registry=registry,
        )  # fmt: skip
        self.lag = Gauge(
            "frictionwatch_consumer_lag", "Records behind the partition's end offset (its high-watermark).",
            ["topic", "partition"], registry=registry,
        )  # fmt: skip
        self.state = Gauge("frictionwatch_state_size", "Items held in memory, by kind.", ["kind"], registry=registry)
        self.assigned = Gauge(
            "frictionwatch_assigned_partitions", "Partitions of the topic this worker owns now.", ["topic"],
            registry=registry,
        )  # fmt: skip
        self.windows_final = Counter(
            "frictionwatch_windows_final", "Windows reduced to final counts, by whether every partition reported.",
            ["source", "complete"], registry=registry,
        )  # fmt: skip
        self.detectors_restored = Counter(
            "frictionwatch_detectors_restored", "Detectors given back their learned state from the checkpoint.",
            registry=registry,
        )  # fmt: skip
        self.partials_late = Counter(
            "frictionwatch_window_partials_late", "Partial windows that arrived after their window was final.",
            registry=registry,
        )  # fmt: skip
        self.other_ingest = Gauge(
            "frictionwatch_other_ingest_reading",
            "1 when, at the last look, a worker with the other ingest setting had read the input topics on: "
            "workers of both settings read every input partition (streams/ingest_guard.py).",
            registry=registry,
        )  # fmt: skip
        self.tasks = Gauge(
            "frictionwatch_asyncio_tasks", "Tasks alive in the worker's event loop (grows without bound on a leak).",
            registry=registry,
        )  # fmt: skip

    def _window_gauges(self, registry: CollectorRegistry) -> None:
        def gauge(name: str, help_text: str, labels: tuple[str, ...]) -> Gauge:
            return Gauge(
                f"frictionwatch_window_{name}", f"{help_text} (latest final window)", labels, registry=registry
            )

        self.w_step = {
            "sessions_entered": gauge("step_sessions_entered", "Sessions that reached the step", STEP_LABELS),
            "errors": gauge("step_errors", "Error events at the step", STEP_LABELS),
            "rage_clicks": gauge("step_rage_clicks", "Rage clicks at the step", STEP_LABELS),
            "backtracks": gauge("step_backtracks", "Back-tracks from the step", STEP_LABELS),
            "flow_ratio": gauge("step_flow_ratio", "Share of step visits that moved on in time", STEP_LABELS),
            "early_flow_ratio": gauge(
                "step_early_flow_ratio", "Share of step visits past the step at the early check", STEP_LABELS
            ),
            "step_conversion": gauge(
                "step_conversion_ratio", "Ended sessions at the step that reached the next", STEP_LABELS
            ),
            "dropoff_ratio": gauge(
                "step_dropoff_ratio", "Ended sessions that reached the step and ended there", STEP_LABELS
            ),
            "conversions_lost": gauge(
                "step_conversions_lost", "Goal conversions lost at the step vs its baseline", STEP_LABELS
            ),
        }
        self.w_goal = gauge("goal_conversion_ratio", "Ended sessions that reached a goal step", ("journey",))
        self.w_queue = {
            name: gauge(f"contacts_{name}", f"Contacts {name.replace('_', ' ')}", QUEUE_LABELS)
            for name in ("offered", "answered", "abandoned", "short_abandoned", "repeat_contacts", "channel_switches")
        }
        self.w_queue_ratio = {
            "abandonment_ratio": gauge(
                "contacts_abandonment_ratio", "abandoned / (answered + abandoned)", QUEUE_LABELS
            ),
            "average_speed_of_answer": gauge(
                "contacts_average_speed_of_answer_seconds", "Mean wait of answered contacts", QUEUE_LABELS
            ),
            "service_level": gauge(
                "contacts_service_level_ratio",
                "Answered within the service level / (answered + abandoned)",
                QUEUE_LABELS,
            ),
        }
        self.w_feedback = gauge("feedback_score", "CSAT share 0-1, NPS -100..100 or CES mean 1-7", FEEDBACK_LABELS)
        self.w_responses = gauge("feedback_responses", "Survey answers", FEEDBACK_LABELS)
        self.w_end = gauge("end_timestamp_seconds", "End of the window", ("source", "group"))
        detector_labels = (*FEEDBACK_LABELS, "metric")

        def detector_gauge(name: str, help_text: str) -> Gauge:
            return Gauge(f"frictionwatch_detector_{name}", help_text, detector_labels, registry=registry)

        self.d_observed = detector_gauge("observed", "The metric's value in the latest final window")
        self.d_expected = detector_gauge("expected", "The value the detector expected")
        self.d_lower = detector_gauge("lower", "Lower edge of the expected band")
        self.d_upper = detector_gauge("upper", "Upper edge of the expected band")
        self.d_score = detector_gauge("score", "How unusual the window is in the bad direction, standard deviations")
        self.d_threshold = detector_gauge("threshold", "The score at which the detector flags a window")
        self.d_anomaly = detector_gauge("anomaly", "1 while the detector flags the series, else 0")
        self.d_volume = detector_gauge("volume", "Sessions or contacts the window's value rests on")
        self.w_partitions = gauge(
            "partitions_reported", "Partitions whose counts the window holds", ("source", "group")
        )

    # -- labels -----------------------------------------------------------------------------

    def step_labels(self, place: Touchpoint) -> tuple[str, str, str, str]:
        return (place.journey, self.stages.get((place.journey, place.step), ""), place.step, place.channel)

    def feedback_labels(self, place: Touchpoint) -> tuple[str, ...]:
        stage = self.stages.get((place.journey, place.step), "")
        return (place.journey, stage, place.step, place.channel, place.queue, place.survey)

    def _initialise(self) -> None:
        for journey, step, channel in self.journey_map.touchpoints():
            labels = (journey, step.stage, step.name, channel)
            for metric in (*self.step_counters.values(), self.step_time, *self.w_step.values()):
                metric.labels(*labels)
            for survey in step.surveys:
                self._initialise_feedback((journey, step.stage, step.name, channel, "", survey))
                self._initialise_feedback((journey, step.stage, step.name, "", "", survey))
        for journey in self.journey_map.journeys:
            self.w_goal.labels(journey)
        for channel, queue in self.journey_map.queues():
            for metric in (*self.queue_counters.values(), *self.w_queue.values(), *self.w_queue_ratio.values()):
                metric.labels(channel, queue)
            for outcome in ("answered", "abandoned"):
                self.wait.labels(channel, queue, outcome)
            for survey in self.journey_map.contact_channels[channel].surveys:
                self._initialise_feedback(("", "", "", channel, queue, survey))

    def _initialise_feedback(self, labels: tuple[str, ...]) -> None:
        for metric in (*self.feedback_counters.values(), self.w_feedback, self.w_responses):
            metric.labels(*labels)

    # -- stage 1: counters, histograms, health ---------------------------------------------

    def count_window(self, kind: str, topic: str, window: Window) -> None:
        """Add a closed window's amounts to the counters of its touchpoints."""
        for place, fields in window.counts.items():
            children = self._window_children.get((kind, place))
            if children is None:
                children = self._window_children[(kind, place)] = {}
            for name, amount in fields.items():
                if not amount:
                    continue
                if name not in children:
                    children[name] = self._window_counter(kind, place, name)
                child = children[name]
                if child is not None:
                    child.inc(amount)
        self.close_delay.labels(topic).set(self.clock() - window.end)

    def _window_counter(self, kind: str, place: Touchpoint, name: str) -> Counter | None:
        """The counter child a closed window's amount ``name`` at ``place`` goes to (None: not counted)."""
        if kind == "clicks":
            labels: tuple[str, ...] = self.step_labels(place)
            counters = self.step_counters
        elif kind == "feedback":
            labels, counters = self.feedback_labels(place), self.feedback_counters
        else:
            labels, counters = (place.channel, place.queue), self.queue_counters
        counter = counters.get(name)
        return counter.labels(*labels) if counter is not None else None

    def observe_step_time(self, observation: StepObservation) -> None:
        key = (observation.journey, observation.step, observation.channel)
        child = self._step_time_children.get(key)
        if child is None:
            stage = self.stages.get((observation.journey, observation.step), "")
            labels = (observation.journey, stage, observation.step, observation.channel)
            child = self._step_time_children[key] = self.step_time.labels(*labels)
        child.observe(observation.seconds)

    def observe_wait(self, place: Touchpoint, outcome: str, seconds: float) -> None:
        key = (place.channel, place.queue, outcome)
        child = self._wait_children.get(key)
        if child is None:
            child = self._wait_children[key] = self.wait.labels(*key)
        child.observe(seconds)

    def partition_progress(self, topic: str, partition: int, watermark: float) -> None:
        """The partition's watermark and how far behind the wall clock it was at this record (called
        per record: kept in a :class:`PartitionProgress` that the gauges read when scraped, not set
        through the gauges' locks)."""
        progress = self._partitions.get((topic, partition))
        if progress is None:
            labels = (topic, str(partition))
            progress = self._partitions[topic, partition] = PartitionProgress(self.lag.labels(*labels))
            self.watermark.labels(*labels).set_function(progress.read_watermark)
            self.watermark_delay.labels(*labels).set_function(progress.read_delay)
        if math.isfinite(watermark):
            progress.watermark = watermark
            progress.delay = self.clock() - watermark

    def consumer_lag(self, topic: str, partition: int, lag: int) -> None:
        self.partition_progress(topic, partition, -math.inf)
        self._partitions[topic, partition].lag.set(lag)

    def forget_partition(self, topic: str, partition: int) -> None:
        """Drop the partition's watermark, watermark delay and lag series: another worker owns it now,
        and a frozen value left here would be summed with the owner's (lag) or read as a stall."""
        if self._partitions.pop((topic, partition), None) is None:
            return
        for gauge in (self.watermark, self.watermark_delay, self.lag):
            gauge.remove(topic, str(partition))

    # -- detectors ---------------------------------------------------------------------------

    def findings(self, findings: list[Finding]) -> None:
        """Export each detector's latest verdict."""
        for finding in findings:
            children = self._finding_children.get((finding.place, finding.metric))
            if children is None:
                journey, step, channel, queue, survey = finding.place
                labels = (journey, self.stages.get((journey, step), ""), step, channel, queue, survey, finding.metric)
                gauges = (self.d_observed, self.d_expected, self.d_lower, self.d_upper, self.d_score, self.d_anomaly)
                children = tuple(gauge.labels(*labels) for gauge in (*gauges, self.d_volume, self.d_threshold))
                self._finding_children[(finding.place, finding.metric)] = children
            verdict = finding.verdict
            observed, expected, lower, upper, score, anomaly, volume, threshold = children
            observed.set(verdict.observed)
            expected.set(verdict.expected)
            lower.set(verdict.lower)
            upper.set(verdict.upper)
            score.set(verdict.score)
            anomaly.set(1.0 if verdict.anomaly else 0.0)
            volume.set(_value(verdict.volume))
            threshold.set(finding.threshold)

    # -- stage 2: gauges of final windows ---------------------------------------------------

    def final_window(self, kind: str, window: FinalWindow) -> None:
        """Set the gauges of the window's touchpoints (all of the group's, zero where it saw none)."""
        self.windows_final.labels(window.source, str(window.complete).lower()).inc()
        self.w_end.labels(window.source, window.group).set(window.end)
        self.w_partitions.labels(window.source, window.group).set(window.partitions_reported)
        if kind == "clicks":
            self._final_steps(window)
        elif kind == "contacts" or kind == "touches":
            self._final_queues(window, kind)
        elif kind == "feedback":
            for place, fields in window.counts.items():
                labels = self.feedback_labels(place)
                self.w_responses.labels(*labels).set(fields.get("responses", 0.0))
                self.w_feedback.labels(*labels).set(_value(feedback_scores(place.survey, fields)))

    def _final_steps(self, window: FinalWindow) -> None:
        journey = self.journey_map.journeys.get(window.group)
        if journey is None:
            return
        empty: dict[str, float] = {}
        conversions = sum(f.get("conversions", 0.0) for f in window.counts.values())
        ended = sum(f.get("sessions_ended", 0.0) for f in window.counts.values())
        self.w_goal.labels(journey.name).set(_value(ratio(conversions, ended)))
        reached = {
            step.name: sum(window.counts.get(Touchpoint(journey.name, step.name, c), empty).get("ended_reached", 0.0)
                           for c in step.channels)
            for step in journey.steps
        }  # fmt: skip
        for step in journey.steps:
            following = journey.steps[step.index + 1] if step.index + 1 < len(journey.steps) else None
            # the share of sessions past this step that convert: what one more session moving on is worth
            downstream = min(1.0, ratio(conversions, reached[following.name]) or 0.0) if following else 0.0
            for channel in step.channels:
                place = Touchpoint(journey.name, step.name, channel)
                fields = window.counts.get(place, empty)
                labels = (journey.name, step.stage, step.name, channel)
                for name in ("sessions_entered", "errors", "rage_clicks", "backtracks"):
                    self.w_step[name].labels(*labels).set(fields.get(name, 0.0))
                ratios = step_ratios(fields)
                for name, value in ratios.items():
                    self.w_step[name].labels(*labels).set(_value(value))
                key = f"{journey.name}/{step.name}/{channel}"
                lost = self.baseline.conversions_lost(
                    key, fields.get("ended_reached", 0.0), ratios["step_conversion"], downstream
                )
                self.w_step["conversions_lost"].labels(*labels).set(lost)
                self.baseline.update(key, ratios["step_conversion"])

    def _final_queues(self, window: FinalWindow, kind: str) -> None:
        channel = self.journey_map.contact_channels.get(window.group)
        if channel is None:
            return
        empty: dict[str, float] = {}
        names = ("repeat_contacts", "channel_switches") if kind == "touches" else tuple(self.w_queue)[:4]
        for queue in channel.queues:
            fields = window.counts.get(Touchpoint(channel=channel.name, queue=queue), empty)
            labels = (channel.name, queue)
            for name in names:
                self.w_queue[name].labels(*labels).set(fields.get(name, 0.0))
            if kind == "contacts":
                for name, value in contact_ratios(fields).items():
                    if name in self.w_queue_ratio:
                        self.w_queue_ratio[name].labels(*labels).set(_value(value))
