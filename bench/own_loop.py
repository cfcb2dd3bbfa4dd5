"""What an ingest loop of our own would reach: the ceiling that sizes issue 14's next step.

The worker reads its input topics through a Faust agent, which costs about as much per record
as all of our own work (bench/README.md, "Single-event records on another machine"). This
bench feeds the same pre-filled topics through the worker's own ingest code with no Faust in
between:

    confluent-kafka Consumer -> IngestPipeline (decode, validate, dead-letter, stage 1:
    sessions, windows, evidence, counters) -> confluent-kafka Producer (windows, touches),
    with the customer-touches topic read in the same loop.

It leaves out what a real loop would also have to do, so the figures are a ceiling: stage 2
(final windows and detectors, 3% of the worker's samples in arrays), offset commits after the
outbound records are delivered, replay marks and the replay of a partition that comes to the
worker. The baseline is the empty Faust agent on the same single-event topics, in the same run,
in interleaved rounds with the worker itself (this machine's speed drifts by up to 15% between
identical runs).

Run: python -m bench.own_loop [--events 150000] [--rounds 2] [--broker tansu|kafka]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from confluent_kafka import Consumer, Producer
from prometheus_client import CollectorRegistry

from bench.common import BenchError, Progress, Trace, machine, machine_line, say
from bench.throughput import PARTITIONS, Filled, prefill, run_empty_agent, run_workers
from frictionwatch.broker import LocalBroker, local_broker
from frictionwatch.journeymap import load_journey_map
from frictionwatch.settings import Settings
from frictionwatch.streams.app import RecordRef, build_ingest


def own_loop(broker: LocalBroker, filled: Filled, label: str, timeout: float = 60.0) -> float | None:
    """Steady events/s of ``filled`` through the worker's ingest code on a consumer loop of its own."""
    settings = Settings.load(env=filled.env(), cli={"bootstrap_servers": broker.bootstrap_servers})
    journey_map = load_journey_map()
    inputs = [settings.topic_clicks, settings.topic_contacts, settings.topic_feedback]
    partitions = dict.fromkeys([*inputs, settings.topic_touches, settings.topic_windows], PARTITIONS)
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers, "linger.ms": 5})
    produce = producer.produce

    async def send(topic: str, key: bytes | None, value: bytes, partition: int | None) -> None:
        if partition is None:
            produce(topic, value, key)
        else:
            produce(topic, value, key, partition)

    friction, pipeline = build_ingest(settings, journey_map, CollectorRegistry(), partitions, send)
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap_servers,
            "group.id": f"bench-{filled.prefix}-own-loop-{time.time()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
            "fetch.queue.backoff.ms": 10,
            "partition.assignment.strategy": "range",  # partition p of every topic to one member
        }
    )
    consumer.subscribe([*inputs, settings.topic_touches])
    progress, trace = Progress(f"own loop, {label}"), Trace()
    handled = 0

    async def run() -> None:
        nonlocal handled
        idle_since = next_point = time.monotonic()
        while handled < filled.total_events:
            messages = consumer.consume(500, 0.2)
            for message in messages:
                if message.error():
                    continue
                topic, partition, offset = message.topic() or "", message.partition() or 0, message.offset() or 0
                if topic == settings.topic_touches:
                    for item in friction.touches(partition, [message.value() or b""]):
                        produce(item.topic, item.value, item.key)
                    continue
                kind, stamp = message.timestamp()
                sent = stamp / 1000 if kind else None
                ref = RecordRef(topic, partition, offset, message.key(), message.value(), sent)
                decoded = await pipeline.handle(ref)
                handled += len(decoded.events) + len(decoded.rejected)
            producer.poll(0)  # delivery reports
            now = time.monotonic()
            if messages:
                idle_since = now
            elif now - idle_since > timeout:
                raise BenchError(f"own loop, {label}: stuck at {handled:,} of {filled.total_events:,} events")
            if now >= next_point:
                trace.add(now, float(handled))
                progress.update(f"{handled:>11,} / {filled.total_events:,} events")
                next_point = now + 0.05
        trace.add(time.monotonic(), float(handled))

    try:
        asyncio.run(run())
    finally:
        consumer.close()
        producer.flush(10)
    steady = trace.rates(float(filled.total_events))["steady"]
    progress.done(f"{steady or 0:,.0f} events/s steady")
    return steady


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.own_loop", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=150_000, help="events in each pre-filled set (default 150,000)")
    parser.add_argument("--batch", type=int, default=100, help="events per array record (default 100)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds of every case (default 2)")
    parser.add_argument("--broker", choices=["tansu", "kafka"], default="tansu", help="default tansu (embedded)")
    args = parser.parse_args(argv)
    say(f"machine: {machine_line(machine())}")
    workdir = Path(tempfile.mkdtemp(prefix="fw-own-loop-"))
    with local_broker(args.broker, log_path=workdir / "broker.log") as broker:
        single = prefill(broker, "single", args.events, 1, workdir, seed=7)
        arrays = prefill(broker, "arrays", args.events, args.batch, workdir, seed=7)
        rows = []
        for round_ in range(1, args.rounds + 1):
            empty = run_empty_agent(broker, single, workdir)["records_per_second"]
            worker_single = run_workers(broker, single, 1, "frictionwatch worker, single events", workdir)
            direct_single = run_workers(
                broker, single, 1, "frictionwatch worker, ingest=direct, single events", workdir, ingest="direct"
            )
            own_single = own_loop(broker, single, "single events")
            worker_arrays = run_workers(broker, arrays, 1, f"frictionwatch worker, arrays of {args.batch}", workdir)
            direct_arrays = run_workers(
                broker, arrays, 1, f"frictionwatch worker, ingest=direct, arrays of {args.batch}", workdir,
                ingest="direct",
            )  # fmt: skip
            own_arrays = own_loop(broker, arrays, f"arrays of up to {args.batch}")
            rates = (
                worker_single["events_per_second"], direct_single["events_per_second"], own_single,
                worker_arrays["events_per_second"], direct_arrays["events_per_second"], own_arrays,
            )  # fmt: skip
            rows.append((round_, empty, *rates))
    say("events/s; the ratios are to the empty Faust agent's records/s, as issue 14's single-event target;")
    say(
        "worker = ingest=faust (agents), direct = ingest=direct (streams/loop.py), bare = this bench's loop (a ceiling)"
    )
    say(f"{'round':>5} {'empty agent':>12} | single: {'worker':>8} {'ratio':>6} {'direct':>8} {'ratio':>6}"
        f" {'bare':>8} {'ratio':>6} | arrays: {'worker':>8} {'direct':>8} {'bare':>8}")  # fmt: skip
    for round_, empty, single_worker, single_direct, single_bare, arrays_worker, arrays_direct, arrays_bare in rows:
        say(
            f"{round_:>5} {_n(empty):>12} |         {_n(single_worker):>8} {_ratio(single_worker, empty):>6}"
            f" {_n(single_direct):>8} {_ratio(single_direct, empty):>6} {_n(single_bare):>8}"
            f" {_ratio(single_bare, empty):>6} |         {_n(arrays_worker):>8} {_n(arrays_direct):>8}"
            f" {_n(arrays_bare):>8}"
        )
    return 0


def _n(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate:,.0f}"


def _ratio(rate: float | None, baseline: float | None) -> str:
    return "n/a" if not rate or not baseline else f"{rate / baseline:.2f}"


if __name__ == "__main__":
    raise SystemExit(main())
