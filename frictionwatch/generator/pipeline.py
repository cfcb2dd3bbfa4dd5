"""From a journey map and a config to records: the pure part of the generator (no I/O).

The simulation starts ``WARMUP_SECONDS`` before the run start and drops what happens
before it, so the first second of a run already looks like steady traffic.

:func:`generate` yields :class:`GeneratedRecord` items in event-time order; it never
sleeps, even in wall mode (:func:`paced` does that, and :func:`~frictionwatch.generator.
sinks.run` uses it). Pin the config once (``config.pinned()``) when you call both
:func:`generate` and :func:`incidents`, so they agree on the run start.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from random import Random

from frictionwatch.generator.clocks import skewed
from frictionwatch.generator.config import GeneratorConfig
from frictionwatch.generator.curves import TrafficPattern
from frictionwatch.generator.draw import draw
from frictionwatch.generator.magnitude import measured
from frictionwatch.generator.malformed import corrupt
from frictionwatch.generator.model import TrafficModel, build_model
from frictionwatch.generator.records import GeneratedRecord
from frictionwatch.generator.scenario import Incident, Scenario, load_scenario
from frictionwatch.generator.traffic import Calibration, Simulation, calibrate
from frictionwatch.journeymap import JourneyMap

# Sessions already under way when the run starts: simulated from this long before it, not emitted.
# Ten minutes give about 92% of the steady event rate at the first second and all of it soon after.
WARMUP_SECONDS = 600.0
# Seeds of the side streams, so turning malformed records on leaves the traffic itself unchanged.
_MALFORMED_STREAM = 0x6D616C66


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything :func:`generate` derives before the first event (exposed for tests and tools)."""

    config: GeneratorConfig
    scenario: Scenario
    model: TrafficModel
    calibration: Calibration
    incidents: tuple[Incident, ...]
    session_rate: float
    id_prefix: str


def plan(journey_map: JourneyMap, config: GeneratorConfig) -> Plan:
    """Load the scenario, build and calibrate the traffic model, place the incidents.

    Raises :class:`~frictionwatch.generator.scenario.ScenarioError` for a bad scenario.
    """
    config = config.pinned()
    assert config.start is not None
    scenario = load_scenario(config.scenario, journey_map) if config.scenario is not None else Scenario()
    model = build_model(journey_map, scenario.baseline)
    placed = _placed(journey_map, config, scenario, model)
    calibration = calibrate(model)
    digest = hashlib.blake2b(f"{config.seed}/{config.start:.3f}".encode(), digest_size=4).hexdigest()
    return Plan(
        config=config,
        scenario=scenario,
        model=model,
        calibration=calibration,
        incidents=placed,
        session_rate=config.rate / calibration.events_per_session,
        id_prefix=digest,
    )


def incidents(journey_map: JourneyMap, config: GeneratorConfig) -> list[Incident]:
    """The ground truth: the scenario's incidents placed in event time and clipped to the
    run's span (those entirely outside it are left out). In count mode the span has no
    known end; :func:`~frictionwatch.generator.sinks.run` clips to the last event."""
    config = config.pinned()
    assert config.start is not None
    if config.scenario is None and not config.random_incidents and not config.random_controls:
        return []
    scenario = load_scenario(config.scenario, journey_map) if config.scenario is not None else Scenario()
    placed = _placed(journey_map, config, scenario, build_model(journey_map, scenario.baseline))
    return clip(placed, config.start, config.end)


def _placed(
    journey_map: JourneyMap, config: GeneratorConfig, scenario: Scenario, model: TrafficModel
) -> tuple[Incident, ...]:
    """The scenario's incidents and the random ones, placed in event time and measured."""
    assert config.start is not None
    placed = scenario.resolve(config.start)
    if config.random_incidents or config.random_controls:
        drawn = draw(model, config.seed, config.start, config.end, config.random_incidents,
                     config.random_controls, taken=placed)  # fmt: skip
        placed = (*placed, *drawn)
    return tuple(measured(incident, model, scenario.baseline) for incident in placed)


def clip(incident_list: Iterable[Incident], start: float, end: float) -> list[Incident]:
    """``incident_list`` clipped to [start, end), without those entirely outside it."""
    return [clipped for incident in incident_list if (clipped := incident.within(start, end)) is not None]


def generate(journey_map: JourneyMap, config: GeneratorConfig) -> Iterator[GeneratedRecord]:
    """Synthetic traffic for ``journey_map`` as configured, in event-time order.

    Checks everything (scenario included) before returning, so errors surface at the call.
    """
    setup = plan(journey_map, config)
    assert setup.config.start is not None
    return skewed(delivered(_records(setup), setup.incidents), config.clock_skews, setup.config.start)


def _records(setup: Plan) -> Iterator[GeneratedRecord]:
    config = setup.config
    assert config.start is not None
    simulation = Simulation(
        setup.model,
        rng=Random(config.seed),
        start=config.start - WARMUP_SECONDS,
        session_rate=setup.session_rate,
        pattern=TrafficPattern(flat=not config.daily_pattern),
        incidents=setup.incidents,
        calibration=setup.calibration,
        id_prefix=setup.id_prefix,
        arrivals_until=config.end,
        feedback_delay=setup.scenario.baseline.feedback_delay,
    )
    malformed_rate = config.malformed_rate
    malformed_rng = Random(config.seed ^ _MALFORMED_STREAM)
    limit = config.count if config.count is not None else -1
    prefix = f"e-{setup.id_prefix}-"
    start, end, produced = config.start, config.end, 0
    for kind, key, event in simulation.run(end):
        if event["ts"] < start:
            continue  # warming up: the run starts with sessions, contacts and surveys under way
        if event["ts"] >= end:
            return  # rounded to the millisecond onto the end: the run covers [start, end)
        produced += 1
        event_id = event["event_id"] = f"{prefix}{produced:x}"
        if key is None:
            key = event_id
        if malformed_rate and malformed_rng.random() < malformed_rate:
            malformed, value, raw = corrupt(malformed_rng, kind, event)
            yield GeneratedRecord(kind, key, value, raw, malformed.value, event["ts"])
        else:
            yield GeneratedRecord(kind, key, event, None, None, event["ts"])
        if produced == limit:
            return


def delivered(records: Iterable[GeneratedRecord], incident_list: Iterable[Incident]) -> Iterator[GeneratedRecord]:
    """``records`` in the order they reach the consumer: each ``late_batch`` holds back the
    records of its window (of its topic) and delivers them together ``delay`` after its end,
    after the records of that time."""
    batches = [incident for incident in incident_list if incident.kind == "late_batch"]
    if not batches:
        yield from records
        return
    held: list[list[GeneratedRecord]] = [[] for _ in batches]
    due = [batch.end + batch.parameter("delay") for batch in batches]
    for record in records:
        ts = record.ts
        for index, release in enumerate(due):
            if held[index] and ts >= release:
                yield from held[index]
                held[index] = []
        for index, batch in enumerate(batches):
            if batch.start <= ts < batch.end and batch.topic in (None, record.kind):
                held[index].append(record)
                break
        else:
            yield record
    for batch_records in held:
        yield from batch_records


def paced(
    records: Iterator[GeneratedRecord],
    *,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    idle: Callable[[], None] | None = None,
) -> Iterator[GeneratedRecord]:
    """``records``, each released when the wall clock reaches its event time (wall mode).

    ``idle`` is called before each wait (e.g. to flush batched Kafka records).
    """
    for record in records:
        ahead = record.ts - clock()
        if ahead > 0.005:
            if idle is not None:
                idle()
            sleep(ahead)
        yield record
