"""Score contenders and the oracle on a replayed traffic set (pure computation, no I/O).

Definitions (docs/detectors.md, "Detection benchmark", says the same):

* **Incidents** are the ground truth's lines grouped by ``incident``; ``"control": true``
  lines are controls (must not alert). Incidents and alerts in the first ``burn_in``
  seconds (the detectors' warm-up and first seasonal day) are not scored.
* **Caught**: an alert on any metric of the incident's touchpoint (issue 11 item 6: alerts of
  different metrics at one touchpoint are one incident) starts within ``[from, until]``:
  ``from`` is the start, or ``evidence_from`` for survey incidents whose answers arrive
  late; ``until`` is the end (or ``evidence_until``) plus two windows. **Time to detect** =
  first such alert's start (the end of its first flagged window) minus ``from``.
* **False alerts** are counted in **episodes**: a touchpoint's alerts (any metric) merged
  while each starts within ``EPISODE_GAP`` of the previous one's end. An episode is true
  when one of its alerts matches an incident's touchpoint between two windows before its
  start and ``ECHO`` after its end (late echoes: session-end metrics come a session timeout
  later, a queue drains); every other episode is false, alerts during controls included.
* **The oracle** (bench/oracle.py) runs for each incident on every series of its touchpoint
  that its metrics move in their bad direction (an incident that by chance made a series
  better is not one a friction detector should see there); its delay is the smallest.
  *Before* = pooled over the series' windows in the two hours before ``from`` (windows inside
  another incident at the touchpoint left out), or further back until they hold
  ``BEFORE_UNITS`` units: a quiet queue's two hours may hold two survey answers, and a
  "before" of 2 of 2 satisfied made one unsatisfied answer look like overwhelming evidence;
  counts get half a unit more than seen (0 errors in 30 visits is a small rate, not none);
  *after* = pooled over ``[from, until]``. For waits and survey scores the per-unit
  variance is a parameter too: it comes from at least ``VARIANCE_UNITS`` contacts or answers
  before ``from`` (going back as far as needed, each two-hour block about its own mean), not
  from the handful a quiet queue has in two hours, which can agree by chance and make one
  answer look like overwhelming evidence. An incident whose oracle doesn't reach the
  threshold by ``until`` is **undetectable** and reported apart.
* **The oracle keeps its budget** on the series it alarms on: its test (the same before,
  after, variance and threshold) is also run over that series' normal windows at the same
  time of day, ``BUDGET_CHECK_SECONDS`` either side of the onset's, on every day of the set
  (windows of incidents and controls at the touchpoint left out, from zero on each day). If
  it alarms there more often than its budget allows (under 1% likely for a test that keeps
  it), the alarm is not one at that budget and the series is passed over. The log-normal
  model of waits needs it: at a quiet queue one long wait makes a window's log mean
  decisive, and the same test alarmed on single waits of 19-66 s on normal days, 700-1,000
  times more often than its budget. An incident the oracle caught only that way
  is **over budget** and reported apart, like the undetectable.
* **Buckets**: size = ``max(m, 1/m)`` of the ground-truth ``magnitude`` of the incident's
  first metric (incident / normal value of its kind's main parameter; the oracle's
  measured after / before when the ground truth has none); volume = the affected series' units (sessions, contacts,
  answers) per minute before onset, the largest of them.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bench import oracle
from bench.common import series_name
from bench.sweep import AlertRow, Replayed
from frictionwatch.detectors.bank import ALL_CHANNELS
from frictionwatch.streams.series import BY_NAME

PRE_SECONDS = 2 * 3600.0
BEFORE_UNITS = 30.0  # sessions, contacts or answers "before" is pooled over at least (further back than 2 h if need be)
VARIANCE_UNITS = 100.0  # contacts or answers the normal models' per-unit variance is estimated from
EPISODE_GAP = 30 * 60.0
ECHO = 40 * 60.0  # a session timeout (30 min) plus the progress timeout and a few windows
GRACE_WINDOWS = 2
BUDGET_CHECK_SECONDS = 90 * 60.0  # the oracle's test also runs on normal days this far either side of the onset's time
BUDGET_CHECK_P = 0.01  # ... and is over budget where as many alarms would be less likely than this
SIZE_BUCKETS = (1.0, 1.5, 2.0, 4.0)  # lower edges of max(m, 1/m)
VOLUME_BUCKETS = (0.0, 1.0, 5.0, 20.0)  # lower edges, units per minute
MARGIN_BUCKETS = (1.0, 1.5, 2.0, 4.0)  # lower edges of the oracle's largest evidence over its threshold
#: the series a ground-truth metric moves (other names: every series of the touchpoint)
SERIES_OF = {
    "step_conversion": ("step_conversion", "dropoff_ratio", "flow_ratio", "early_flow_ratio"),
    "errors": ("errors_per_visit",),
    "dwell_seconds": ("flow_ratio", "early_flow_ratio"),
    "wait_seconds": ("average_speed_of_answer", "service_level", "abandonment_ratio"),
    "abandonment_ratio": ("abandonment_ratio",),
    "csat": ("csat",),
    "nps": ("nps",),
    "ces": ("ces",),
}

Place4 = tuple[str | None, str | None, str | None, str | None]  # journey, step, channel, queue (None: any)


@dataclass(slots=True)
class Case:
    """One incident (or control) of a traffic set, and what the oracle made of it."""

    name: str
    kind: str
    control: bool
    start: float
    end: float
    places: list[Place4]
    metrics: list[str]
    magnitudes: list[float]
    shape: str
    detect_from: float
    detect_until: float
    traffic: str = ""
    scored: bool = True
    volume_per_minute: float | None = None
    effect: float | None = None  # the oracle's after / before on its best series
    oracle_delay: float | None = None
    oracle_status: str = "no data"  # detected, undetectable, over budget, no data
    oracle_series: str | None = None  # where the oracle alarmed first: "journey/step/channel metric"
    oracle_units: float | None = None  # the sessions, contacts or answers it had judged when it alarmed
    #: the oracle's largest evidence while the incident could be caught, as a share of its threshold
    #: (1 just reaches it): how near the edge of detectable the incident was
    oracle_margin: float | None = None

    def matches(self, place: Sequence[str]) -> bool:
        """Whether a series at ``place`` (journey, step, channel, queue[, survey]) is this case's."""
        if not self.places:
            return True  # a control of the whole map
        journey, step, channel, queue = place[0], place[1], place[2], place[3]
        for want_journey, want_step, want_channel, want_queue in self.places:
            if want_journey is not None:
                if (journey, step) == (want_journey, want_step) and (
                    want_channel in (None, channel) or channel == ALL_CHANNELS  # a step's pooled series: any channel
                ):
                    return True
            elif channel == want_channel and want_queue in (None, queue):
                return True
        return False

    @property
    def size(self) -> float | None:
        """``max(m, 1/m)`` of the magnitude of the first metric (the kind's main parameter)."""
        sizes = [max(m, 1 / m) for m in self.magnitudes[:1] if m > 0 and math.isfinite(m)]
        if sizes:
            return sizes[0]
        if self.effect is not None and self.effect > 0 and math.isfinite(self.effect):
            return max(self.effect, 1 / self.effect)
        return None


def cases_of(replayed: Replayed, burn_in: float) -> list[Case]:
    """The incidents and controls of a traffic set's ground truth."""
    grace = GRACE_WINDOWS * replayed.window_size
    cases: dict[str, Case] = {}
    for line in replayed.truth:
        name = f"{replayed.traffic.label}: {line['incident']}"
        case = cases.get(name)
        if case is None:
            start, end = float(line["start"]), float(line["end"])
            detect_from = float(line.get("evidence_from", start))
            until = max(end, float(line.get("evidence_until", end))) + grace
            case = cases[name] = Case(
                name, str(line["kind"]), bool(line.get("control", False)), start, end, [], [], [],
                str(line.get("shape", "step")), detect_from, until, replayed.traffic.label,
                scored=start >= replayed.first_ts + burn_in,
            )  # fmt: skip
        else:
            if "evidence_from" in line:
                case.detect_from = min(case.detect_from, float(line["evidence_from"]))
            if "evidence_until" in line:
                case.detect_until = max(case.detect_until, float(line["evidence_until"]) + grace)
        if line.get("journey") is not None or line.get("channel") is not None:
            place: Place4 = (line.get("journey"), line.get("step"), line.get("channel"), line.get("queue"))
            if place not in case.places:
                case.places.append(place)
        metric = str(line.get("survey") or line.get("metric", "*"))
        if metric not in case.metrics:
            case.metrics.append(metric)
        magnitude = line.get("magnitude")
        if isinstance(magnitude, int | float) and not isinstance(magnitude, bool):
            case.magnitudes.append(float(magnitude))
    return sorted(cases.values(), key=lambda case: (case.start, case.name))


# -- the oracle ----------------------------------------------------------------------------------


def with_pooled_steps(
    series: Sequence[tuple[Sequence[str], str]], windows: dict[int, list[tuple[float, float, float]]]
) -> tuple[list[tuple[Sequence[str], str]], dict[int, list[tuple[float, float, float]]]]:
    """The series and their windows, plus each step's click metrics pooled over its channels
    (channel ``all``), as the detector bank pools them: the oracle sees the same evidence."""
    groups: dict[tuple[str, str, str], list[int]] = {}
    for sid, (place, metric) in enumerate(series):
        if place[1] and not place[3] and not (len(place) > 4 and place[4]) and sid in windows:
            groups.setdefault((place[0], place[1], metric), []).append(sid)
    series, windows = list(series), dict(windows)
    for (journey, step, metric), members in groups.items():
        if len(members) < 2:
            continue
        sums: dict[float, list[float]] = {}
        for sid in members:
            for ts, value, volume in windows[sid]:
                total = sums.setdefault(ts, [0.0, 0.0])
                total[0] += value * volume
                total[1] += volume
        windows[len(series)] = [
            (ts, amount / volume, volume) for ts, (amount, volume) in sorted(sums.items()) if volume > 0
        ]
        series.append(((journey, step, ALL_CHANNELS, "", ""), metric))
    return series, windows


def run_oracle(replayed: Replayed, cases: list[Case], budget_days: float) -> None:
    """Fill in each incident's oracle delay, status, effect and volume (the volume of the
    busiest channel's series: a step's pooled series count for the delay, not the bucket)."""
    all_series, windows = with_pooled_steps(replayed.series, replayed.series_windows())
    for case in cases:
        if case.control:
            continue
        wanted = {series for metric in case.metrics for series in SERIES_OF.get(metric, ())}
        best: tuple[float, float | None, str, float, float] | None = None  # (delay, effect, series, units, margin)
        reachable = over_budget = False
        volume = 0.0
        others = [other for other in cases if other is not case]
        for sid, (place, metric) in enumerate(all_series):
            if sid not in windows or not case.matches(place) or (wanted and metric not in wanted):
                continue
            model = oracle.MODELS.get(metric)
            if model is None:
                continue
            series = windows[sid]
            times = [ts for ts, _, _ in series]
            onset = bisect.bisect_right(times, case.detect_from)
            high = bisect.bisect_right(times, case.detect_until)
            history = [w for w in series[:onset] if not _disturbed(w[0], place, others, replayed.window_size)]
            low = bisect.bisect_left([ts for ts, _, _ in history], case.detect_from - PRE_SECONDS)
            if place[2] != ALL_CHANNELS:
                volume = max(volume, sum(v for _, _, v in history[low:]) / (PRE_SECONDS / 60.0))
            before = _recent(history, low, BEFORE_UNITS)
            after = series[onset:high]
            pooled_before = oracle.pooled(model, before)
            pooled_after = oracle.pooled(model, after) if model in ("binomial", "poisson") else _mean(model, after)
            if pooled_before is None or pooled_after is None:
                continue
            reachable = True
            level, variance = pooled_before
            if model in ("binomial", "poisson"):  # half a unit more than seen: 0 of 30 is no certainty
                units = sum(v for _, _, v in before)
                level = (level * units + 0.5) / (units + 1.0)
            else:
                variance = _unit_variance(model, history) or variance
            worse = BY_NAME[metric].direction
            if (worse == "down" and pooled_after[0] >= level) or (worse == "up" and pooled_after[0] <= level):
                continue  # the series got better: no detector watching for friction should alarm
            parameters = oracle.Parameters(model, level, pooled_after[0], variance)
            i0 = sum(oracle.divergence(parameters, v) for _, _, v in before) / len(before)
            arl0 = budget_days * len(series) / max(replayed.days, 1e-9)
            h = oracle.threshold(arl0, i0)
            alarm, _ = oracle.cusum_alarm(parameters, after, h)
            if alarm is not None:
                normal = normal_windows(series, place, cases, case.detect_from, replayed.window_size)
                if not keeps_budget(parameters, h, normal, budget_days, replayed.window_size):
                    over_budget, alarm = True, None
            if alarm is not None and (best is None or alarm - case.detect_from < best[0]):
                units = sum(judged for ts, _, judged in after if ts <= alarm)  # not `volume`: that one is the case's
                margin = oracle.cusum_alarm(parameters, after, math.inf)[1] / h
                best = (alarm - case.detect_from, parameters.relative_change, series_name(place, metric), units, margin)
        case.volume_per_minute = volume if reachable else None
        if best is not None:
            case.oracle_delay, case.effect, case.oracle_series, case.oracle_units, case.oracle_margin = best
            case.oracle_status = "detected"
        elif over_budget:
            case.oracle_status = "over budget"
        elif reachable:
            case.oracle_status = "undetectable"


def normal_windows(
    series: Sequence[tuple[float, float, float]],
    place: Sequence[str],
    cases: list[Case],
    onset: float,
    window_size: float,
) -> list[list[tuple[float, float, float]]]:
    """The series' windows within ``BUDGET_CHECK_SECONDS`` of ``onset``'s time of day, one list per
    day, without those of an incident or control at ``place`` (from a window before its start to
    ``ECHO`` after its end)."""
    day = 86400.0
    by_day: dict[int, list[tuple[float, float, float]]] = {}
    for window in series:
        ts = window[0]
        days_away = round((ts - onset) / day)
        if abs(ts - onset - days_away * day) > BUDGET_CHECK_SECONDS:
            continue
        if any(case.matches(place) and case.start - window_size < ts <= case.end + ECHO for case in cases):
            continue
        by_day.setdefault(days_away, []).append(window)
    return list(by_day.values())


def keeps_budget(
    parameters: oracle.Parameters,
    h: float,
    days: list[list[tuple[float, float, float]]],
    budget_days: float,
    window_size: float,
) -> bool:
    """Whether the oracle's test (``parameters``, threshold ``h``) alarms on the normal ``days``
    (:func:`normal_windows`, windows of ``window_size`` seconds) no more often than a test keeping
    one false alarm per ``budget_days`` would, but for a 1% chance.

    >>> parameters = oracle.Parameters("lognormal", 0.75, 1.7, 0.27)  # waits of ~2 s, after ~5.5 s
    >>> usual = [[(60.0 * i + 86400 * d, 2.0, 1.0) for i in range(180)] for d in range(7)]
    >>> keeps_budget(parameters, 9.8, usual, 200.0, 60.0)
    True
    >>> usual[3][90] = (usual[3][90][0], 66.0, 1.0)  # one caller waits 66 s on a normal day
    >>> keeps_budget(parameters, 9.8, usual, 200.0, 60.0)
    False
    """
    alarms, exposure = 0, 0.0
    for windows in days:
        statistic = 0.0
        for _, value, volume in windows:
            if volume <= 0:
                continue
            statistic = max(0.0, statistic + oracle.llr(parameters, value, volume))
            if statistic >= h:
                alarms, statistic = alarms + 1, 0.0
        exposure += min(2 * BUDGET_CHECK_SECONDS, windows[-1][0] - windows[0][0] + window_size) / 86400.0
    allowed = exposure / budget_days
    chance = 1.0 - sum(math.exp(-allowed) * allowed**k / math.factorial(k) for k in range(alarms))
    return chance >= BUDGET_CHECK_P


def _recent(history: Sequence[tuple[float, float, float]], low: int, units: float) -> list[tuple[float, float, float]]:
    """``history[low:]``, reaching further back while it holds fewer than ``units`` units."""
    total = sum(volume for _, _, volume in history[low:])
    while low > 0 and total < units:
        low -= 1
        total += history[low][2]
    return list(history[low:])


def _unit_variance(model: oracle.Model, history: Sequence[tuple[float, float, float]]) -> float | None:
    """The per-unit variance of the last ``VARIANCE_UNITS`` units of ``history`` (windows in
    time order), each ``PRE_SECONDS`` block about its own mean so the daily profile doesn't
    count as spread; None with fewer units (the two hours' estimate stands)."""
    used: list[tuple[float, float, float]] = []
    units = 0.0
    for ts, value, volume in reversed(history):
        if volume > 0:
            used.append((ts, oracle.transform(model, value), volume))
            units += volume
            if units >= VARIANCE_UNITS:
                break
    if units < VARIANCE_UNITS:
        return None
    blocks: dict[int, list[tuple[float, float]]] = {}
    for ts, x, volume in used:
        blocks.setdefault(int(ts // PRE_SECONDS), []).append((x, volume))
    squares, freedom = 0.0, 0
    for block in blocks.values():
        mean = sum(x * v for x, v in block) / sum(v for _, v in block)
        squares += sum(v * (x - mean) ** 2 for x, v in block)
        freedom += len(block) - 1
    return max(squares / freedom, 1e-6) if freedom > 0 else None


def _mean(model: oracle.Model, windows: Sequence[tuple[float, float, float]]) -> tuple[float, float] | None:
    total = sum(volume for _, _, volume in windows if volume > 0)
    if total <= 0:
        return None
    return sum(oracle.transform(model, value) * volume for _, value, volume in windows if volume > 0) / total, 1.0


def _disturbed(ts: float, place: Sequence[str], cases: list[Case], window_size: float) -> bool:
    """Whether the window ending at ``ts`` overlaps another incident at ``place`` (or its echo)."""
    return any(
        not case.control and case.matches(place) and case.start - window_size < ts <= case.end + ECHO for case in cases
    )


# -- contenders ----------------------------------------------------------------------------------


@dataclass(slots=True)
class Outcome:
    """A contender on one traffic set."""

    caught: dict[str, float] = field(default_factory=dict)  # incident -> time to detect
    false_episodes: int = 0
    false_in_controls: int = 0
    false_by_series: dict[str, int] = field(default_factory=dict)
    #: each false episode: its first alert's series, hours into the traffic set, and the control it fell in
    false_alerts: list[dict[str, Any]] = field(default_factory=list)
    days: float = 0.0


def score(replayed: Replayed, cases: list[Case], alerts: list[AlertRow], burn_in: float) -> Outcome:
    """What a contender's alerts catch and how many false episodes they make."""
    window = replayed.window_size
    first_scored = replayed.first_ts + burn_in
    last = replayed.last_ts + window
    kept = sorted((row for row in alerts if first_scored <= row[2] <= last), key=lambda row: row[2])
    outcome = Outcome(days=max(replayed.last_ts - first_scored, 0.0) / 86400.0)
    incidents = [case for case in cases if not case.control]
    for case in incidents:
        if not case.scored:
            continue
        for place, _metric, start, _end, _ in kept:
            if case.detect_from <= start <= case.detect_until and case.matches(place):
                outcome.caught[case.name] = start - case.detect_from
                break
    episodes: dict[tuple[str, str, str, str], list[list[AlertRow]]] = {}
    for row in kept:
        touchpoint = (row[0][0], row[0][1], row[0][2], row[0][3])
        runs = episodes.setdefault(touchpoint, [])
        if runs and row[2] <= max(other[3] for other in runs[-1]) + EPISODE_GAP:
            runs[-1].append(row)
        else:
            runs.append([row])
    controls = [case for case in cases if case.control]
    for runs in episodes.values():
        for episode in runs:
            if any(_explained(row, incidents, window) for row in episode):
                continue
            outcome.false_episodes += 1
            first = episode[0]
            name = series_name(first[0], first[1])
            outcome.false_by_series[name] = outcome.false_by_series.get(name, 0) + 1
            control = next(
                (case for case in controls if case.start <= first[2] <= case.end + ECHO and case.matches(first[0])),
                None,
            )
            outcome.false_in_controls += control is not None
            outcome.false_alerts.append(
                {
                    "traffic": replayed.traffic.label,
                    "series": name,
                    "hour": round((first[2] - replayed.first_ts) / 3600.0, 2),
                    "alerts": len(episode),
                    "control": control.kind if control is not None else None,
                }
            )
    return outcome


def _explained(row: AlertRow, incidents: list[Case], window: float) -> bool:
    place, _, start = row[0], row[1], row[2]
    return any(
        case.start - GRACE_WINDOWS * window <= start <= max(case.end, case.detect_until) + ECHO and case.matches(place)
        for case in incidents
    )


# -- summaries -----------------------------------------------------------------------------------


def bucket(value: float | None, edges: Sequence[float]) -> int | None:
    """Index of the bucket whose lower edge is the largest not above ``value``."""
    if value is None or not math.isfinite(value):
        return None if value is None or math.isnan(value) else len(edges) - 1
    return max(0, bisect.bisect_right(edges, value) - 1)


def bucket_label(index: int, edges: Sequence[float], unit: str) -> str:
    low = edges[index]
    if index + 1 < len(edges):
        return f"{low:g}-{edges[index + 1]:g}{unit}"
    return f">={low:g}{unit}"


def quantile(values: Sequence[float], share: float) -> float | None:
    """The ``share`` quantile (linear between order statistics); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = share * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summary(name: str, cases: list[Case], outcomes: list[Outcome]) -> dict[str, Any]:
    """One contender (or the oracle, given its own outcomes) over every traffic set."""
    scored = [case for case in cases if not case.control and case.scored]
    caught: dict[str, float] = {}
    for outcome in outcomes:
        caught.update(outcome.caught)
    detectable = [case for case in scored if case.oracle_status == "detected"]
    delays = [caught[case.name] for case in scored if case.name in caught]
    both = [case for case in detectable if case.name in caught and case.oracle_delay is not None]
    mine = quantile([caught[case.name] for case in both], 0.5)
    theirs = quantile([case.oracle_delay for case in both if case.oracle_delay is not None], 0.5)
    days = sum(outcome.days for outcome in outcomes)
    false = sum(outcome.false_episodes for outcome in outcomes)
    by_series: dict[str, int] = {}
    for outcome in outcomes:
        for series, count in outcome.false_by_series.items():
            by_series[series] = by_series.get(series, 0) + count
    grid: dict[str, dict[str, list[int]]] = {}
    for case in scored:
        size = bucket(case.size, SIZE_BUCKETS)
        volume = bucket(case.volume_per_minute, VOLUME_BUCKETS)
        if size is None or volume is None:
            continue
        cell = grid.setdefault(bucket_label(volume, VOLUME_BUCKETS, "/min"), {}).setdefault(
            bucket_label(size, SIZE_BUCKETS, "x"), [0, 0]
        )
        cell[0] += case.name in caught
        cell[1] += 1
    return {
        "name": name,
        "incidents": len(scored),
        "caught": len(delays),
        "recall": len(delays) / len(scored) if scored else None,
        "oracle_detectable": len(detectable),
        "caught_of_detectable": sum(case.name in caught for case in detectable),
        "recall_of_detectable": (sum(case.name in caught for case in detectable) / len(detectable))
        if detectable
        else None,
        "median_delay_seconds": quantile(delays, 0.5),
        "p90_delay_seconds": quantile(delays, 0.9),
        "median_vs_oracle": (mine / theirs) if mine is not None and theirs else None,
        "both_caught": len(both),
        "false_episodes": false,
        "false_in_controls": sum(outcome.false_in_controls for outcome in outcomes),
        "scored_days": days,
        "false_per_day": false / days if days else None,
        "false_by_series": dict(sorted(by_series.items(), key=lambda item: -item[1])[:8]),
        "false_alerts": [alert for outcome in outcomes for alert in outcome.false_alerts],
        "power": grid,  # volume bucket -> size bucket -> [caught, incidents]
    }


def oracle_outcome(cases: list[Case]) -> Outcome:
    """The oracle's catches, as an outcome (false alarms: by construction the budget)."""
    return Outcome(
        caught={case.name: case.oracle_delay for case in cases if case.scored and case.oracle_delay is not None}
    )
