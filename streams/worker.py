"""Running a worker process: topics, the /metrics endpoint, then the Faust worker."""

from __future__ import annotations

import logging
import signal
import sys
import time

import faust
from prometheus_client import CollectorRegistry, ProcessCollector, disable_created_metrics, start_http_server

from frictionwatch.journeymap import JourneyMapWatcher, load_journey_map
from frictionwatch.kafka import KafkaUnavailable, ensure_topics
from frictionwatch.settings import Settings
from frictionwatch.streams.app import build_app, table_changelogs
from frictionwatch.streams.loop import marks_topic
from frictionwatch.streams.outage_log import install as install_broker_error_digest

log = logging.getLogger(__name__)


def wait_for_topics(settings: Settings, wait: float) -> dict[str, int]:
    """Create/inspect the topics, retrying while the brokers are unreachable for up to ``wait`` s."""
    names = [*settings.topics.values(), settings.topic_deadletter, settings.topic_windows, settings.topic_touches]
    deadline = time.monotonic() + wait
    delay = 0.5
    while True:
        try:
            timeout = min(10.0, max(1.0, wait))
            partitions = ensure_topics(settings, names, timeout=timeout)
            # the changelogs too, before Faust: it reads their partition count once, at the first record
            compacted = table_changelogs(settings, partitions)
            if settings.ingest == "direct":  # the loop's replay marks (streams/loop.py)
                compacted[marks_topic(settings)] = 1
            ensure_topics(settings, [], timeout=timeout, compacted=compacted)
            return partitions
        except KafkaUnavailable as error:
            if time.monotonic() + delay > deadline:
                raise
            log.warning("%s; retrying in %.1f s", error, delay)
            time.sleep(delay)  # back-off between connection attempts
            delay = min(delay * 2, 5.0)


def run_worker(settings: Settings, *, stop_after: float | None = None, broker_wait: float = 60.0) -> None:
    """Run one worker until SIGINT/SIGTERM (or ``stop_after`` seconds); blocks."""
    journey_map = load_journey_map(settings.journey_map or None)
    partitions = wait_for_topics(settings, broker_wait)
    disable_created_metrics()  # type: ignore[no-untyped-call]  # no *_created series: they only add noise to every counter
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)  # process_resident_memory_bytes, process_open_fds, CPU seconds
    server, _ = start_http_server(settings.metrics_port, addr=settings.metrics_host, registry=registry)
    print(
        f"frictionwatch worker: metrics on http://{settings.metrics_host}:{server.server_port}/metrics",
        file=sys.stderr,
        flush=True,
    )
    watcher = JourneyMapWatcher(settings.journey_map) if settings.journey_map else None
    if watcher is not None:
        signal.signal(signal.SIGHUP, lambda *_: watcher.request())  # `kill -HUP` reloads detector settings
    built = build_app(settings, journey_map, registry, partitions, stop_after=stop_after, watcher=watcher)
    worker = faust.Worker(built.app, loglevel=settings.log_level.upper(), quiet=True)
    # No terminal spinner: Faust sets the root logger to DEBUG to spin it on every log call, which
    # made every debug call in aiokafka and Faust build a LogRecord (~8% of a busy worker's time).
    worker.spinner = None
    install_broker_error_digest(settings.bootstrap_servers)  # aiokafka's ~65 errors/s of an outage: a line per 30 s
    try:
        worker.execute_from_commandline()
    finally:
        server.shutdown()
