"""Random incidents and controls drawn from the seed (``frictionwatch generate --random-incidents N``).

For a benchmark sweep: every incident is drawn from the seed alone, so the same seed, map
and span give the same incidents.

* **touchpoint**: any step of any journey or any queue of the map, uniformly; on a step,
  20% of incidents hit one channel only and 10% one device only;
* **kind**: uniformly among the fault kinds that make sense there (no conversion drop on a
  last step, no abandonment spike where nobody abandons, surveys only where asked);
* **magnitude**: the relative change of the kind's main parameter is log-uniform over
  :data:`CHANGES` (tiny to huge: a 3% drop-off to a 90% one, errors x1.3 to x50, ...);
* **shape**: a step half the time, else a linear or a triangular ramp;
* **duration**: log-uniform from 5 to 60 minutes (at most half the run); **start**: uniform over the run (day
  and night), after the first :data:`SETTLE_SECONDS` (or a tenth of a shorter run);
* incidents on one touchpoint never overlap and keep :data:`GAP_SECONDS` apart (session-end
  metrics echo an incident for about half an hour).

Controls (``--random-controls M``) cycle through the control kinds that fit the span:
``traffic_surge`` (x1.5-4 for 15 min-3 h), ``late_batch`` (a 1-10 min window 1-10 min
late), ``campaign_mix`` (+20-100% sessions entering one step for 1-6 h), and from two days
on ``holiday`` (a whole UTC day, not the first) and ``slow_drift`` (continuation 5-20% up
or down over one to three days). Whole-map controls don't overlap each other but may overlap
incidents in time; a touchpoint control keeps incidents (and other controls) off its touchpoint.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from random import Random
from typing import Final

from frictionwatch.generator.curves import DAY, HOUR
from frictionwatch.generator.devices import DEVICES
from frictionwatch.generator.model import TrafficModel
from frictionwatch.generator.scenario import METRICS, SATISFIED, Incident

# The relative change of each kind's main parameter, drawn log-uniformly between these bounds.
CHANGES: Final[dict[str, tuple[float, float]]] = {
    "dropoff": (0.03, 0.9),  # continuation x (1 - change)
    "step_outage": (0.1, 0.95),  # continuation x (1 - change); error_rate x (1 + a change in 1-40)
    "error_burst": (0.3, 50.0),  # error_rate x (1 + change)
    "slow_page": (0.1, 5.0),  # dwell x (1 + change)
    "understaffed": (0.1, 4.0),  # agents / (1 + change)
    "abandonment_spike": (0.2, 10.0),  # patience / (1 + change)
    "feedback_collapse": (0.03, 0.8),  # satisfaction x (1 - change)
}
DURATION_SECONDS: Final = (300.0, 3600.0)
GAP_SECONDS: Final = 1800.0
SETTLE_SECONDS: Final = 2 * HOUR
ONE_CHANNEL: Final = 0.2
ONE_DEVICE: Final = 0.1
SHAPES: Final = (("step", 0.5), ("linear_ramp", 0.75), ("triangular_ramp", 1.0))  # cumulative
ATTEMPTS: Final = 500


@dataclass(frozen=True, slots=True)
class Touchpoint:
    """A step (journey, step) or a queue (channel, queue) and the fault kinds that fit it."""

    key: tuple[str, str]
    kinds: tuple[str, ...]
    channels: tuple[str, ...] = ()
    surveys: tuple[str, ...] = ()
    continuation: float = 0.0
    error_rate: float = 0.0
    queue: bool = False


def touchpoints(model: TrafficModel) -> list[Touchpoint]:
    """Every step and queue of the map with the kinds of incident it can have."""
    found = []
    for step in model.steps:
        kinds = ["error_burst", "slow_page"]
        if step.continuation > 0.0:
            kinds[:0] = ["step_outage", "dropoff"]
        if step.surveys:
            kinds.append("feedback_collapse")
        found.append(
            Touchpoint(
                (step.journey, step.name), tuple(kinds), step.channels, step.surveys, step.continuation, step.error_rate
            )
        )
    for queue in model.queues:
        kinds = ["understaffed"]
        if queue.profile.patience_mean is not None:
            kinds.append("abandonment_spike")
        if queue.surveys:
            kinds.append("feedback_collapse")
        found.append(Touchpoint((queue.channel, queue.queue), tuple(kinds), surveys=queue.surveys, queue=True))
    return found


def draw(
    model: TrafficModel,
    seed: int,
    start: float,
    end: float,
    incidents: int,
    controls: int,
    taken: Sequence[Incident] = (),
) -> list[Incident]:
    """``controls`` controls and ``incidents`` incidents on ``model``'s map over [start, end), from ``seed``.

    ``taken``: incidents already placed (a scenario's); the drawn ones keep off their
    touchpoints in time too. Raises ValueError when they cannot be fitted in.
    """
    rng = Random(f"frictionwatch-incidents/{seed}")
    places = touchpoints(model)
    busy: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for incident in taken:
        for key in _keys(incident):
            busy.setdefault(key, []).append((incident.start, incident.end))
    drawn = _controls(rng, places, start, end, controls, busy)
    settle = min(SETTLE_SECONDS, (end - start) / 10.0)
    for number in range(1, incidents + 1):
        for _ in range(ATTEMPTS):
            place = places[rng.randrange(len(places))]
            duration = round(min(_log_uniform(rng, *DURATION_SECONDS), (end - start - settle) / 2))
            at = round(start + settle + rng.random() * (end - start - settle - duration))
            if _free(busy.get(place.key, []), at, at + duration, GAP_SECONDS):
                break
        else:
            raise ValueError(
                f"could not fit {incidents} random incidents {GAP_SECONDS / 60:.0f} min apart per touchpoint "
                f"into the run: give fewer or a longer --duration"
            )
        busy.setdefault(place.key, []).append((at, at + duration))
        drawn.append(_incident(rng, place, f"random-{number:03d}", at, at + duration))
    return sorted(drawn, key=lambda incident: (incident.start, incident.name))


def _incident(rng: Random, place: Touchpoint, name: str, start: float, end: float) -> Incident:
    kind = place.kinds[rng.randrange(len(place.kinds))]
    low, high = CHANGES[kind]
    change = _log_uniform(rng, low, high)
    shape = next(shape for shape, cumulative in SHAPES if rng.random() < cumulative)
    parameters: tuple[tuple[str, float], ...]
    if kind == "dropoff":
        parameters = (("factor", round(1.0 - change, 4)),)
    elif kind == "step_outage":
        error_rate = min(1.0, place.error_rate * (1.0 + _log_uniform(rng, 1.0, 40.0)))
        parameters = (("continuation", round(place.continuation * (1.0 - change), 4)), ("error_rate", error_rate))
    elif kind == "error_burst":
        parameters = (("error_rate", round(min(1.0, place.error_rate * (1.0 + change)), 5)),)
    elif kind == "feedback_collapse":
        parameters = (("severity", round(SATISFIED * change, 4)),)
    else:  # slow_page, understaffed, abandonment_spike
        parameters = (("factor", round(1.0 + change, 4)),)
    name = f"{name}-{kind}"
    metrics = METRICS.get(kind) or place.surveys
    if place.queue:
        return Incident(name, kind, start, end, metrics, channel=place.key[0], queues=(place.key[1],),
                        parameters=parameters, shape=shape)  # fmt: skip
    journey, step = place.key
    channel: str | None = None
    device: str | None = None
    partial = rng.random()
    devices = [(c, d) for c in place.channels if c in DEVICES for d in DEVICES[c][0]]
    if partial < ONE_DEVICE and devices:
        channel, device = devices[rng.randrange(len(devices))]
    elif partial < ONE_DEVICE + ONE_CHANNEL and len(place.channels) > 1:
        channel = place.channels[rng.randrange(len(place.channels))]
    return Incident(name, kind, start, end, metrics, journey, step, channel, parameters=parameters, shape=shape,
                    device=device)  # fmt: skip


def _controls(
    rng: Random,
    places: list[Touchpoint],
    start: float,
    end: float,
    count: int,
    busy: dict[tuple[str, str], list[tuple[float, float]]],
) -> list[Incident]:
    span = end - start
    kinds = ["traffic_surge", "late_batch", "campaign_mix"]
    if span >= 2 * DAY:
        kinds += ["holiday", "slow_drift"]
    steps = [place for place in places if not place.queue and place.continuation > 0.0]
    placed: list[tuple[float, float]] = []
    drawn: list[Incident] = []
    for number in range(count):
        kind = kinds[number % len(kinds)]
        for _ in range(ATTEMPTS):
            control = _control(rng, kind, steps, start, end, f"control-{number + 1:03d}-{kind}")
            keys = _keys(control)
            if keys:  # a touchpoint control: alone on its touchpoint
                if all(_free(busy.get(key, []), control.start, control.end, GAP_SECONDS) for key in keys):
                    break
            elif _free(placed, control.start, control.end, GAP_SECONDS):  # whole-map controls: one at a time
                break
        else:
            raise ValueError(f"could not fit {count} random controls into the run: give fewer or a longer --duration")
        if not keys:
            placed.append((control.start, control.end))
        for key in keys:
            busy.setdefault(key, []).append((control.start, control.end))
        drawn.append(control)
    return drawn


def _control(rng: Random, kind: str, steps: list[Touchpoint], start: float, end: float, name: str) -> Incident:
    settle = min(SETTLE_SECONDS, (end - start) / 10.0)
    metrics = ("*",)
    if kind == "holiday":
        first_day = math.floor(start / DAY) + 1
        days = range(first_day, math.floor(end / DAY))
        day = days[rng.randrange(len(days))] * DAY if days else first_day * DAY
        return Incident(name, kind, day, day + DAY, metrics, shape="step")
    if kind == "slow_drift":
        duration = min(rng.uniform(1.0, 3.0) * DAY, (end - start - settle) * 0.6)
        duration_shape = "linear_ramp"
    else:
        duration = {
            "traffic_surge": _log_uniform(rng, 900.0, 3 * HOUR),
            "late_batch": rng.uniform(60.0, 600.0),
            "campaign_mix": rng.uniform(1.0, 6.0) * HOUR,
        }[kind]
        duration = min(duration, (end - start - settle) * 0.5)
        duration_shape = next(shape for shape, cumulative in SHAPES if rng.random() < cumulative)
    duration = round(duration)
    at = round(start + settle + rng.random() * max(0.0, end - start - settle - duration))
    if kind == "traffic_surge":
        factor = round(rng.uniform(1.5, 4.0), 3)
        return Incident(name, kind, at, at + duration, metrics, parameters=(("factor", factor),), shape=duration_shape)
    if kind == "late_batch":
        delay = float(round(rng.uniform(60.0, 600.0)))
        return Incident(name, kind, at, at + duration, metrics, parameters=(("delay", delay),), shape="step")
    place = steps[rng.randrange(len(steps))]
    journey, step = place.key
    if kind == "campaign_mix":
        share = round(rng.uniform(0.2, 1.0), 3)
        return Incident(name, kind, at, at + duration, metrics, journey, step, parameters=(("share", share),),
                        shape=duration_shape)  # fmt: skip
    change = _log_uniform(rng, 0.05, 0.2)  # 5-20% up or down, over days
    factor = round(1.0 + change if rng.random() < 0.5 else 1.0 - change, 4)
    return Incident(name, kind, at, at + duration, metrics, journey, step, parameters=(("factor", factor),),
                    shape=duration_shape)  # fmt: skip


def _keys(incident: Incident) -> list[tuple[str, str]]:
    """The touchpoints an incident occupies (none for a whole-map control)."""
    if incident.journey is not None and incident.step is not None:
        return [(incident.journey, incident.step)]
    return [(incident.channel or "", queue) for queue in incident.queues]


def _free(taken: list[tuple[float, float]], start: float, end: float, gap: float) -> bool:
    return all(end + gap <= other_start or start >= other_end + gap for other_start, other_end in taken)


def _log_uniform(rng: Random, low: float, high: float) -> float:
    return math.exp(rng.uniform(math.log(low), math.log(high)))
