"""Prometheus metrics of ingestion: what was read, processed, dead-lettered and re-routed.

For every input topic these add up, at any moment and across restarts of the counters'
process (they are per worker; sum them across workers in PromQL)::

    frictionwatch_events_received_total
        == frictionwatch_events_processed_total
         + sum by (topic) (frictionwatch_events_deadlettered_total)
         + frictionwatch_events_rerouted_total

Device clocks are measured on the way in (streams/eventtime.py): how far off they were, per
topic and channel, and how many event times were corrected for it.

Tests pass their own ``CollectorRegistry``; nothing is registered globally.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from frictionwatch import __version__
from frictionwatch.contract import Reason
from frictionwatch.streams.eventtime import ClockReading

#: Bucket bounds (seconds) of how far off device clocks are; alerts/rules/pipeline.yml reads le="60".
SKEW_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 6 * 3600, 86400)


class IngestMetrics:
    """Counters of the ingestion path, pre-initialised for every topic and reason (and, for
    the clock series, every channel of ``channels``: topic -> channel names, "" included
    where events may name none)."""

    def __init__(
        self,
        registry: CollectorRegistry,
        topics: Iterable[str],
        channels: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        self.records_consumed = Counter(
            "frictionwatch_records_consumed",
            "Kafka records read from an input topic (an array record counts once).",
            ["topic"],
            registry=registry,
        )
        self.events_received = Counter(
            "frictionwatch_events_received",
            "Events read: elements of array records, single events, and records that could not be split (one each).",
            ["topic"],
            registry=registry,
        )
        self.events_processed = Counter(
            "frictionwatch_events_processed",
            "Events that passed validation and were processed by this worker.",
            ["topic"],
            registry=registry,
        )
        self.events_deadlettered = Counter(
            "frictionwatch_events_deadlettered",
            "Events (or unsplittable records) sent to the dead-letter topic, by reason.",
            ["topic", "reason"],
            registry=registry,
        )
        self.events_rerouted = Counter(
            "frictionwatch_events_rerouted",
            "Valid events found on the wrong partition for their key and re-sent to the right one.",
            ["topic"],
            registry=registry,
        )
        self.clock_skew = Histogram(
            "frictionwatch_clock_skew_seconds",
            "How far off device clocks were (either way), for events where it could be measured: "
            "from sent_ts, or a ts ahead of the record's arrival (then a lower bound).",
            ["topic", "channel"],
            buckets=SKEW_BUCKETS,
            registry=registry,
        )
        self.time_corrected = Counter(
            "frictionwatch_events_time_corrected",
            "Events whose event time was corrected because their device's clock was off by more than "
            "clock_tolerance: direction ahead (fast) or behind (slow, known only from sent_ts).",
            ["topic", "channel", "direction"],
            registry=registry,
        )
        self.build_info = Gauge(
            "frictionwatch_build_info",
            "Always 1; the version label says which frictionwatch runs.",
            ["version"],
            registry=registry,
        )
        self.build_info.labels(__version__).set(1)
        #: topic -> its children of records_consumed, events_received and events_processed
        self._read: dict[str, tuple[Counter, Counter, Counter]] = {}
        #: (topic, channel) -> its clock_skew child
        self._skew: dict[tuple[str, str], Histogram] = {}
        for topic in topics:
            for counter in (self.records_consumed, self.events_received, self.events_processed, self.events_rerouted):
                counter.labels(topic)
            for reason in Reason:
                self.events_deadlettered.labels(topic, reason.value)
            for channel in (channels or {}).get(topic, ()):
                self.clock_skew.labels(topic, channel)
                for direction in ("ahead", "behind"):
                    self.time_corrected.labels(topic, channel, direction)

    def record_read(self, topic: str, received: int, processed: int) -> None:
        """Count one record read from ``topic``: the events it held, and those processed."""
        children = self._read.get(topic)
        if children is None:
            labels = self.records_consumed.labels, self.events_received.labels, self.events_processed.labels
            children = self._read[topic] = (labels[0](topic), labels[1](topic), labels[2](topic))
        consumed, events_received, events_processed = children
        consumed.inc()
        events_received.inc(received)
        events_processed.inc(processed)

    def clocks(self, topic: str, readings: Iterable[ClockReading]) -> None:
        """Record the device clocks measured in one record's events."""
        for reading in readings:
            skew = self._skew.get((topic, reading.channel))
            if skew is None:
                skew = self._skew[(topic, reading.channel)] = self.clock_skew.labels(topic, reading.channel)
            skew.observe(abs(reading.offset))
            if reading.corrected:
                direction = "ahead" if reading.offset > 0 else "behind"
                self.time_corrected.labels(topic, reading.channel, direction).inc()
