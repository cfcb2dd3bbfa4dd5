"""Wiring of the friction stages, free of Faust: what to do with each batch, and what to send.

    input partition --events--> stage 1 (per-partition state) --closed windows--> counters
                                        |                     \\--partials by group--> windows topic
                                        \\--customer touches--> touches topic --> stage 1 (continuity)
    windows topic --partials--> stage 2 (reducer) --final windows--> gauges (and detectors)

The evidence path runs beside the windows: stage 1 sends each partition's evidence about
every second of event time (streams/evidence.py), on the windows topic keyed by group, and
stage 2 applies it as it comes (detectors/evidence.py), without waiting for other partitions.

Every method returns the records to publish as :class:`Outbound`; the Faust agents send
them, attached to the record being processed, so they go out before its offset commits.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from frictionwatch.contract import Event
from frictionwatch.detectors.bank import DetectorBank, Finding
from frictionwatch.detectors.evidence import bank_for
from frictionwatch.journeymap import JourneyMap
from frictionwatch.partitioning import partition_for
from frictionwatch.streams.dedup import RecentEventIds
from frictionwatch.streams.evidence import EvidenceRecord, Hazard, split_evidence
from frictionwatch.streams.exposition import FrictionMetrics
from frictionwatch.streams.reduce import FinalWindow, Partial, WindowReducer, group_of, split_by_group
from frictionwatch.streams.series import observations
from frictionwatch.streams.sessions import DwellQuantile
from frictionwatch.streams.stage import Output, SourceKind, StageSettings, Touch, TouchState, groups_of, new_state
from frictionwatch.streams.windows import Touchpoint

#: the key of a group's evidence state within its checkpoint (a place of 5 parts and a metric no
#: detector has, so that DetectorBank.restore passes over it)
EVIDENCE_STATE = "/////@evidence"
#: the key of a group's open incidents within its checkpoint (streams/app.py; alike)
ALERT_STATE = "/////@alerts"

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Outbound:
    """A record to publish: topic, key, value (partition chosen by the key)."""

    topic: str
    key: bytes
    value: bytes


class Friction:
    """Stage 1 and stage 2 of one worker.

    Args:
        journey_map: touchpoints and their groups.
        metrics: where counters, histograms and gauges go.
        kinds: input topic name -> what it carries (clicks, contacts, feedback, touches).
        partitions: partition count of every topic involved.
        windows_topic: where partial windows go (keyed by group).
        touches_topic: where customer touches go (keyed by customer id).
        settings: window and metric settings.
        max_wait: see :class:`~frictionwatch.streams.reduce.WindowReducer`.
        clock: wall clock, for how long windows wait for missing partitions.
    """

    def __init__(
        self,
        journey_map: JourneyMap,
        metrics: FrictionMetrics,
        kinds: dict[str, SourceKind],
        partitions: dict[str, int],
        *,
        windows_topic: str,
        touches_topic: str,
        settings: StageSettings | None = None,
        max_wait: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.journey_map = journey_map
        self.metrics = metrics
        self.kinds = kinds
        self.partitions = partitions
        self.windows_topic = windows_topic
        self.touches_topic = touches_topic
        self.settings = settings or StageSettings()
        self.states: dict[tuple[str, int], object] = {}
        self.learned_dwell: dict[tuple[str, str], DwellQuantile] = {}  # shared by the click partitions
        self.hazards: dict[tuple[Touchpoint, str], Hazard] = {}  # the evidence path's, shared likewise
        self.recent: dict[tuple[str, int], RecentEventIds] = {}  # event ids seen, per input partition
        self.groups = {topic: groups_of(kind, journey_map) for topic, kind in kinds.items()}
        self.reducer = WindowReducer(max_wait)
        self.clock = clock
        self.detectors = DetectorBank(journey_map)
        self.on_findings: Callable[[FinalWindow, list[Finding]], None] | None = None
        self.evidence = bank_for(journey_map, self.detectors)
        #: called with (when its evidence began, finding) for what the evidence path found
        self.on_evidence: Callable[[list[tuple[float, Finding]]], None] | None = None
        self.source_kind = dict(kinds)
        for topic in kinds:  # every series exists from start-up
            for counter in (
                metrics.late,
                metrics.duplicates,
                metrics.refetched,
                metrics.rebuilt_records,
                metrics.rebuild_seconds,
            ):
                counter.labels(topic)

    # -- stage 1 ------------------------------------------------------------------------------

    def events(self, topic: str, partition: int, events: Sequence[Event]) -> list[Outbound]:
        """Feed one record's validated events of an input topic."""
        state = self._state(topic, partition)
        fresh = self._fresh(topic, partition, events)
        if len(fresh) < len(events):
            self.metrics.duplicates.labels(topic).inc(len(events) - len(fresh))
        out = Output()
        state.add(fresh, out)  # type: ignore[attr-defined]
        return self._finish(topic, partition, state.windows.watermark, out)  # type: ignore[attr-defined]

    def rebuild(self, topic: str, partition: int, events: Sequence[Event]) -> None:
        """Feed events replayed to rebuild a partition's state: nothing is counted or published.

        Their windows, counters and touches were published by the partition's previous owner
        before it committed their offsets (see :mod:`~frictionwatch.streams.recovery`).
        """
        self._state(topic, partition).add(self._fresh(topic, partition, events), Output())  # type: ignore[attr-defined]

    def rebuild_touches(self, partition: int, values: Sequence[bytes]) -> None:
        """The customer-touches counterpart of :meth:`rebuild`."""
        state = self._state(self.touches_topic, partition)
        assert isinstance(state, TouchState)
        touches = []
        for value in values:
            try:
                touches += Touch.many_from_json(value)
            except (ValueError, TypeError, IndexError):
                continue  # logged when it was first read
        state.add(touches, Output())

    def watermark(self, topic: str, partition: int) -> float:
        """The partition's watermark (latest event time), -inf before its first event."""
        state = self.states.get((topic, partition))
        return state.windows.watermark if state is not None else float("-inf")  # type: ignore[attr-defined]

    def _fresh(self, topic: str, partition: int, events: Sequence[Event]) -> Sequence[Event]:
        """The events whose ids this partition has not seen within the dedup horizon."""
        recent = self.recent.get((topic, partition))
        if recent is None:
            recent = self.recent[(topic, partition)] = RecentEventIds(
                self.settings.dedup_horizon, self.settings.dedup_max_ids
            )
        return recent.fresh(events)

    def touches(self, partition: int, values: Sequence[bytes]) -> list[Outbound]:
        """Feed records of the customer-touches topic."""
        state = self._state(self.touches_topic, partition)
        assert isinstance(state, TouchState)
        touches = []
        for value in values:
            try:
                touches += Touch.many_from_json(value)
            except (ValueError, TypeError, IndexError) as error:  # written by us: a bug or a foreign producer
                log.error("skipping a malformed customer touch on %s[%d]: %s", self.touches_topic, partition, error)
        out = Output()
        state.add(touches, out)
        return self._finish(self.touches_topic, partition, state.windows.watermark, out)

    def _state(self, topic: str, partition: int) -> object:
        key = (topic, partition)
        state = self.states.get(key)
        if state is None:
            state = self.states[key] = new_state(
                self.kinds[topic], self.journey_map, self.settings, self.learned_dwell, self.hazards, self.clock
            )
        return state

    def _finish(self, topic: str, partition: int, watermark: float, out: Output) -> list[Outbound]:
        metrics, kind = self.metrics, self.kinds[topic]
        outbound: list[Outbound] = []
        for window in out.closed:
            metrics.count_window(kind, topic, window)
            for partial in split_by_group(topic, partition, self.partitions[topic], window, self.groups[topic]):
                outbound.append(Outbound(self.windows_topic, partial.group.encode(), partial.to_json()))
        if out.evidence:
            until, examples = out.evidence_until, out.evidence_examples
            for record in split_evidence(topic, partition, until, out.evidence, examples, group_of):
                outbound.append(Outbound(self.windows_topic, record.group.encode(), record.to_json()))
        if out.touches:  # one record per partition of the touches topic: each is a Kafka round trip
            packed: dict[int, list[Touch]] = {}
            count = self.partitions[self.touches_topic]
            for touch in out.touches:
                packed.setdefault(partition_for(touch.customer_id.encode(), count), []).append(touch)
            for touches in packed.values():  # keyed by the first customer: the same partition as the others
                parts = [touch.to_json() for touch in touches]
                value = parts[0] if len(parts) == 1 else b"[" + b",".join(parts) + b"]"
                outbound.append(Outbound(self.touches_topic, touches[0].customer_id.encode(), value))
        for observation in out.step_times:
            metrics.observe_step_time(observation)
        for place, outcome, seconds in out.waits:
            metrics.observe_wait(place, outcome, seconds)
        if out.late:
            metrics.late.labels(topic).inc(out.late)
        metrics.partition_progress(topic, partition, watermark)
        return outbound

    def revoke(self, topic: str, partition: int) -> None:
        """Forget a partition this worker no longer owns, and its per-partition gauges."""
        self.states.pop((topic, partition), None)
        self.recent.pop((topic, partition), None)
        self.metrics.forget_partition(topic, partition)

    def state_sizes(self) -> dict[str, int]:
        sizes = {"sessions": 0, "contacts": 0, "customers": 0}
        names = {"clicks": "sessions", "contacts": "contacts", "touches": "customers"}
        for (topic, _), state in self.states.items():
            name = names.get(self.kinds[topic])
            if name is not None:
                sizes[name] += len(state)  # type: ignore[arg-type]
        return sizes

    # -- stage 2 ------------------------------------------------------------------------------

    def partial(self, value: bytes) -> set[str]:
        """Reduce one partial window (or apply a partition's evidence); publish the windows that
        became final; return their groups."""
        try:
            doc = orjson.loads(value)
            if isinstance(doc, dict) and "evidence_schema" in doc:
                self._evidence_record(EvidenceRecord.from_doc(doc), publish=True)
                return set()
            partial = Partial.from_doc(doc)
        except (ValueError, KeyError, TypeError, IndexError) as error:
            log.error("skipping a malformed partial window: %s", error)
            return set()
        late_before = self.reducer.late_partials
        groups = self._publish(self.reducer.add(partial, self.clock()))
        if self.reducer.late_partials > late_before:
            self.metrics.partials_late.inc()
        return groups

    def rebuild_partials(self, values: Sequence[bytes]) -> None:
        """Replayed partials of the windows topic: rebuild the windows waiting for partitions.

        Windows they make final were published by the previous owner; nothing is published.
        """
        for value in values:
            try:
                doc = orjson.loads(value)
                if isinstance(doc, dict) and "evidence_schema" in doc:
                    self._evidence_record(EvidenceRecord.from_doc(doc), publish=False)
                else:
                    self.reducer.add(Partial.from_doc(doc), self.clock())
            except (ValueError, KeyError, TypeError, IndexError):
                continue  # logged when it was first read

    def _evidence_record(self, record: EvidenceRecord, *, publish: bool) -> None:
        findings = self.evidence.add(record)
        if findings:
            self.metrics.findings(findings)  # the detector gauges, at each change of the series
        if publish and findings and self.on_evidence is not None:
            self.on_evidence([(self.evidence.since(finding), finding) for finding in findings])

    def group_state(self, group: str) -> dict[str, Any]:
        """What one group's detectors and evidence series learned: its checkpoint."""
        return {**self.detectors.state(group), group + EVIDENCE_STATE: self.evidence.state(group)}

    def restore_group(self, state: dict[str, Any]) -> int:
        """Take back a checkpoint from :meth:`group_state`; how many detectors and series were restored."""
        restored = self.detectors.restore(state)
        for key, learned in state.items():
            if key.endswith(EVIDENCE_STATE) and isinstance(learned, dict):
                try:
                    restored += self.evidence.restore(learned)
                except (ValueError, KeyError, TypeError) as error:
                    log.warning("could not restore the evidence state %s: %s", key, error)
        return restored

    def tick(self) -> set[str]:
        """Finalise windows that waited long enough for missing partitions (call every few seconds)."""
        return self._publish(self.reducer.expire(self.clock()))

    def _publish(self, windows: list[FinalWindow]) -> set[str]:
        for window in windows:
            kind = self.kinds.get(window.source, "clicks")
            self.metrics.final_window(kind, window)
            findings = self.detectors.observe(observations(kind, window))
            self.metrics.findings(findings)
            if self.on_findings is not None and findings:
                self.on_findings(window, findings)
        return {window.group for window in windows}
