"""The second stage: partial windows from every partition, reduced to final windows (no I/O).

Each input partition closes its windows on its own watermark (stage 1) and publishes
what it counted as one :class:`Partial` per touchpoint *group* (a journey, a contact
channel) to the internal windows topic, keyed by group, empty windows included. The
worker that owns a group's partition of that topic merges the partials of a window into a
:class:`FinalWindow` once every partition of the source has reported it. A partition
that has not is waited for while it is alive: it is given up for this window only when it
has reported a later window (it had no events in this one), or when nothing came from it
for ``max_wait`` seconds (wall clock): a partition with no events closes no windows, and
must not hold every window back. A partition that is merely behind (a backlog after a
restart) is not given up, so windows stay complete and their ratios are not computed from
a few partitions. The final window says how many partitions it covers; a partial
arriving after that is counted as late.

So ratios are computed from complete counts, once, by one worker: the gauges of the
latest window and the anomaly detectors see every partition's sessions, whichever
worker counted them. Counters need none of this: each worker exports its own and
PromQL sums them (docs/metrics.md).

>>> reducer = WindowReducer(max_wait=30)
>>> place = Touchpoint("purchase", "cart", "web")
>>> part = lambda p, n: Partial("journey.clicks", p, 2, "purchase", 0.0, 60.0, {place: {"step_visits": n}})
>>> reducer.add(part(0, 5.0), now=1000.0)
[]
>>> [(w.start, w.counts[place]["step_visits"], w.partitions_reported) for w in reducer.add(part(1, 2.0), now=1001.0)]
[(0.0, 7.0, 2)]
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from frictionwatch.streams.windows import MAX_EXAMPLES, FieldCounts, Touchpoint, Window

PARTIAL_SCHEMA = 1


def group_of(touchpoint: Touchpoint) -> str:
    """The group a touchpoint's windows are reduced in: its journey, else its contact channel."""
    return touchpoint.journey or touchpoint.channel


@dataclass(frozen=True, slots=True)
class Partial:
    """What one partition of ``source`` counted for one group in window [start, end)."""

    source: str
    partition: int
    partitions: int
    group: str
    start: float
    end: float
    counts: Mapping[Touchpoint, Mapping[str, float]]
    examples: Mapping[Touchpoint, Sequence[str]] = field(default_factory=dict)

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "partial_schema": PARTIAL_SCHEMA,
                "source": self.source,
                "partition": self.partition,
                "partitions": self.partitions,
                "group": self.group,
                "start": self.start,
                "end": self.end,
                "counts": [[*place, dict(fields)] for place, fields in self.counts.items()],
                "examples": [[*place, list(ids)] for place, ids in self.examples.items()],
            }
        )

    @classmethod
    def from_json(cls, data: bytes) -> Partial:
        return cls.from_doc(orjson.loads(data))

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Partial:
        """From a decoded record of the windows topic."""
        if doc.get("partial_schema") != PARTIAL_SCHEMA:
            raise ValueError(f"unsupported partial_schema {doc.get('partial_schema')!r}")
        counts = {Touchpoint(*row[:5]): {str(k): float(v) for k, v in row[5].items()} for row in doc["counts"]}
        examples = {Touchpoint(*row[:5]): [str(i) for i in row[5]] for row in doc.get("examples", [])}
        return cls(
            str(doc["source"]), int(doc["partition"]), int(doc["partitions"]), str(doc["group"]),
            float(doc["start"]), float(doc["end"]), counts, examples,
        )  # fmt: skip


def split_by_group(
    source: str, partition: int, partitions: int, window: Window, groups: Iterable[str]
) -> list[Partial]:
    """One Partial per group of ``groups`` (empty ones too), from one closed window."""
    by_group: dict[str, dict[Touchpoint, FieldCounts]] = {group: {} for group in groups}
    for place, fields in window.counts.items():
        by_group.setdefault(group_of(place), {})[place] = fields
    examples: dict[str, dict[Touchpoint, list[str]]] = {}
    for place, ids in window.examples.items():
        examples.setdefault(group_of(place), {})[place] = ids
    return [
        Partial(source, partition, partitions, group, window.start, window.end, found, examples.get(group, {}))
        for group, found in by_group.items()
    ]


@dataclass(slots=True)
class FinalWindow:
    """A window of one group with every partition's counts merged."""

    source: str
    group: str
    start: float
    end: float
    partitions: int
    partitions_reported: int = 0
    counts: dict[Touchpoint, FieldCounts] = field(default_factory=lambda: defaultdict(lambda: defaultdict(float)))
    examples: dict[Touchpoint, list[str]] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return self.partitions_reported >= self.partitions


@dataclass(slots=True)
class _Pending:
    window: FinalWindow
    first_seen: float
    reported: set[int] = field(default_factory=set)


@dataclass(slots=True)
class _Progress:
    """Of one (source, group): each partition's latest window start and when it was last heard."""

    latest: dict[int, float] = field(default_factory=dict)
    heard: dict[int, float] = field(default_factory=dict)

    def given_up(self, partition: int, start: float, since: float, now: float, max_wait: float) -> bool:
        """Whether window ``start`` waits no longer for ``partition``: it is past it, or silent."""
        if self.latest.get(partition, float("-inf")) > start:
            return True
        return now - max(self.heard.get(partition, float("-inf")), since) >= max_wait


class WindowReducer:
    """Merges partials into final windows, in window order per (source, group).

    Args:
        max_wait: seconds (wall clock) a window waits for its missing partitions.
    """

    def __init__(self, max_wait: float = 30.0) -> None:
        self.max_wait = max_wait
        self.pending: dict[tuple[str, str], dict[float, _Pending]] = {}
        self.progress: dict[tuple[str, str], _Progress] = {}
        self.final_before: dict[tuple[str, str], float] = {}
        self.late_partials = 0
        self.duplicate_partials = 0

    def add(self, partial: Partial, now: float) -> list[FinalWindow]:
        """Take one partial received at ``now``; return the windows made final, oldest first."""
        stream = (partial.source, partial.group)
        progress = self.progress.setdefault(stream, _Progress())
        progress.heard[partial.partition] = now
        progress.latest[partial.partition] = max(partial.start, progress.latest.get(partial.partition, partial.start))
        if partial.start < self.final_before.get(stream, float("-inf")):
            self.late_partials += 1
            return []
        windows = self.pending.setdefault(stream, {})
        pending = windows.get(partial.start)
        if pending is None:
            window = FinalWindow(partial.source, partial.group, partial.start, partial.end, partial.partitions)
            pending = windows[partial.start] = _Pending(window, now)
        if partial.partition in pending.reported:
            self.duplicate_partials += 1  # re-delivered after a restart: already merged
            return []
        pending.reported.add(partial.partition)
        pending.window.partitions_reported = len(pending.reported)
        for place, fields in partial.counts.items():
            merged = pending.window.counts[place]
            for name, amount in fields.items():
                merged[name] += amount
        for place, ids in partial.examples.items():
            kept = pending.window.examples.setdefault(place, [])
            kept.extend(ids[: MAX_EXAMPLES - len(kept)])
        return self._release(stream, now)

    def expire(self, now: float) -> list[FinalWindow]:
        """Windows whose wait for missing partitions is over (call it every few seconds)."""
        return [window for stream in list(self.pending) for window in self._release(stream, now)]

    def _release(self, stream: tuple[str, str], now: float) -> list[FinalWindow]:
        windows = self.pending[stream]
        progress = self.progress[stream]
        due = [
            start
            for start, item in windows.items()
            if item.window.complete
            or all(
                progress.given_up(partition, start, item.first_seen, now, self.max_wait)
                for partition in range(item.window.partitions)
                if partition not in item.reported
            )
        ]
        if not due:
            return []
        last = max(due)  # everything before a final window is final too: windows leave in order
        final = [windows.pop(start).window for start in sorted(start for start in windows if start <= last)]
        self.final_before[stream] = final[-1].end
        return final
