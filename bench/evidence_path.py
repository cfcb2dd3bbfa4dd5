"""The evidence path on a detection benchmark traffic set: events fed through a worker's stages, alarms as rows.

The window contenders run over cached final windows (bench/sweep.py). The evidence path
judges events as they arrive (streams/evidence.py, detectors/evidence.py), so it needs the
events: the traffic set is generated again, with the same parameters, and every record is
fed as a worker gets it, through the worker's own stage 1 and stage 2 (:func:`build_friction`,
:data:`PARTITIONS` partitions a topic, each record of the windows topic handed to stage 2
at once). Records are decoded and validated as the worker does (:class:`RecordDecoder`,
device clocks corrected against the delivery time); the generator's malformed records go to
the dead-letter topic in a worker and are left out here. The worker's clock, which spaces
the evidence ticks and ends windows that wait for partitions, is the delivery time.

The evidence series' budgets are their window metrics' in the contender's journey map, so
the path is run once per traffic set and contender. An alarm runs from the finding that
starts it (its event time: when on-call would be paged) to the finding that says it is back
to normal (or the end of the traffic). The rows are cached beside the windows, in
``bench/results/cache/<traffic key>.evidence-<digest>.json``, the digest covering the
contender's map and the code of the generator, the stages and the detectors.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
from prometheus_client import CollectorRegistry

from bench.sweep import (
    CACHE,
    ROOT,
    AlertRow,
    Contender,
    TrafficSet,
    contender_map,
    generator_config,
    progress_lines,
)
from frictionwatch.backtest.scoring import evidence_alerts
from frictionwatch.contract import EventValidator
from frictionwatch.detectors.bank import Finding
from frictionwatch.generator.records import GeneratedRecord
from frictionwatch.generator.sinks import run
from frictionwatch.partitioning import partition_for
from frictionwatch.settings import Settings
from frictionwatch.streams.app import build_friction
from frictionwatch.streams.friction import Outbound
from frictionwatch.streams.ingest import RecordDecoder

PARTITIONS = 4  # a topic's partitions: evidence is judged per partition, its hazards learned per worker
TICK_EVERY = 1_000  # records between two calls of the worker's timer (windows waiting for partitions)
#: source whose change makes cached evidence alarms stale
CODE = ("frictionwatch/generator", "streams", "detectors", "frictionwatch/contract.py", "bench/evidence_path.py")


def cache_path(traffic: TrafficSet, contender: Contender, cache: Path = CACHE) -> Path:
    """Where the contender's evidence alarms on ``traffic`` are cached."""
    settings = [contender.settings, contender.overrides, contender.alternatives, contender.map_false_alarms]
    digest = hashlib.blake2b(json.dumps(settings, sort_keys=True).encode(), digest_size=8)  # not its name
    digest.update(traffic.map_path().read_bytes())
    for name in CODE:
        path = ROOT / name
        for source in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            digest.update(source.read_bytes())
    return cache / f"{traffic.key()}.evidence-{digest.hexdigest()}.json"


def evidence_alarms(traffic: TrafficSet, contender: Contender, cache: Path = CACHE, *, fresh: bool = False) -> Path:
    """Feed ``traffic`` through the worker's stages once (or read the cache); the cache file."""
    path = cache_path(traffic, contender, cache)
    if path.exists() and not fresh:
        return path
    rows, events, seconds = replay_evidence(traffic, contender)
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.parent / ".gitignore").write_text("*\n")  # a cache: never committed
    partial = path.with_suffix(".tmp")
    partial.write_bytes(orjson.dumps({"rows": rows, "events": events, "seconds": seconds}))
    partial.replace(path)
    return path


def load_rows(path: Path) -> tuple[list[AlertRow], int, float]:
    """The cached alert rows, the events fed and the seconds it took."""
    doc = orjson.loads(path.read_bytes())
    rows: list[AlertRow] = [
        ((place[0], place[1], place[2], place[3], place[4]), metric, start, end, findings)
        for place, metric, start, end, findings in doc["rows"]
    ]
    return rows, int(doc["events"]), float(doc["seconds"])


class _WorkerSink:
    """A generator sink (``frictionwatch.generator.sinks.Sink``) that feeds one worker's stages,
    record by record, as the worker gets them; it keeps what the evidence path found."""

    def __init__(self, traffic: TrafficSet, contender: Contender) -> None:
        journey_map = contender_map(traffic.map_path(), contender)
        settings = Settings.load(env={}, cli={})
        self.topics = {
            "clicks": settings.topic_clicks, "contacts": settings.topic_contacts, "feedback": settings.topic_feedback
        }  # fmt: skip
        self.windows_topic = settings.topic_windows
        counts = dict.fromkeys([*self.topics.values(), settings.topic_windows, settings.topic_touches], PARTITIONS)
        self.friction = build_friction(settings, journey_map, CollectorRegistry(), counts)
        self.now = traffic.start  # the delivery clock: the worker's clock here
        self.friction.clock = lambda: self.now
        self.found: list[Finding] = []
        self.friction.on_evidence = lambda findings: self.found.extend(finding for _, finding in findings)
        validator = EventValidator(journey_map)
        self.decoders = {
            kind: RecordDecoder(kind, validator, partitions=PARTITIONS)  # type: ignore[arg-type]
            for kind in self.topics
        }
        self.records: dict[str, int] = {}
        self.events = 0

    def write(self, record: GeneratedRecord) -> None:
        self.records[record.kind] = self.records.get(record.kind, 0) + 1
        if record.malformed is not None or not isinstance(record.value, dict):
            return  # the dead-letter path, not this bench
        self.now = max(self.now, record.ts)
        partition = partition_for(record.key.encode(), PARTITIONS) if record.key else 0
        decoded = self.decoders[record.kind].decode(orjson.dumps(record.value), partition, self.now, self.now)
        if decoded.events:
            self._deliver(self.friction.events(self.topics[record.kind], partition, decoded.events))
            self.events += len(decoded.events)
        if sum(self.records.values()) % TICK_EVERY == 0:
            self.friction.tick()

    def _deliver(self, items: list[Outbound]) -> None:
        for item in items:
            if item.topic == self.windows_topic:
                self.friction.partial(item.value)
            else:
                self._deliver(self.friction.touches(partition_for(item.key, PARTITIONS), [item.value]))

    def idle(self) -> None:
        pass

    def close(self) -> None:
        pass


def replay_evidence(
    traffic: TrafficSet, contender: Contender, *, report: bool = True
) -> tuple[list[AlertRow], int, float]:
    """Generate ``traffic`` and feed it through one worker's stages; its evidence alarms as
    alert rows, the events fed and the seconds it took."""
    config = generator_config(traffic)
    sink = _WorkerSink(traffic, contender)
    began = time.monotonic()
    run(sink.friction.journey_map, config, sink, progress_lines(f"evidence path on {traffic.label}", config, report))
    seconds = time.monotonic() - began
    rows = list(alarms_of(sink.found, traffic.start + traffic.days * 86400.0))
    if report:
        print(
            f"  evidence path on {traffic.label}: {sink.events:,} events, {len(rows)} alarms in {seconds:.0f} s",
            file=sys.stderr, flush=True,
        )  # fmt: skip
    return rows, sink.events, seconds


def alarms_of(findings: list[Finding], end: float) -> Iterator[AlertRow]:
    """The evidence findings of one run as alert rows (:func:`~frictionwatch.backtest.scoring.evidence_alerts`)."""
    for alert in evidence_alerts(findings, end):
        place = alert.place
        yield (place[0], place[1], place[2], place[3], place[4]), alert.metric, alert.start, alert.end, alert.windows
