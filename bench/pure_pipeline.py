"""Events/s of the pure per-event path (decode, validate, sessions, windows, counters) in one
process, against a baseline measured in the same run: orjson decoding of the same records.
Stage 1 runs with the Python click decoder (the reference) and the compiled one (native/), in
alternating rounds; each keeps its best, and every round is printed.

No Kafka and no Faust: this is the ceiling of the worker's own code (docs/metrics.md,
"Throughput by design"). Run: python -m bench.pure_pipeline [--events 200000]
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import orjson
from prometheus_client import CollectorRegistry

from bench.common import machine, machine_line
from frictionwatch.contract import EventValidator
from frictionwatch.generator import GeneratorConfig, generate
from frictionwatch.journeymap import JourneyMap, load_journey_map
from frictionwatch.partitioning import partition_for
from frictionwatch.streams.exposition import FrictionMetrics
from frictionwatch.streams.friction import Friction
from frictionwatch.streams.ingest import RecordDecoder

TOPICS = {"clicks": "journey.clicks", "contacts": "journey.contacts", "feedback": "journey.feedback"}
PARTITIONS = 4


def records(count: int, batch: int, start: float | None = None) -> list[tuple[str, int, bytes, int]]:
    """(topic, partition, value, events) packed per partition as the contract requires; event
    time from ``start`` (default: a day ago)."""
    journey_map = load_journey_map()
    start = time.time() - 86400 if start is None else start
    config = GeneratorConfig(seed=1, rate=500, count=count, start=start, daily_pattern=False)
    pending: dict[tuple[str, int], list[bytes]] = defaultdict(list)
    out: list[tuple[str, int, bytes, int]] = []
    for record in generate(journey_map, config):
        topic = TOPICS[record.kind]
        partition = partition_for(record.key.encode(), PARTITIONS) if record.key and record.kind != "feedback" else 0
        parts = pending[topic, partition]
        parts.append(orjson.dumps(record.value))
        if len(parts) == batch:
            value = parts[0] if batch == 1 else b"[" + b",".join(parts) + b"]"
            out.append((topic, partition, value, len(parts)))
            parts.clear()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument(
        "--rounds", type=int, default=3, help="stage 1 runs per decoder, alternating (default 3; the best is kept)"
    )
    args = parser.parse_args()
    journey_map = load_journey_map()
    print(f"machine: {machine_line(machine())}")
    print(f"{'records':>10} {'case':<44} {'events/s':>10} {'ratio':>6}")
    for batch in (1, 50):
        data = records(args.events, batch)
        events = sum(count for *_, count in data)
        started = time.perf_counter()
        for _, _, value, _ in data:
            orjson.loads(value)
        baseline = events / (time.perf_counter() - started)
        label = "single events" if batch == 1 else f"arrays of {batch}"
        print(f"{len(data):>10,} {'orjson decode only (baseline), ' + label:<44} {baseline:>10,.0f} {1:>6.2f}")
        # Alternating rounds, the best of each kept: a process's first runs are up to 1.5 times
        # slower than its later ones (2026-12-03), so one run of each would favour the second.
        rates: dict[str, list[float]] = {"python": [], "compiled": []}
        for _ in range(args.rounds):
            for decoder, found in rates.items():
                found.append(stage_one(journey_map, data, events, compiled=decoder == "compiled"))
        for decoder, found in rates.items():
            case = f"stage 1, {decoder} click decoder, {label}"
            rounds = " / ".join(f"{rate:,.0f}" for rate in found)
            print(f"{len(data):>10,} {case:<44} {max(found):>10,.0f} {max(found) / baseline:>6.2f}  ({rounds})")


def stage_one(
    journey_map: JourneyMap,
    data: list[tuple[str, int, bytes, int]],
    events: int,
    compiled: bool,
    seconds_per_event: float | None = None,
) -> float:
    """Events/s of decode, validate and stage 1 (sessions, windows, evidence counts, counters) over ``data``.

    ``seconds_per_event``: the stage's wall clock moves this much an event applied, instead of with
    time. The evidence ticks are spaced in wall time too (streams/evidence.py, ``WALL_TICK``): under
    valgrind, 50-100 times slower, they would come that much more often an event than at full speed.
    """
    applied = 0
    validator = EventValidator(journey_map)
    decoders = {
        topic: RecordDecoder(kind, validator, partitions=PARTITIONS, compiled=compiled)  # type: ignore[arg-type]
        for kind, topic in TOPICS.items()
    }
    kinds = {topic: kind for kind, topic in TOPICS.items()} | {"touches": "touches"}
    friction = Friction(
        journey_map, FrictionMetrics(CollectorRegistry(), journey_map), kinds,  # type: ignore[arg-type]
        dict.fromkeys([*TOPICS.values(), "touches"], PARTITIONS), windows_topic="windows", touches_topic="touches",
        clock=time.monotonic if seconds_per_event is None else lambda: applied * seconds_per_event,
    )  # fmt: skip
    now = time.time()
    started = time.perf_counter()
    for topic, partition, value, count in data:
        decoded = decoders[topic].decode(value, partition, now)
        if decoded.events:
            friction.events(topic, partition, decoded.events)
        applied += count
    return events / (time.perf_counter() - started)


if __name__ == "__main__":
    main()
