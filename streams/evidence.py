"""The evidence path, stage 1: observed against expected counts per touchpoint, as events arrive (no I/O).

The window metrics wait for a window to close. The evidence path counts each event when it
arrives, and each second that a session or a caller keeps waiting. Per touchpoint it adds up,
between two evidence ticks of a partition (about a second of event time apart):

    ``step_progress``   sessions that moved on from the step (observed), against how many the
                        step's learned hazard of moving on expected in the time its visitors spent
                        there, those still there included; a visit that ends without moving on
                        (the session left, or went back) counts up to the progress timeout at once
    ``step_errors``     errors, against the step's visits times its learned errors per visit
    ``queue_answers``   callers answered, against how many the queue's learned hazard of being
                        answered expected in the time its callers spent waiting, those still
                        waiting included: a queue where nobody is answered is evidence before
                        anyone hangs up
    ``queue_abandons``  callers who hung up, likewise

An expected count is a sum of cumulative hazards. A visitor who has been at a step for ``d``
seconds was expected to move on ``H(d)`` times, where ``H`` adds up the step's hazard (moves
per second spent there, learned per dwell bucket as moves over seconds at risk, decayed with
a half-life of :data:`HALF_LIFE`). Against a hazard that fell to a fraction ``r`` of normal,
the log-likelihood ratio of what was seen is ``observed * log(r) + (1 - r) * expected``: a
visit that waits adds evidence every second, one that moves on takes some away. Observed and
expected counts add up over sessions, partitions and workers, so stage 2 merges them as they
come (:mod:`frictionwatch.detectors.evidence`).

>>> meter = EvidenceMeter({})
>>> step = Touchpoint("purchase", "payment", "web")
>>> for visit in range(40):                        # 40 visits moving on after 20 s each
...     meter.spent(step, "progress", since=visit * 30.0, until=visit * 30.0 + 20.0, cap=300.0, happened=True)
>>> meter.tick(1200.0, [])                         # learned, not judged yet: nothing to send
{}
>>> meter.spent(step, "progress", since=1200.0, until=1220.0, cap=300.0, happened=True)
>>> counts = meter.tick(1230.0, [(step, "progress", 1225.0, 300.0, "s-41")])  # one moved on, one is there for 5 s
>>> [round(amount, 2) for amount in counts[step]["step_progress"][:2]]   # observed, expected
[1.0, 0.37]
>>> counts = meter.tick(1260.0, [(step, "progress", 1225.0, 300.0, "s-41")])  # still there after 35 s: overdue
>>> [round(amount, 2) for amount in counts[step]["step_progress"][:2]]
[0.0, 11.21]
>>> round(counts[step]["step_progress"][2])       # strength: as sure as rates learned from 46 outcomes
46
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from frictionwatch.streams.sessions import DWELL_VALUES
from frictionwatch.streams.windows import Touchpoint

#: seconds of event time between a partition's evidence records
EVIDENCE_TICK = 1.0
#: half-life (event time) of what a hazard has learned: hours, so an incident of minutes stays evidence
HALF_LIFE = 6 * 3600.0
#: seconds of a partition's event time between two updates of the rates it judges with
FREEZE_EVERY = 10.0
#: a partition judges with what the hazards had learned at least this long before in its event
#: time, once they were warm then: an incident is not learned as normal while it is being judged
#: (a quiet step that learned its errors per visit from a few dozen visits would otherwise take a
#: burst's first errors as its usual rate within a minute)
GUARD = 300.0
#: event time a partition has been learning before its snapshots may guard: an estimate from the first
#: minutes of traffic (a few dozen outcomes, when a worker or the traffic starts) is not the usual rate yet
SETTLED_AFTER = 600.0
#: seconds of a partition's event time between two of its snapshots of the rates, kept for :data:`GUARD`
SNAPSHOT_EVERY = 60.0
#: seconds of wall clock between two evidence ticks of a partition, when a clock is given: a
#: backlog (history, a restart) is worked through with a tick covering many seconds of event time
WALL_TICK = 0.25
#: a hole in a partition's events: a stretch of its event time with no event at all, at least
#: HOLE_SECONDS long, where its recent rate expected HOLE_EVENTS (Poisson traffic leaves one
#: once in e**20 such stretches): missing data, e.g. a collector holding a batch back
HOLE_EVENTS = 20.0
HOLE_SECONDS = 60.0
#: half-life (event time) of a partition's recent rate of events
ARRIVALS_HALF_LIFE = 600.0
#: bucket ``b`` of a hazard covers dwell [BOUNDS[b], BOUNDS[b + 1]); the last one is open
BOUNDS = (0.0, *DWELL_VALUES)
#: each bucket's hazard is shrunk towards the touchpoint's overall hazard by this many events
PRIOR_EVENTS = 2.0
#: outcome -> the evidence metric it is counted in
METRIC_OF: Mapping[str, str] = {
    "progress": "step_progress",
    "error": "step_errors",
    "answer": "queue_answers",
    "abandon": "queue_abandons",
}
#: outcome -> (events, exposure) a hazard must have learned before its touchpoint is judged
WARM: Mapping[str, tuple[float, float]] = {
    "progress": (30.0, 0.0),
    "error": (0.0, 50.0),  # exposure in visits: a step that never errs is judged too
    "answer": (30.0, 0.0),
    "abandon": (10.0, 0.0),
}
#: outcomes that are friction when they happen (the others are friction when they don't)
BAD_OUTCOMES = frozenset({"error", "abandon"})
#: how far a caller's wait is followed (an hour: the last bucket)
MAX_WAIT = BOUNDS[-1]

#: what a partition sends per evidence tick: touchpoint -> metric -> [observed, expected, strength]
#: (strength: how many outcomes the expected count's rates are as sure as, see
#: :meth:`Hazard.strength`; stage 2 judges with their uncertainty; 0 when nothing was expected)
EvidenceCounts = dict[Touchpoint, dict[str, list[float]]]
#: example sessions or contacts per touchpoint: ones that did not move on, erred, or hung up
MAX_EXAMPLES = 3
#: a visitor or caller still waiting: (touchpoint, outcome, since, cap, session or contact id)
Waiting = tuple[Touchpoint, str, float, float, str]


class Rates:
    """What a hazard had learned at one moment, as a partition judges with it: the rate per bucket,
    and how many outcomes each rate is as sure as."""

    __slots__ = ("at_bounds", "bounds", "rates", "strengths")

    def __init__(self, bounds: tuple[float, ...], rates: list[float], strengths: list[float]) -> None:
        self.bounds, self.rates, self.strengths = bounds, rates, strengths
        #: what they expect in the first ``bounds[b]`` seconds, added up as :meth:`expected` does
        self.at_bounds: list[float] | None = None

    def expected(self, start: float, end: float, by_bucket: list[float] | None = None) -> float:
        """How many outcomes these rates expect in time at risk [start, end) (seconds spent so far),
        also added per bucket to ``by_bucket``."""
        bounds, rates = self.bounds, self.rates
        index = bisect.bisect_right(bounds, start) - 1
        expected = 0.0
        while start < end:
            upper = bounds[index + 1] if index + 1 < len(bounds) else math.inf
            stop = upper if upper < end else end  # min(end, upper)
            amount = rates[index] * (stop - start)
            expected += amount
            if by_bucket is not None:
                by_bucket[index] += amount
            start, index = stop, index + 1
        return expected

    def cumulative(self, spent: float) -> float:
        """How many outcomes these rates expect in the first ``spent`` seconds at risk (as
        ``expected(0.0, spent)``, to the last bit, from a table of the sums at the bucket bounds)."""
        at_bounds = self.at_bounds
        if at_bounds is None:
            at_bounds, total, bounds = [0.0], 0.0, self.bounds
            for index in range(len(bounds) - 1):
                total += self.rates[index] * (bounds[index + 1] - bounds[index])
                at_bounds.append(total)
            self.at_bounds = at_bounds
        if spent <= 0.0:
            return 0.0
        index = bisect.bisect_right(self.bounds, spent) - 1
        return at_bounds[index] + self.rates[index] * (spent - self.bounds[index])

    def strength(self, by_bucket: list[float]) -> float:
        """How sure an expected count spread over the buckets as ``by_bucket`` is, in outcomes: the
        shape of a gamma with its mean and variance (each bucket's rate uncertain by its own
        outcomes; the visitors of a bucket share its rate)."""
        total = variance = 0.0
        for amount, strength in zip(by_bucket, self.strengths, strict=True):
            if amount > 0.0:
                total += amount
                variance += amount * amount / strength
        return total * total / variance if variance > 0.0 else sum(self.strengths)


class Hazard:
    """How often an outcome happens per unit of time at risk, by bucket of time spent so far (decayed).

    ``bounds`` are the buckets' lower ends; the per-visit error rate is a hazard with one bucket
    whose exposure is counted in visits. A hazard only learns; the partitions that share it
    judge with :class:`Rates` taken from it (:meth:`learned`).
    """

    __slots__ = ("bounds", "decayed_at", "events", "exposure", "warm")

    def __init__(self, outcome: str, bounds: tuple[float, ...] = BOUNDS) -> None:
        self.bounds = bounds
        self.events = [0.0] * len(bounds)
        self.exposure = [0.0] * len(bounds)
        self.decayed_at = -math.inf
        self.warm = WARM[outcome]

    def expose(self, start: float, end: float) -> None:
        """Learn time at risk [start, end) (seconds spent so far)."""
        bounds, exposure = self.bounds, self.exposure
        index = bisect.bisect_right(bounds, start) - 1
        while start < end:
            upper = bounds[index + 1] if index + 1 < len(bounds) else math.inf
            stop = upper if upper < end else end  # min(end, upper)
            exposure[index] += stop - start
            start, index = stop, index + 1

    def happened(self, spent: float) -> None:
        """Learn one outcome after ``spent`` seconds at risk."""
        self.events[bisect.bisect_right(self.bounds, spent) - 1] += 1.0

    def decay(self, ts: float) -> None:
        """Decay what was learned to event time ``ts``, if later than the last decay (partitions that
        share the hazard may be minutes apart)."""
        if ts > self.decayed_at:
            if math.isfinite(self.decayed_at):
                factor = 0.5 ** ((ts - self.decayed_at) / HALF_LIFE)
                self.events = [value * factor for value in self.events]
                self.exposure = [value * factor for value in self.exposure]
            self.decayed_at = ts

    def learned(self) -> Rates | None:
        """The rates learned by now; None while too few outcomes or too little exposure were seen.

        Each bucket's rate is shrunk towards the overall rate by :data:`PRIOR_EVENTS` events; the
        prior is no surer than the overall rate it comes from (a step whose first visits brought
        no error does not know its errors per visit to two errors' worth)."""
        events, exposure = sum(self.events), sum(self.exposure)
        if events < self.warm[0] or exposure < self.warm[1] or exposure <= 0.0:
            return None
        overall = (events + 0.5) / exposure
        prior = PRIOR_EVENTS / overall
        rates = [(ev + PRIOR_EVENTS) / (ex + prior) for ev, ex in zip(self.events, self.exposure, strict=True)]
        prior_strength = min(PRIOR_EVENTS, events + 0.5)
        return Rates(self.bounds, rates, [ev + prior_strength for ev in self.events])


#: per-visit rates have one bucket
PER_VISIT = (0.0,)
#: what an evidence tick's visitors at one (touchpoint, outcome) add to: the hazard they teach, and
#: while it is judged the rates judging them, their expected count per bucket, and their metric's count
_TickSink = tuple[Hazard, Rates | None, list[float], list[float] | None]


class EvidenceMeter:
    """The evidence of one input partition between two ticks.

    Args:
        hazards: (touchpoint, outcome) -> what is learned; shared by a worker's partitions of
            one kind, so that each judges with what all of them have seen.
        tick: seconds of event time between two evidence records.
        clock: the wall clock (a worker's): ticks are then also :data:`WALL_TICK` apart, so a
            backlog worked through fast costs few ticks. None: event time alone decides.

    The partition judges with rates of its own (:attr:`judged`), taken from the shared hazards
    every :data:`FREEZE_EVERY` seconds of its event time: those it took :data:`GUARD` seconds
    of its event time before (:attr:`snapshots`), once it had been learning for
    :data:`SETTLED_AFTER`. Its own time: through a backlog one partition can run many minutes
    ahead of the others, and rates taken when it passed a minute were learned from little.
    """

    def __init__(
        self,
        hazards: dict[tuple[Touchpoint, str], Hazard],
        tick: float = EVIDENCE_TICK,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.hazards = hazards
        self.tick_seconds = tick
        self.clock = clock
        self.ticked_wall = -math.inf
        self.counts: EvidenceCounts = {}
        #: (touchpoint, outcome) -> the rates this partition judges with (warm hazards only)
        self.judged: dict[tuple[Touchpoint, str], Rates] = {}
        #: (event time, the rates learned then), one per SNAPSHOT_EVERY of this partition's event time
        self.snapshots: list[tuple[float, dict[tuple[Touchpoint, str], Rates]]] = []
        #: (touchpoint, evidence metric) -> the rates it was judged with, and its expected count per
        #: bucket since the last tick
        self.spreads: dict[tuple[Touchpoint, str], tuple[Rates, list[float]]] = {}
        self.examples: dict[Touchpoint, list[str]] = {}
        self.taken_examples: dict[Touchpoint, list[str]] = {}  # of the last tick
        self.ticked_at = -math.inf
        self.frozen_at = -math.inf
        self.began = math.inf  # event time of this partition's first freeze
        self.arrivals = 0.0  # events of this partition, decayed by ARRIVALS_HALF_LIFE
        self.arrived_at = -math.inf  # the latest event time of its events
        self.hole_end = -math.inf  # end of its latest hole: visits begun before it are not judged

    def arrived(self, ts: float) -> None:
        """An event of this partition, at event time ``ts``, is about to be applied.

        After a hole in its events (:data:`HOLE_EVENTS`), the visits and waits begun before the
        hole's end are neither judged nor learned from: a collector held their events back, and
        they come later, behind newer ones. Judged, every visitor of the partition would look
        stalled at once for as long as the hole. Visits begun after it count as usual.
        """
        last = self.arrived_at
        if ts > last:
            if math.isfinite(last):
                gap = ts - last
                if gap >= HOLE_SECONDS:
                    rate = self.arrivals * math.log(2.0) / ARRIVALS_HALF_LIFE  # the decayed count's steady state
                    if rate * gap >= HOLE_EVENTS:
                        self.hole_end = ts
                self.arrivals *= 0.5 ** (gap / ARRIVALS_HALF_LIFE)
            self.arrived_at = ts
        self.arrivals += 1.0

    def _hazard(self, place: Touchpoint, outcome: str) -> Hazard:
        hazard = self.hazards.get((place, outcome))
        if hazard is None:
            hazard = self.hazards[(place, outcome)] = Hazard(outcome, PER_VISIT if outcome == "error" else BOUNDS)
        return hazard

    def _count(self, place: Touchpoint, metric: str, observed: float, expected: float) -> None:
        fields = self.counts.get(place)
        if fields is None:
            fields = self.counts[place] = {}
        amounts = fields.get(metric)
        if amounts is None:
            fields[metric] = [observed, expected, 0.0]  # strength: at the tick
        else:
            amounts[0] += observed
            amounts[1] += expected

    def _expected(self, place: Touchpoint, outcome: str, start: float, end: float) -> float | None:
        """The count of ``outcome`` at ``place`` the judged rates expected in time at risk [start, end),
        added to the spread of the tick; None while the touchpoint is not judged."""
        rates = self.judged.get((place, outcome))
        if rates is None:
            return None
        metric = METRIC_OF[outcome]
        spread = self.spreads.get((place, metric))
        if spread is None:
            spread = self.spreads[(place, metric)] = (rates, [0.0] * len(rates.bounds))
        return spread[0].expected(start, end, spread[1]) if end > start else 0.0

    def _example(self, place: Touchpoint, subject: str | None) -> None:
        if subject is None:
            return
        kept = self.examples.get(place)
        if kept is None:
            self.examples[place] = [subject]
        elif len(kept) < MAX_EXAMPLES and subject not in kept:
            kept.append(subject)

    def spent(
        self,
        place: Touchpoint,
        outcome: str,
        since: float,
        until: float,
        cap: float,
        happened: bool,
        *,
        whole: bool = False,
        example: str | None = None,
    ) -> None:
        """A visitor (or caller) at ``place`` since ``since`` left at ``until``; ``happened``: by ``outcome``.

        The time since the last tick is counted here (earlier time was counted by the ticks), up
        to ``cap`` seconds after ``since`` (a step's progress timeout: after it the visit stalled).
        ``whole``: a visit that ended without the outcome is counted up to ``cap`` at once (a
        session that left a step will not move on from it: that is known now, not at the timeout).
        ``example``: the session or contact, kept as an example when it counts against its touchpoint.
        """
        if since < self.hole_end:
            return  # under way across a hole in the partition's events: when it ended is not known
        hazard = self._hazard(place, outcome)
        start, end = max(since, self.ticked_at) - since, cap if whole and not happened else min(until - since, cap)
        if end > start:
            hazard.expose(start, end)
        if happened and until - since <= cap:
            hazard.happened(until - since)
        expected = self._expected(place, outcome, start, end)
        if expected is not None:
            self._count(place, METRIC_OF[outcome], 1.0 if happened else 0.0, expected)
            if happened == (outcome in BAD_OUTCOMES):
                self._example(place, example)

    def visit(self, place: Touchpoint) -> None:
        """A visit of a step begins: the errors its judged errors per visit expect of it.

        ``_expected(place, "error", 0.0, 1.0)`` without its calls (it runs at every step entered):
        errors per visit have one bucket, so one visit expects its rate."""
        rates = self.judged.get((place, "error"))
        if rates is None:
            return
        spread = self.spreads.get((place, "step_errors"))
        if spread is None:
            spread = self.spreads[(place, "step_errors")] = (rates, [0.0])
        expected = spread[0].rates[0] * 1.0  # as Rates.expected computes it (the same bits)
        spread[1][0] += expected
        self._count(place, "step_errors", 0.0, expected)

    def visit_over(self, place: Touchpoint) -> None:
        """A visit of a step is over, or its flow outcome is known: learned as a visit its errors
        per visit are learned from.

        Not at its start: its error, if any, comes during it, and a step where visits last long
        (a chat) learned its visits minutes before their errors; in the first half hour of
        traffic its errors per visit came out several times too low. Nor when the session ends:
        a session that leaves ends by inactivity, half an hour later. The sessions' tracker calls
        it when the visit's flow outcome is known (moved on, went back, left, or stalled at the
        progress timeout), and at the start of a visit whose flow is not followed."""
        self._hazard(place, "error").exposure[0] += 1.0  # expose(0.0, 1.0) of its one bucket, without the walk

    def error(self, place: Touchpoint, example: str | None = None) -> None:
        self._hazard(place, "error").happened(0.0)
        if (place, "error") in self.judged:
            self._count(place, "step_errors", 1.0, 0.0)
            self._example(place, example)

    def due(self, watermark: float) -> bool:
        if watermark < self.ticked_at + self.tick_seconds:
            return False
        return self.clock is None or self.clock() >= self.ticked_wall + WALL_TICK

    def tick(self, watermark: float, waiting: Iterable[Waiting]) -> EvidenceCounts:
        """Count the time still waiting up to ``watermark``; take the counts (and :attr:`taken_examples`).

        A visitor still waiting past the usual time (expected to have moved on once) is an
        example. The rates of the next ticks are taken at most every :data:`FREEZE_EVERY`
        seconds of this partition's event time (what a few seconds teach moves them little).
        """
        ticked_at, hole_end, examples = self.ticked_at, self.hole_end, self.examples
        # (place, outcome) -> what its visitors add to: most visitors of a tick are at a handful of
        # touchpoints, and most spend the tick's second in one dwell bucket (the fast path below)
        sinks: dict[tuple[Touchpoint, str], _TickSink] = {}
        for place, outcome, since, cap, subject in waiting:
            if since < hole_end:
                continue  # under way across a hole in the partition's events (see :meth:`arrived`)
            # max(since, ticked_at) - since and min(watermark - since, cap), without the calls
            start, end = (ticked_at if ticked_at > since else since) - since, watermark - since
            if cap < end:
                end = cap
            if end <= start:
                continue
            sink = sinks.get((place, outcome))
            if sink is None:
                sink = sinks[(place, outcome)] = self._tick_sink(place, outcome)
            hazard, rates, by_bucket, amounts = sink
            bounds = hazard.bounds
            index = bisect.bisect_right(bounds, start) - 1
            one_bucket = index + 1 == len(bounds) or end <= bounds[index + 1]  # else: the general walk
            if one_bucket:
                hazard.exposure[index] += end - start
            else:
                hazard.expose(start, end)
            if rates is None or amounts is None:
                continue  # not judged yet: only learned from
            if one_bucket:
                amount = rates.rates[index] * (end - start)
                by_bucket[index] += amount
                amounts[1] += amount
            else:
                amounts[1] += rates.expected(start, end, by_bucket)
            overdue = outcome not in BAD_OUTCOMES and len(examples.get(place, ())) < MAX_EXAMPLES
            if overdue and rates.cumulative(end) >= 1.0:  # expected to have moved on once by now
                self._example(place, subject)
        for (place, metric), (rates, by_bucket) in self.spreads.items():  # with the rates they were counted by
            amounts = self.counts.get(place, {}).get(metric)
            if amounts is not None:
                amounts[2] = rates.strength(by_bucket)
        self.spreads = {}
        if watermark >= self.frozen_at + FREEZE_EVERY:
            self.freeze(watermark)
        self.ticked_at = watermark
        if self.clock is not None:
            self.ticked_wall = self.clock()
        counts, self.counts = self.counts, {}
        self.taken_examples, self.examples = self.examples, {}
        return counts

    def _tick_sink(self, place: Touchpoint, outcome: str) -> _TickSink:
        """What the tick's visitors at ``place`` add to: the hazard they teach, and, while it is
        judged, the rates that judge them, the tick's spread and the count of their metric."""
        hazard = self._hazard(place, outcome)
        rates = self.judged.get((place, outcome))
        if rates is None:
            return hazard, None, [], None
        metric = METRIC_OF[outcome]
        spread = self.spreads.get((place, metric))
        if spread is None:
            spread = self.spreads[(place, metric)] = (rates, [0.0] * len(rates.bounds))
        self._count(place, metric, 0.0, 0.0)
        return hazard, spread[0], spread[1], self.counts[place][metric]

    def freeze(self, ts: float) -> None:
        """Take the rates the next ticks judge with, at this partition's event time ``ts``: per
        hazard, those learned :data:`GUARD` seconds before if this partition had been learning for
        :data:`SETTLED_AFTER` then and the hazard was warm, else today's."""
        learned: dict[tuple[Touchpoint, str], Rates] = {}
        for key, hazard in self.hazards.items():
            hazard.decay(ts)
            rates = hazard.learned()
            if rates is not None:
                learned[key] = rates
        self.frozen_at = ts
        if not math.isfinite(ts):  # a partition with no event time yet
            self.judged = learned
            return
        self.began = min(self.began, ts)
        snapshots = self.snapshots
        if ts - self.began >= SETTLED_AFTER and (not snapshots or ts >= snapshots[-1][0] + SNAPSHOT_EVERY):
            snapshots.append((ts, learned))
        while len(snapshots) > 1 and snapshots[1][0] <= ts - GUARD:  # the newest one old enough stays
            del snapshots[0]
        guarded = snapshots[0][1] if snapshots and snapshots[0][0] <= ts - GUARD else {}
        self.judged = {key: guarded.get(key, rates) for key, rates in learned.items()}


class WaitingCallers:
    """Callers of one contacts partition who are waiting: contact id -> (queue, since when)."""

    def __init__(self) -> None:
        self.callers: dict[str, tuple[Touchpoint, float]] = {}

    def queued(self, contact_id: str, place: Touchpoint, ts: float) -> None:
        self.callers[contact_id] = (place, ts)

    def left(self, contact_id: str) -> tuple[Touchpoint, float] | None:
        """The queue and start of the wait of a caller answered or hung up; None if not seen waiting."""
        return self.callers.pop(contact_id, None)

    def waiting(self, watermark: float) -> list[Waiting]:
        """Every waiting caller as two risks (answered, hanging up); those waiting past MAX_WAIT are forgotten."""
        out: list[Waiting] = []
        for contact_id, (place, since) in list(self.callers.items()):
            if watermark - since > MAX_WAIT:
                del self.callers[contact_id]
                continue
            out.append((place, "answer", since, MAX_WAIT, contact_id))
            out.append((place, "abandon", since, MAX_WAIT, contact_id))
        return out


EVIDENCE_SCHEMA = 1


@dataclass(frozen=True, slots=True)
class EvidenceRecord:
    """What one partition of ``source`` counted for one group's touchpoints up to event time ``end``."""

    source: str
    partition: int
    group: str
    end: float
    counts: EvidenceCounts
    examples: Mapping[Touchpoint, list[str]] = field(default_factory=dict)

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "evidence_schema": EVIDENCE_SCHEMA,
                "source": self.source,
                "partition": self.partition,
                "group": self.group,
                "end": self.end,
                "counts": [[*place, fields] for place, fields in self.counts.items()],
                "examples": [[*place, ids] for place, ids in self.examples.items()],
            }
        )

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> EvidenceRecord:
        """From a decoded record of the windows topic whose ``evidence_schema`` is known."""
        if doc.get("evidence_schema") != EVIDENCE_SCHEMA:
            raise ValueError(f"unsupported evidence_schema {doc.get('evidence_schema')!r}")
        counts: EvidenceCounts = {}
        for row in doc["counts"]:
            place = Touchpoint(*(str(part) for part in row[:5]))
            counts[place] = {  # a record without strength (schema 1 before 2026-12-01): rates taken as exact
                str(metric): [float(amounts[0]), float(amounts[1]), float(amounts[2]) if len(amounts) > 2 else math.inf]
                for metric, amounts in row[5].items()
                if metric in METRICS
            }
        examples = {
            Touchpoint(*(str(part) for part in row[:5])): [str(i) for i in row[5][:MAX_EXAMPLES]]
            for row in doc.get("examples", [])
        }
        return cls(str(doc["source"]), int(doc["partition"]), str(doc["group"]), float(doc["end"]), counts, examples)


METRICS = frozenset(METRIC_OF.values())


def split_evidence(
    source: str,
    partition: int,
    end: float,
    counts: EvidenceCounts,
    examples: Mapping[Touchpoint, list[str]],
    group_of: Callable[[Touchpoint], str],
) -> list[EvidenceRecord]:
    """One record per group that has evidence in ``counts``."""
    by_group: dict[str, EvidenceCounts] = {}
    for place, fields in counts.items():
        by_group.setdefault(group_of(place), {})[place] = fields
    return [
        EvidenceRecord(
            source, partition, group, end, found, {place: examples[place] for place in found if place in examples}
        )
        for group, found in by_group.items()
    ]
