"""The worker's two immediate paths on the same events, in process: the evidence path against the window detectors.

The latency bench (bench/latency.py) measures the whole chain live, once, on a shared
machine. This one takes the Kafka, the clock and the machine's load out: the latency bench's
traffic and incidents (same seed, map and detector kind) are made by the generator and fed
in event-time order through one worker's stages (``build_friction``, ``--partitions``
partitions per topic, each record of the windows topic handed to stage 2 at once), and it
reports per incident when each path first alarmed at the incident's touchpoint, in event
time after the onset: the evidence path at the record's event time, the window detectors at
the end of the final window. Nothing waits for lateness or for partitions here, so the
window path's figures are its floor: live, each adds the allowed lateness (5 s) and the
wait for the slowest partition.

Also reported: alarms before the first onset (false alarms on normal traffic) and the series
(touchpoint and metric) at other touchpoints that alarmed during the incidents.

    python -m bench.paths                       # 1,000 events/s, 30 min of history: about 10 min
    python -m bench.paths --rate 300 --history 1800 --out bench/results/paths.json
    python -m bench.paths --incidents flow      # drop-offs, a slow page, an abandonment spike: no errors
    python -m bench.paths --fetch 20000         # partitions delivered as Kafka does through a backlog
    python -m bench.paths --layout latency      # the latency bench's timing: 15 min of history, incidents 20 s apart

``--fetch N`` hands each partition's events over in turns of 1 to N events (random, round
robin over the partitions), the way a consumer works through a backlog one fetch at a time:
partitions drift minutes apart in event time. The traffic is then held in memory first
(about 1 GB per million events).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from bench.common import machine, machine_line, series_name
from bench.latency import INCIDENTS, SEED, TIMING, Incident, scenario, steady_state_map
from frictionwatch.contract import Event, EventValidator
from frictionwatch.detectors.bank import Finding
from frictionwatch.generator import GeneratorConfig, generate
from frictionwatch.journeymap import load_journey_map
from frictionwatch.partitioning import partition_for
from frictionwatch.settings import Settings
from frictionwatch.streams.app import build_friction
from frictionwatch.streams.friction import Outbound

START = 1_795_000_000.0  # event time of the first event (2026-11-18): the same traffic every run
#: layout -> (seconds of normal traffic before the first onset after the history, seconds between
#: onsets, each incident's duration); ``latency`` is the latency bench's own (its incidents overlap,
#: and the quiet step's begins 18.5 min after the start with its 15 min of history)
LAYOUTS = {"apart": (120.0, 420.0, 420.0), "latency": TIMING[1:]}
BACKLOG_SPEED = 10_000.0  # events a second a worker works through a backlog at (with --fetch)
#: incidents without errors, where only the flow (and the queue's hang-ups) tell
FLOW_INCIDENTS = (
    Incident("payment_dropoff", "dropoff", {"journey": "purchase", "step": "payment"}, "factor: 0.3"),
    Incident("checkout_slow", "slow_page", {"journey": "purchase", "step": "checkout"}, "factor: 4"),
    Incident("cart_dropoff_web", "dropoff", {"journey": "purchase", "step": "cart", "channel": "web"}, "factor: 0.3"),
    Incident("article_dropoff", "dropoff", {"journey": "support", "step": "article"}, "factor: 0.3"),
    Incident("email_abandonment", "abandonment_spike", {"channel": "email"}, "factor: 4"),
)
INCIDENT_SETS = {"latency": INCIDENTS, "flow": FLOW_INCIDENTS}


def fetched(events: Iterable[tuple[str, int, Event]], most: int, seed: int = 1) -> Iterator[tuple[str, int, Event]]:
    """``events`` (kind, partition, event) in turns of 1 to ``most`` of one partition, round robin."""
    queues: dict[tuple[str, int], deque[tuple[str, int, Event]]] = {}
    for item in events:
        queues.setdefault(item[:2], deque()).append(item)
    rng = random.Random(seed)
    while queues:
        for key in list(queues):
            queue = queues[key]
            for _ in range(min(len(queue), rng.randint(1, most))):
                yield queue.popleft()
            if not queue:
                del queues[key]


def run(
    rate: float,
    history: float,
    partitions: int,
    workdir: Path,
    incidents: tuple[Incident, ...] = INCIDENTS,
    fetch: int = 0,
    layout: str = "apart",
) -> dict[str, Any]:
    """Feed the traffic; per incident, each path's first alarm after its onset (event-time seconds)."""
    control, stagger, duration = LAYOUTS[layout]
    text, offsets = scenario(history, control, stagger, duration, incidents)
    (workdir / "scenario.yml").write_text(text)
    journey_map = load_journey_map(steady_state_map(workdir))
    start = START
    seconds = history + control + stagger * (len(incidents) - 1) + duration + 60.0
    config = GeneratorConfig(
        seed=SEED, rate=rate, duration=seconds, start=start, scenario=workdir / "scenario.yml", daily_pattern=False
    )
    settings = Settings.load(env={}, cli={"window_size": 10, "early_flow_age": 30})
    topics = {"clicks": settings.topic_clicks, "contacts": settings.topic_contacts, "feedback": settings.topic_feedback}
    counts = dict.fromkeys([*topics.values(), settings.topic_windows, settings.topic_touches], partitions)
    friction = build_friction(settings, journey_map, CollectorRegistry(), counts)
    clock = [start]
    friction.clock = lambda: clock[0]
    alarms: dict[str, list[tuple[float, Finding]]] = {"evidence": [], "window": []}
    friction.on_evidence = lambda found: alarms["evidence"].extend(
        (finding.verdict.ts, finding) for _, finding in found if finding.verdict.anomaly
    )
    friction.on_findings = lambda window, found: alarms["window"].extend(
        (window.end, finding) for finding in found if finding.verdict.anomaly
    )
    validator = EventValidator(journey_map)
    validate: dict[str, Callable[[dict[str, Any]], Event]] = {
        "clicks": validator.click, "contacts": validator.contact, "feedback": validator.feedback,
    }  # fmt: skip

    def deliver(items: list[Outbound]) -> None:
        for item in items:
            if item.topic == settings.topic_windows:
                friction.partial(item.value)
            else:
                deliver(friction.touches(partition_for(item.key, partitions), [item.value]))

    def valid() -> Iterator[tuple[str, int, Event]]:
        for record in generate(journey_map, config):
            if not isinstance(record.value, dict):
                continue  # the generator's malformed records: the dead-letter path, not this bench
            try:
                event = validate[record.kind](record.value)
            except ValueError:
                continue
            yield record.kind, partition_for((record.key or event.event_id).encode(), partitions), event

    began, fed = time.monotonic(), 0
    for kind, partition, event in fetched(valid(), fetch) if fetch else valid():
        # the worker's clock spaces the evidence ticks: event time stands in for it, or in fetches
        # the time a worker takes through a backlog
        clock[0] = start + fed / BACKLOG_SPEED if fetch else event.ts
        deliver(friction.events(topics[kind], partition, [event]))
        fed += 1
        if fed % 500_000 == 0:
            print(f"  {fed:,} events fed", file=sys.stderr)
    onsets = [start + offset for offset in offsets]
    result: dict[str, Any] = {
        "rate": rate, "history": history, "partitions": partitions, "fetch": fetch, "layout": layout, "events": fed,
        "seconds": round(time.monotonic() - began, 1), "incidents": [], "paths": {},
    }  # fmt: skip
    for path, found in alarms.items():
        before = [_where(finding) for at, finding in found if at < onsets[0]]
        elsewhere = sorted(  # distinct (touchpoint, metric): the window path alarms every window
            {
                _where(finding)
                for at, finding in found
                if at >= onsets[0] and not any(incident.matches(_labels(finding)) for incident in incidents)
            }
        )
        result["paths"][path] = {"false_alarms_on_normal_traffic": before, "alarms_elsewhere": elsewhere}
    for incident, onset in zip(incidents, onsets, strict=True):
        item: dict[str, Any] = {"name": incident.name, "kind": incident.kind}
        for path, found in alarms.items():
            hits = [
                (at, finding)
                for at, finding in found
                if onset <= at <= onset + duration + 60 and incident.matches(_labels(finding))
            ]
            item[path] = round(hits[0][0] - onset, 1) if hits else None
            item[f"{path}_metric"] = _where(hits[0][1]) if hits else ""
        result["incidents"].append(item)
    for path in alarms:
        delays = [item[path] for item in result["incidents"] if item[path] is not None]
        missed = sum(item[path] is None for item in result["incidents"])
        result["paths"][path]["median"] = statistics.median(delays) if delays else None
        result["paths"][path]["missed"] = missed
    return result


def _labels(finding: Finding) -> dict[str, str]:
    journey, step, channel, queue, _ = finding.place
    return {"journey": journey, "step": step, "channel": channel, "queue": queue}


def _where(finding: Finding) -> str:
    return series_name(finding.place, finding.metric)


def table(result: dict[str, Any]) -> str:
    lines = ["| incident | kind | evidence path | window detectors (floor) |", "|---|---|---:|---:|"]
    for item in result["incidents"]:
        cells = [
            "missed" if item[path] is None else f"{item[path]:.0f} s ({item[f'{path}_metric']})"
            for path in ("evidence", "window")
        ]
        lines.append(f"| {item['name']} | {item['kind']} | {cells[0]} | {cells[1]} |")
    for path in ("evidence", "window"):
        part = result["paths"][path]
        median = "n/a" if part["median"] is None else f"{part['median']:.0f} s"
        lines.append(
            f"\n{path}: median {median}, {part['missed']} missed, "
            f"{len(part['false_alarms_on_normal_traffic'])} alarms on normal traffic"
            f" {part['false_alarms_on_normal_traffic'][:5]}; {len(part['alarms_elsewhere'])} series at other"
            f" touchpoints alarmed during the incidents {part['alarms_elsewhere'][:6]}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.paths", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=1000.0, help="events/s of event time (default 1,000)")
    parser.add_argument(
        "--history", type=float, default=None,
        help="seconds of normal traffic first (default 1,800; with --layout latency, the latency bench's 900)",
    )  # fmt: skip
    parser.add_argument(
        "--layout", choices=sorted(LAYOUTS), default="apart",
        help="apart: incidents 7 min apart, one at a time (default); latency: the latency bench's timing,"
        " 90 s of control after the history and onsets 20 s apart",
    )  # fmt: skip
    parser.add_argument("--partitions", type=int, default=2, help="partitions per topic (default 2)")
    parser.add_argument(
        "--incidents", choices=sorted(INCIDENT_SETS), default="latency",
        help="latency: the latency bench's seven (default); flow: drop-offs, a slow page and an"
        " abandonment spike, none with errors",
    )  # fmt: skip
    parser.add_argument(
        "--fetch", type=int, default=0, metavar="N",
        help="deliver each partition's events in turns of 1 to N, as a consumer works through a backlog"
        " (partitions drift apart in event time); default 0: in event-time order",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=None, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    info = machine()
    print(f"both immediate paths in process on {machine_line(info)}; load {info['load_average_at_start'][0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="frictionwatch-paths-") as workdir:
        history = args.history if args.history is not None else (TIMING[0] if args.layout == "latency" else 1800.0)
        incidents = INCIDENT_SETS[args.incidents]
        result = run(args.rate, history, args.partitions, Path(workdir), incidents, args.fetch, args.layout)
    result["machine"] = info
    print(f"{result['events']:,} events in {result['seconds']:.0f} s\n")
    print(table(result))
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
