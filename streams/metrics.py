"""Prometheus metrics of ingestion: what was read, processed, dead-lettered and re-routed.

For every input topic these add up, at any moment and across restarts of the counters'
process (they are per worker; sum them across workers in PromQL)::

    frictionwatch_events_received_total
        == frictionwatch_events_processed_total
         + sum by (topic) (frictionwatch_events_deadlettered_total)
         + frictionwatch_events_rerouted_total

Tests pass their own ``CollectorRegistry``; nothing is registered globally.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge

from frictionwatch import __version__
from frictionwatch.contract import Reason


class IngestMetrics:
    """Counters of the ingestion path, pre-initialised for every topic and reason."""

    def __init__(self, registry: CollectorRegistry, topics: Iterable[str]) -> None:
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
        self.build_info = Gauge(
            "frictionwatch_build_info",
            "Always 1; the version label says which frictionwatch runs.",
            ["version"],
            registry=registry,
        )
        self.build_info.labels(__version__).set(1)
        for topic in topics:
            for counter in (self.records_consumed, self.events_received, self.events_processed, self.events_rerouted):
                counter.labels(topic)
            for reason in Reason:
                self.events_deadlettered.labels(topic, reason.value)
