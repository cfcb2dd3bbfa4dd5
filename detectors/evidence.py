"""The evidence path, stage 2: observed against expected counts added up as they arrive (pure math, no I/O).

Stage 1 (:mod:`frictionwatch.streams.evidence`) sends, about every second per partition, what
each touchpoint showed against what its learned hazards expected. Here each (touchpoint,
evidence metric) keeps a CUSUM of the log-likelihood ratio of a Poisson rate that changed by
``ratio`` (the incident) against one that did not:

    S = max(0, S + observed * log(ratio) - (ratio - 1) * expected)

and alarms when ``S`` reaches ``h``. While it alarms, a second CUSUM adds up the evidence for
the usual rate against the change the alarm is about; the alarm ends when that reaches
:data:`RECOVERY_EVIDENCE` and the same counts are likelier at the usual rate than at the
smallest change the metric looks for. For a rise, the change is the observed over the
expected counts of the alarming CUSUM's run when the alarm rose (or got worse), from the
smallest change the metric looks for up to :data:`LARGEST_CHANGE`: a burst of errors ten
times the usual rate ends once the evidence says the rate is back to usual against tenfold,
not against tripled, which at a step with one error an hour took hours. A fall is judged
against the smallest fall the metric looks for. The
increments of two partitions add up to the increment of their merged counts, so each record
is applied when it comes, without waiting for the slowest partition.

A metric whose incidents range from a few times the usual rate to ten times it (errors) keeps
one CUSUM per ratio of :data:`EVIDENCE_METRICS`, each with its share of the budget, and alarms
when any of them does. One tuned to tripled errors adds too little per error to catch a burst
at a quiet step (a few errors a minute) before the burst is over; one tuned to ten times adds
more per error, and also tolerates a usual rate learned too low (from a few dozen visits) by a
factor of up to ``(ratio - 1) / log(ratio)``: 3.9 against 1.8.

``h`` spends the series' false-alarm budget. Wald's approximation gives the average run length
in units of expected count, ``(exp(h) - h - 1) / K`` with ``K = ratio - 1 - log(ratio)`` (the
evidence lost per expected count on normal traffic); simulated, the true run length is 1.4 to
1.9 times longer, so the budget is kept with room. The run length in seconds follows from the
series' expected count per second, learned as it goes. An evidence series shares its window
metric's budget with it: each gets half, split again over its CUSUMs.

>>> cusum = PoissonCusum(ratio=0.3)
>>> for second in range(30):                    # a step where 1 visitor a second should move on, and none does
...     _ = cusum.add(observed=0.0, expected=1.0, ts=float(second))
>>> round(cusum.statistic, 1), cusum.since
(21.0, 0.0)
>>> round(poisson_threshold(86400.0 * 90, ratio=0.3), 1)  # 1 expected a second; 1 per 180 days, halved
15.2
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from frictionwatch.detectors.bank import ALL_CHANNELS, DEFAULTS, DetectorBank, Finding, SeriesPlace
from frictionwatch.detectors.base import SEVERITY_RANK, Verdict, severity_for
from frictionwatch.detectors.budget import FalseAlarmBudget
from frictionwatch.journeymap import JourneyMap
from frictionwatch.streams.evidence import EvidenceRecord

#: evidence metric -> (the window metric whose budget it shares, the rate ratios of the incidents it
#: looks for: one CUSUM each)
EVIDENCE_METRICS: dict[str, tuple[str, tuple[float, ...]]] = {
    "step_progress": ("flow_ratio", (0.3,)),  # moving on at under a third of the usual pace
    "step_errors": ("errors_per_visit", (3.0, 10.0)),
    "queue_answers": ("service_level", (0.4,)),  # callers answered at under half the usual pace
    "queue_abandons": ("abandonment_ratio", (2.5,)),
}
#: evidence metric -> the smallest change it looks for (the ratio nearest 1): what an alarm's end is
#: judged against at least
SMALLEST_CHANGE = {
    metric: min(ratios, key=lambda ratio: abs(math.log(ratio))) for metric, (_, ratios) in EVIDENCE_METRICS.items()
}
MAX_EXAMPLES = 5  # per touchpoint, as the window path keeps
#: while a series alarms, the evidence (log-likelihood ratio) that it is back to its usual rate that
#: ends the alarm: 100 to 1 for the usual rate against the incident's
RECOVERY_EVIDENCE = math.log(100.0)
#: the largest rise an alarm's end is judged against: an alarm that saw a larger one (a burst of
#: errors) ends once the rate is back to usual against this
LARGEST_CHANGE = 10.0
#: event time a series is watched before it is judged: its expected count per second is learned,
#: and the hazards behind its counts (learned in stage 1 from a few dozen outcomes when it first
#: arrives) settle; its evidence is added up from then on
WATCHED_BEFORE_JUDGING = 120.0
RATE_HALF_LIFE = 3600.0  # of the expected count per second


def poisson_threshold(expected_between_alarms: float, ratio: float) -> float:
    """The CUSUM threshold whose run length on normal traffic is ``expected_between_alarms`` expected counts.

    It solves ``expm1(h) - h = expected_between_alarms * loss`` (``loss``: the evidence an
    expected count takes away on normal traffic) by Newton's method: it is called for every
    series each time a partition's evidence is applied, so it must not bisect.

    >>> h = poisson_threshold(1000.0, ratio=3.0)
    >>> round(math.expm1(h) - h, 6) == round(1000.0 * (3.0 - 1.0 - math.log(3.0)), 6)
    True
    """
    target = expected_between_alarms * (ratio - 1.0 - math.log(ratio))
    if target <= 0.0:
        return 0.0
    # expm1(h) - h is increasing and convex for h > 0, and at least h**2 / 2 and 2 * (target + 1) - 1 - h
    # here: Newton's steps from this h go down to the root without passing it
    h = min(math.sqrt(2.0 * target), math.log(2.0 * (target + 1.0)))
    for _ in range(60):
        grown = math.expm1(h)
        step = (grown - h - target) / grown
        h -= step
        if step <= 1e-12 * h:
            break
    return h


def evidence(observed: float, expected: float, ratio: float, strength: float = math.inf) -> float:
    """The log-likelihood ratio of ``observed`` counts where ``expected`` were, for a rate changed by
    ``ratio`` against an unchanged one, when the rates behind ``expected`` were learned from
    ``strength`` outcomes (a gamma-Poisson, i.e. negative binomial, predictive; Poisson when
    ``strength`` is infinite).

    >>> round(evidence(10.0, 1.0, ratio=10.0), 1)                 # rates known exactly
    14.0
    >>> round(evidence(10.0, 1.0, ratio=10.0, strength=3.0), 1)   # learned from 3 outcomes: less sure
    7.7
    """
    if math.isinf(strength):
        return observed * math.log(ratio) - (ratio - 1.0) * expected
    return observed * math.log(ratio) - (strength + observed) * math.log1p(
        (ratio - 1.0) * expected / (strength + expected)
    )


@dataclass(slots=True)
class PoissonCusum:
    """The CUSUM of one evidence series; ``since``: when its statistic last left zero (the change's estimate).

    Each step is the evidence the new counts add to those of the current run (since ``since``),
    judged with how sure the rates behind them are (:func:`evidence`): with exact rates the steps
    are the Poisson log-likelihood ratios of the counts alone; with rates learned from a few
    outcomes, a run of excess counts is weighed against the chance that the rates were too low.
    """

    ratio: float
    statistic: float = 0.0
    observed: float = 0.0  # since ``since``
    expected: float = 0.0
    since: float | None = None

    def add(self, observed: float, expected: float, ts: float, strength: float = math.inf) -> float:
        """Add the evidence of ``observed`` against ``expected``; its log-likelihood ratio."""
        ratio = self.ratio
        if math.isinf(strength):
            step = observed * math.log(ratio) - (ratio - 1.0) * expected
        else:
            before = evidence(self.observed, self.expected, ratio, strength)
            step = evidence(self.observed + observed, self.expected + expected, ratio, strength) - before
        if self.statistic + step <= 0.0:
            self.statistic, self.observed, self.expected, self.since = 0.0, 0.0, 0.0, None
            return step
        if self.since is None:
            self.since = ts
        self.statistic += step
        self.observed += observed
        self.expected += expected
        return step


@dataclass(slots=True)
class _Series:
    cusums: list[PoissonCusum]  # one per ratio of its metric
    first_ts: float
    last_ts: float
    expected_sum: float = 0.0  # decayed, per RATE_HALF_LIFE
    seconds: float = 0.0  # decayed likewise
    severity: str = "none"  # what it last reported: none until it alarms
    recovery: float = 0.0  # while alarming: the CUSUM of the evidence that it is back to normal
    recovery_counts: tuple[float, float] = (0.0, 0.0)  # observed and expected of its run
    change: float = 0.0  # while alarming: the change it saw (a rate ratio), judged against for its end
    leading: int = 0  # the CUSUM that alarmed last (or, normal, the first)
    strength: float = math.inf  # the outcomes its expected counts' rates were learned from, lately

    @property
    def cusum(self) -> PoissonCusum:
        """The CUSUM that speaks for the series: the one that alarmed."""
        return self.cusums[self.leading]

    def rate(self) -> float:
        return self.expected_sum / self.seconds if self.seconds > 0 else 0.0

    def reset(self) -> None:
        for cusum in self.cusums:
            cusum.statistic, cusum.observed, cusum.expected, cusum.since = 0.0, 0.0, 0.0, None
        self.leading, self.recovery, self.recovery_counts, self.change = 0, 0.0, (0.0, 0.0), 0.0

    def alarm_saw(self, ratios: tuple[float, ...], smallest: float) -> None:
        """Note the change the alarm is judged against for its end (it rose, or got worse); the
        evidence for the usual rate starts again.

        A rise: the one the alarming CUSUM's run saw, from ``smallest`` (the smallest change the
        metric looks for) up to :data:`LARGEST_CHANGE`. A fall: ``smallest`` (a rate falls to zero
        at most, and the falls watched, flow and answers, are at busy series).
        """
        run = self.cusum
        if smallest > 1.0:
            seen = run.observed / run.expected if run.expected > 0 else LARGEST_CHANGE
            self.change = min(max(seen, smallest), max(LARGEST_CHANGE, *ratios))
        else:
            self.change = smallest
        self.recovery, self.recovery_counts = 0.0, (0.0, 0.0)

    def back_to_normal(self, observed: float, expected: float, smallest: float) -> bool:
        """Add counts to the evidence for the usual rate against the change the alarm saw; whether
        it is back to normal: that evidence is enough, and its run's counts are likelier at the usual
        rate than at ``smallest``, the smallest change the metric looks for (a burst that eased to a
        lasting, smaller rise is not over).

        As a CUSUM over runs: the evidence of the run's counts, which restarts at zero.
        """
        run_observed, run_expected = self.recovery_counts[0] + observed, self.recovery_counts[1] + expected
        self.recovery = -evidence(run_observed, run_expected, self.change, self.strength)
        if self.recovery <= 0.0:
            self.recovery, self.recovery_counts = 0.0, (0.0, 0.0)
            return False
        self.recovery_counts = (run_observed, run_expected)
        if self.recovery < RECOVERY_EVIDENCE:
            return False
        return self.change == smallest or evidence(run_observed, run_expected, smallest, self.strength) < 0.0

    def state(self) -> dict[str, Any]:
        return {
            "cusums": [[c.ratio, c.statistic, c.observed, c.expected, c.since] for c in self.cusums],
            "times": [self.first_ts, self.last_ts, self.expected_sum, self.seconds],
            "severity": self.severity,
            "recovery": self.recovery,
            "recovery_counts": list(self.recovery_counts),
            "change": self.change,
            "leading": self.leading,
            "strength": None if math.isinf(self.strength) else self.strength,
        }


@dataclass
class EvidenceBank:
    """The evidence series of the groups a worker reduces.

    Args:
        budget_of: the false-alarm budget of an evidence series, given its touchpoint and
            evidence metric (None: not monitored); its window metric's, halved here.
        pooled: the place a step's evidence is also pooled in over its channels (channel
            ``all``, as the window detectors pool it), or None (a queue, a step with one channel).
    """

    budget_of: Callable[[SeriesPlace, str], FalseAlarmBudget | None]
    pooled: Callable[[SeriesPlace], SeriesPlace | None] = lambda place: None
    series: dict[tuple[SeriesPlace, str], _Series] = field(default_factory=dict)
    #: (source, partition, group) -> event time of the latest record applied (a replay is not counted twice)
    applied: dict[tuple[str, int, str], float] = field(default_factory=dict)
    #: the latest example sessions or contacts per touchpoint, newest first (for the alerts)
    examples: dict[SeriesPlace, list[str]] = field(default_factory=dict)

    def add(self, record: EvidenceRecord) -> list[Finding]:
        """Apply one partition's evidence; findings where a series starts alarming, gets worse, or is back to normal."""
        key = (record.source, record.partition, record.group)
        if record.end <= self.applied.get(key, -math.inf):
            return []
        self.applied[key] = record.end
        for touchpoint, ids in record.examples.items():
            kept = self.examples.get(touchpoint, [])
            self.examples[touchpoint] = [*ids, *(i for i in kept if i not in ids)][:MAX_EXAMPLES]
        # (place, metric) -> [observed, expected, the relative variance of expected times its square]:
        # channels pooled in a step add their counts, and the uncertainty of their rates
        sums: dict[tuple[SeriesPlace, str], list[float]] = {}
        for touchpoint, fields in record.counts.items():
            pooled = self.pooled(touchpoint)
            for metric, amounts in fields.items():
                observed, expected = amounts[0], amounts[1]
                strength = amounts[2] if len(amounts) > 2 else math.inf  # none given: exact rates
                variance = expected * expected / strength if expected > 0 and strength > 0 else 0.0
                sums[(touchpoint, metric)] = [observed, expected, variance]
                if pooled is not None:
                    total = sums.setdefault((pooled, metric), [0.0, 0.0, 0.0])
                    total[0] += observed
                    total[1] += expected
                    total[2] += variance
        findings = []
        for (place, metric), (observed, expected, variance) in sums.items():
            # the strength of a gamma with the pooled mean and variance (None: nothing expected, nothing said)
            said: float | None = expected * expected / variance if variance > 0 else None
            if said is None and expected > 0:
                said = math.inf
            finding = self._apply(place, metric, observed, expected, record.end, said)
            if finding is not None:
                findings.append(finding)
        return findings

    def _apply(
        self, place: SeriesPlace, metric: str, observed: float, expected: float, ts: float, strength: float | None
    ) -> Finding | None:
        ratios = EVIDENCE_METRICS[metric][1]
        budget = self.budget_of(place, metric)
        if budget is None:
            return None
        series = self.series.get((place, metric))
        if series is None:
            series = self.series[(place, metric)] = _Series([PoissonCusum(ratio) for ratio in ratios], ts, ts)
        if ts > series.last_ts:
            factor = 0.5 ** ((ts - series.last_ts) / RATE_HALF_LIFE)
            series.seconds = series.seconds * factor + (ts - series.last_ts)
            series.expected_sum *= factor
            series.last_ts = ts
        series.expected_sum += expected
        if strength is not None:
            series.strength = strength
        if ts - series.first_ts < WATCHED_BEFORE_JUDGING or series.rate() <= 0.0:
            return None  # its expected count per second is being learned: no evidence yet
        for cusum in series.cusums:
            cusum.add(observed, expected, ts, series.strength)
        if series.severity != "none" and series.back_to_normal(observed, expected, SMALLEST_CHANGE[metric]):
            verdict = self._verdict(series.cusum, ts, 0.0, "none")
            series.severity = "none"
            series.reset()
            return Finding(place, metric, verdict, 1.0)
        seconds_between = budget.split(2 * len(series.cusums)).period / budget.alarms
        score, leading = 0.0, series.leading
        for index, cusum in enumerate(series.cusums):
            threshold = poisson_threshold(series.rate() * seconds_between, cusum.ratio)
            cusum.statistic = min(cusum.statistic, 2.0 * threshold)  # enough for critical; no more to unwind
            if cusum.statistic / threshold > score:
                score, leading = cusum.statistic / threshold, index
        severity = severity_for(score, 1.0)
        if SEVERITY_RANK[severity] <= SEVERITY_RANK[series.severity]:
            return None  # nothing new: normal, alarming as before, or easing (it ends by the recovery test)
        series.severity, series.leading = severity, leading
        series.alarm_saw(ratios, SMALLEST_CHANGE[metric])
        return Finding(place, metric, self._verdict(series.cusum, ts, score, severity), 1.0)

    @staticmethod
    def _verdict(cusum: PoissonCusum, ts: float, score: float, severity: str) -> Verdict:
        expected = cusum.expected
        spread = 2.0 * math.sqrt(expected)
        return Verdict(
            ts, cusum.observed, expected, max(0.0, expected - spread), expected + spread, score, expected,
            severity != "none", severity,  # type: ignore[arg-type]
            "" if severity == "none" else f"evidence since {cusum.since}",
        )  # fmt: skip

    def since(self, finding: Finding) -> float:
        """When the evidence of an alarming finding began (the CUSUM's estimate of the change)."""
        series = self.series.get((finding.place, finding.metric))
        since = series.cusum.since if series is not None else None
        return since if since is not None else finding.verdict.ts

    def state(self, group: str) -> dict[str, Any]:
        """The evidence state of one group (a journey or a contact channel), JSON-able."""
        return {
            "series": {
                "/".join((*place, metric)): series.state()
                for (place, metric), series in self.series.items()
                if (place[0] or place[2]) == group
            },
            "applied": [[*key, end] for key, end in self.applied.items() if key[2] == group],
        }

    def restore(self, state: dict[str, Any]) -> int:
        """Take back a state from :meth:`state`; how many series were restored."""
        restored = 0
        for key, learned in state.get("series", {}).items():
            *parts, metric = key.split("/")
            if metric not in EVIDENCE_METRICS or len(parts) != 5:
                continue
            place: SeriesPlace = (parts[0], parts[1], parts[2], parts[3], parts[4])
            saved = {float(c[0]): c[1:] for c in learned.get("cusums", [])}
            if "cusum" in learned:  # a state of one CUSUM per series (before 2026-12-01): the first ratio's
                saved[EVIDENCE_METRICS[metric][1][0]] = learned["cusum"]
            cusums = []
            for ratio in EVIDENCE_METRICS[metric][1]:  # a ratio not saved starts from nothing
                statistic, observed, expected, since = saved.get(ratio, (0.0, 0.0, 0.0, None))
                cusum = PoissonCusum(ratio, float(statistic), float(observed), float(expected))
                cusum.since = None if since is None else float(since)
                cusums.append(cusum)
            first_ts, last_ts, expected_sum, seconds = (float(v) for v in learned["times"])
            leading = int(learned.get("leading", 0))
            strength = learned.get("strength")
            series = _Series(cusums, first_ts, last_ts, expected_sum, seconds, str(learned.get("severity", "none")))
            series.leading = leading if 0 <= leading < len(cusums) else 0
            series.strength = math.inf if strength is None else float(strength)
            if series.severity != "none":  # a state from before 2026-12-05 has no run: its evidence starts again
                series.change = float(learned.get("change", SMALLEST_CHANGE[metric]))
                if "recovery_counts" in learned:
                    run_observed, run_expected = learned["recovery_counts"]
                    series.recovery, series.recovery_counts = float(learned["recovery"]), (run_observed, run_expected)
            self.series[(place, metric)] = series
            restored += 1
        for source, partition, group, end in state.get("applied", []):
            self.applied[(str(source), int(partition), str(group))] = float(end)
        return restored


def bank_for(journey_map: JourneyMap, detectors: DetectorBank) -> EvidenceBank:
    """The evidence series of a worker (or a backtest) watching ``journey_map``.

    An evidence series' budget is its window metric's in ``detectors`` (read at each use, so a
    re-tuned bank re-tunes the evidence path too), and none when either metric is switched off
    in the map; a step with two or more channels is also pooled over them, as ``detectors``
    pools its windows.
    """

    def budget_of(place: SeriesPlace, metric: str) -> FalseAlarmBudget | None:
        window = detectors.settings_for(place, EVIDENCE_METRICS[metric][0])
        if not (window.enabled and detectors.settings_for(place, metric).enabled):
            return None
        return window.false_alarms or DEFAULTS.false_alarms

    def pooled(place: SeriesPlace) -> SeriesPlace | None:
        journey, step, channel, queue, survey = place
        known = journey_map.journeys.get(journey)
        found = known.steps_by_name.get(step) if known is not None else None
        if found is None or queue or survey or channel == ALL_CHANNELS or len(found.channels) < 2:
            return None
        return (journey, step, ALL_CHANNELS, "", "")

    return EvidenceBank(budget_of, pooled)
