"""Throughput of one worker process (and two) on a broker, each against a baseline on that broker.

``python -m bench`` runs every case on each broker in turn (the embedded Tansu, then Apache
Kafka), in one run. Every case reads input topics pre-filled once by ``frictionwatch generate`` (valid events
only, the generator's normal mix of clicks, contacts and feedback, constant rate), from
the start, in a consumer group of its own:

* single-event records: ``frictionwatch worker`` against an empty Faust agent iterating
  the same topics (``bench.empty_agent``);
* array records of up to ``batch`` events, packed per partition: ``frictionwatch worker``
  against a bare confluent-kafka consumer that decodes every record with orjson;
* scale-out: two ``frictionwatch worker`` processes in one group on the single-event topics.

A process's rate comes from polling its /metrics (``frictionwatch_events_received_total``
alone, or the empty agent's record count) every half second: the *steady* rate is the count
between 10% and 90% of the total over the time between (interpolated), so the group
join at the start and the last partition's tail are left out; the first-to-last rate is
reported beside it. Over the same steady part, ``cpu_cores`` gives the cores each worker, the
broker (with its child processes) and the whole machine kept busy: whether a case was bound
by the machine's cores rather than by the worker.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer

from bench.common import (
    BenchError,
    CpuMeter,
    Progress,
    Trace,
    follow,
    free_metrics_port,
    python_module,
    rss_bytes,
    say,
    scrape,
    stop,
    tail,
    total,
)
from bench.report import settled_note
from frictionwatch.broker import LocalBroker

KINDS = ("clicks", "contacts", "feedback")
PARTITIONS = 4
RATE = 1000.0  # events per second of event time in the pre-filled topics
EVENTS_RECEIVED = "frictionwatch_events_received_total"
ASSIGNED = "frictionwatch_assigned_partitions"
NAMES = {"tansu": "the embedded broker (Tansu)", "kafka": "Apache Kafka"}


@dataclass(frozen=True)
class Filled:
    """Input topics filled by the generator: names by kind, events and records by kind."""

    prefix: str
    topics: dict[str, str]
    events: dict[str, int]
    records: dict[str, int]
    seconds: float

    @property
    def total_events(self) -> int:
        return sum(self.events.values())

    @property
    def total_records(self) -> int:
        return sum(self.records.values())

    def env(self) -> dict[str, str]:
        """Settings (as environment) that point a worker at these topics and its own internal ones."""
        return {
            "FRICTIONWATCH_TOPIC_CLICKS": self.topics["clicks"],
            "FRICTIONWATCH_TOPIC_CONTACTS": self.topics["contacts"],
            "FRICTIONWATCH_TOPIC_FEEDBACK": self.topics["feedback"],
            "FRICTIONWATCH_TOPIC_DEADLETTER": f"{self.prefix}.deadletter",
            "FRICTIONWATCH_PARTITIONS": str(PARTITIONS),
        }


def prefill(broker: LocalBroker, prefix: str, events: int, batch: int, workdir: Path, seed: int) -> Filled:
    """Fill ``prefix``.clicks/contacts/feedback with ``events`` generated events."""
    topics = {kind: f"{prefix}.{kind}" for kind in KINDS}
    summary = workdir / f"{prefix}-summary.json"
    progress = Progress(f"pre-filling {prefix} ({events:,} events, records of up to {batch})")
    env = {f"FRICTIONWATCH_TOPIC_{kind.upper()}": name for kind, name in topics.items()}
    env["FRICTIONWATCH_PARTITIONS"] = str(PARTITIONS)
    began = time.monotonic()
    process = python_module(
        "frictionwatch", "generate", "--output", "kafka", "--bootstrap-servers", broker.bootstrap_servers,
        "--count", str(events), "--rate", str(RATE), "--flat", "--seed", str(seed), "--batch", str(batch),
        "--summary", str(summary), "--quiet",
        env=env, log=workdir / f"{prefix}-generate.log",
    )  # fmt: skip
    while process.poll() is None:
        progress.update("generating and producing")
        time.sleep(0.5)  # waiting for a subprocess while showing progress
    if process.returncode != 0:
        raise BenchError(f"the generator failed:\n{tail(workdir / f'{prefix}-generate.log')}")
    data = json.loads(summary.read_text())
    filled = Filled(prefix, topics, data["events"], data["records"], time.monotonic() - began)
    progress.done(f"{filled.total_events:,} events in {filled.total_records:,} records")
    return filled


def _worker(
    broker: LocalBroker, filled: Filled, group: str, workdir: Path, name: str, ingest: str, click_decoder: str
) -> tuple[Any, str]:
    port = free_metrics_port()
    env = {
        **filled.env(),
        "FRICTIONWATCH_INGEST": ingest,
        "FRICTIONWATCH_CLICK_DECODER": click_decoder,
        "FRICTIONWATCH_GROUP_ID": group,
        "FRICTIONWATCH_BROKER_QUIRKS": broker.quirks,
        "FRICTIONWATCH_TOPIC_WINDOWS": f"{group}.windows",
        "FRICTIONWATCH_TOPIC_TOUCHES": f"{group}.customer-touches",
    }
    process = python_module(
        "frictionwatch", "worker", "--bootstrap-servers", broker.bootstrap_servers,
        "--metrics-port", str(port), "--log-level", "warning",
        env=env, log=workdir / f"{name}.log",
    )  # fmt: skip
    return process, f"http://127.0.0.1:{port}/metrics"


def _events_and_partitions(url: str) -> tuple[float, float]:
    """The worker's event count and the partitions it owns now, from its /metrics page
    restricted to those two series.

    The whole page (several hundred labelled series) takes the worker a few milliseconds to
    render: polled twice a second, that was about 5% of its time, where Prometheus scrapes it
    every 15 s. prometheus_client renders only the series named by ``name[]``.
    """
    page = scrape(f"{url}?name[]={EVENTS_RECEIVED}&name[]={ASSIGNED}")
    return total(page, EVENTS_RECEIVED), total(page, ASSIGNED)


class GroupSettling:
    """When a group of workers settled: the first poll after its last change of partition
    ownership at which every worker owns partitions and has handled events since that change.

    Workers started together do not join the group together: the first one to join owns
    every partition for a few seconds, then the group rebalances and each worker rebuilds the
    state of the partitions it took over. That start-up is no part of a steady rate.

    >>> group = GroupSettling()
    >>> group.observe(1.0, [(500.0, 8.0), (0.0, 0.0)])  # the first worker alone
    >>> group.observe(2.0, [(900.0, 4.0), (0.0, 4.0)])  # rebalanced
    >>> group.observe(3.0, [(900.0, 4.0), (50.0, 4.0)])  # the first one still rebuilding
    >>> group.settled is None
    True
    >>> group.observe(4.0, [(1000.0, 4.0), (200.0, 4.0)])
    >>> group.settled
    4.0
    """

    def __init__(self) -> None:
        self.settled: float | None = None
        self._layout: tuple[float, ...] = ()
        self._events_at_change: list[float] = []

    def observe(self, at: float, workers: list[tuple[float, float]]) -> None:
        """One poll: (events handled, partitions owned) of each worker."""
        layout = tuple(partitions for _, partitions in workers)
        if layout != self._layout:
            self._layout, self._events_at_change, self.settled = layout, [events for events, _ in workers], None
            return
        if self.settled is None and all(
            partitions > 0 and events > before
            for (events, partitions), before in zip(workers, self._events_at_change, strict=True)
        ):
            self.settled = at


def run_workers(
    broker: LocalBroker,
    filled: Filled,
    count: int,
    label: str,
    workdir: Path,
    timeout: float = 120.0,
    *,
    ingest: str = "faust",
    click_decoder: str = "auto",
) -> dict[str, Any]:
    """``count`` workers in a fresh group reading ``filled`` from the start; their combined rate.

    ``ingest`` and ``click_decoder`` are the workers' settings of those names: faust (agents) or
    direct (streams/loop.py); auto (the compiled click decoder, native/) or python.
    """
    group = f"bench-{filled.prefix}-{count}w-{ingest}-{click_decoder}-{int(time.time())}"
    started = [
        _worker(broker, filled, group, workdir, f"{group}-{index}", ingest, click_decoder) for index in range(count)
    ]
    processes = [process for process, _ in started]
    urls = [url for _, url in started]

    named = {f"worker {index + 1}": process.pid for index, process in enumerate(processes)}
    meter = CpuMeter({**named, "broker": broker.process.pid} if broker.process else named)

    group_settling = GroupSettling()

    def read() -> float:
        meter.sample()
        workers = []
        for url in urls:
            try:
                workers.append(_events_and_partitions(url))
            except OSError:  # not serving yet
                workers.append((0.0, 0.0))
        group_settling.observe(time.monotonic(), workers)
        return sum(events for events, _ in workers)

    rss_end: list[int] = []
    sessions = 0.0
    try:
        trace = follow(
            read, filled.total_events, Progress(label), timeout=timeout,
            alive=lambda: all(process.poll() is None for process in processes),
        )  # fmt: skip
        rss_end = [rss_bytes(process.pid) for process in processes]
        for url in urls:
            sessions += total(scrape(url), "frictionwatch_state_size", kind="sessions")
    except BenchError as error:
        logs = "\n".join(tail(workdir / f"{group}-{index}.log") for index in range(count))
        raise BenchError(f"{error}\n{logs}") from None
    finally:
        for process in processes:
            stop(process)
    result = _result(trace, filled.total_events, filled.total_records, not_before=group_settling.settled)
    span = trace.steady_span(filled.total_events, not_before=group_settling.settled)
    cores = meter.cores(span[0], span[2]) if span is not None else None
    result.update(workers=count, rss_bytes=rss_end, sessions_held=sessions, cpu_cores=cores)
    Progress(label).done(_describe(result))
    return result


def run_empty_agent(broker: LocalBroker, filled: Filled, workdir: Path, timeout: float = 120.0) -> dict[str, Any]:
    """The empty Faust agent over ``filled``: records/s."""
    group = f"bench-{filled.prefix}-empty-{int(time.time())}"
    port = free_metrics_port()
    url = f"http://127.0.0.1:{port}/metrics"
    process = python_module(
        "bench.empty_agent", "--bootstrap-servers", broker.bootstrap_servers, "--group-id", group,
        "--metrics-port", str(port), "--topics", ",".join(filled.topics.values()),
        env={"FRICTIONWATCH_BROKER_QUIRKS": broker.quirks}, log=workdir / f"{group}.log",
    )  # fmt: skip
    label = "empty Faust agent, single events"
    try:
        trace = follow(
            lambda: total(scrape(url), "bench_records_consumed"), filled.total_records, Progress(label),
            alive=lambda: process.poll() is None, timeout=timeout, unit="records",
        )  # fmt: skip
    except BenchError as error:
        raise BenchError(f"{error}\n{tail(workdir / f'{group}.log')}") from None
    finally:
        stop(process)
    result = _result(trace, filled.total_records, filled.total_records)
    Progress(label).done(_describe(result))
    return result


def run_bare_consumer(broker: LocalBroker, filled: Filled, timeout: float = 60.0) -> dict[str, Any]:
    """confluent-kafka consume + orjson decode of every record of ``filled``; nothing else."""
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap_servers,
            "group.id": f"bench-{filled.prefix}-bare-{int(time.time())}",
            "session.timeout.ms": 6000,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": True,
            "fetch.queue.backoff.ms": 10,
        }
    )
    consumer.subscribe(list(filled.topics.values()))
    label = "bare consumer (confluent-kafka + orjson), arrays"
    progress = Progress(label)
    trace = Trace()
    events = records = 0
    loads = orjson.loads
    idle_since = time.monotonic()
    next_point = 0.0
    try:
        while events < filled.total_events:
            messages = consumer.consume(1000, 0.2)
            now = time.monotonic()
            for message in messages:
                if message.error():
                    continue
                value = loads(message.value() or b"null")
                events += len(value) if isinstance(value, list) else 1
            records += len(messages)
            if messages:
                idle_since = now
            elif now - idle_since > timeout:
                raise BenchError(f"{label}: stuck at {events:,} of {filled.total_events:,} events")
            if now >= next_point or events >= filled.total_events:
                trace.add(time.monotonic(), float(events))
                progress.update(f"{events:>11,} / {filled.total_events:,} events")
                next_point = now + 0.05
    finally:
        consumer.close()
    result = _result(trace, filled.total_events, filled.total_records)
    progress.done(_describe(result))
    return result


def _result(trace: Trace, events: int, records: int, *, not_before: float | None = None) -> dict[str, Any]:
    """The rates of ``trace``; ``not_before``: when the workers' group settled (:class:`GroupSettling`)."""
    rates = trace.rates(float(events), not_before=not_before)
    scale = records / events
    span = trace.steady_span(float(events), not_before=not_before)
    extra = {} if span is None or not_before is None else {"steady_from_share": round(span[1] / events, 3)}
    return {
        **extra,
        "events": events,
        "records": records,
        "events_per_second": rates["steady"],
        "records_per_second": None if rates["steady"] is None else rates["steady"] * scale,
        "first_to_last_events_per_second": rates["first_to_last"],
        "seconds": rates["seconds"],
    }


def _describe(result: dict[str, Any]) -> str:
    steady, whole = result["events_per_second"] or 0.0, result["first_to_last_events_per_second"] or 0.0
    text = f"{steady:,.0f} events/s steady ({whole:,.0f} first to last, {result['seconds'] or 0:.1f} s)"
    text += settled_note(result)
    if cores := result.get("cpu_cores"):
        text += "; cores used: " + ", ".join(f"{name} {used:.2f}" for name, used in cores.items())
    return text


def ratio(value: float | None, baseline: float | None) -> float | None:
    return None if not value or not baseline else value / baseline


def run(broker: LocalBroker, workdir: Path, *, events: int, batch: int, scale_out: bool) -> dict[str, Any]:
    """Every throughput case on one broker; the JSON part of the report for that broker."""
    say(f"throughput on {NAMES[broker.engine]}: topics pre-filled with {events:,} events each, {PARTITIONS} partitions")
    single = prefill(broker, "single", events, 1, workdir, seed=7)
    batched = prefill(broker, "batched", events, batch, workdir, seed=7)
    empty = run_empty_agent(broker, single, workdir)
    pipeline_single = run_workers(broker, single, 1, "frictionwatch worker, single events", workdir)
    direct_single = run_workers(
        broker, single, 1, "frictionwatch worker, ingest=direct, single events", workdir, ingest="direct"
    )
    bare = run_bare_consumer(broker, batched)
    pipeline_batched = run_workers(broker, batched, 1, f"frictionwatch worker, arrays of up to {batch}", workdir)
    direct_batched = run_workers(
        broker, batched, 1, f"frictionwatch worker, ingest=direct, arrays of up to {batch}", workdir, ingest="direct"
    )
    # the same, with the Python click decoder (the reference): what the compiled one (native/) gains
    python_batched = run_workers(
        broker, batched, 1, f"frictionwatch worker, ingest=direct, click_decoder=python, arrays of up to {batch}",
        workdir, ingest="direct", click_decoder="python",
    )  # fmt: skip
    result: dict[str, Any] = {
        "broker": broker.engine,
        "events": events,
        "batch": batch,
        "partitions": PARTITIONS,
        "rate_of_event_time": RATE,
        "single": {
            "records": single.total_records,
            "empty_agent": empty,
            "pipeline": pipeline_single,
            "ratio": ratio(pipeline_single["events_per_second"], empty["records_per_second"]),
        },
        "batched": {
            "records": batched.total_records,
            "bare_consumer": bare,
            "pipeline": pipeline_batched,
            "ratio": ratio(pipeline_batched["events_per_second"], bare["events_per_second"]),
        },
        # the same worker reading its input with a consumer loop of its own (streams/loop.py)
        "direct": {
            "single": direct_single,
            "single_ratio": ratio(direct_single["events_per_second"], empty["records_per_second"]),
            "batched": direct_batched,
            "batched_ratio": ratio(direct_batched["events_per_second"], bare["events_per_second"]),
            "batched_python_decoder": python_batched,
            "compiled_decoder_gain": ratio(direct_batched["events_per_second"], python_batched["events_per_second"]),
        },
    }
    if scale_out:
        two = run_workers(broker, single, 2, "two frictionwatch workers, single events", workdir)
        result["scale_out"] = {
            "one": pipeline_single,
            "two": two,
            "ratio": ratio(two["events_per_second"], pipeline_single["events_per_second"]),
        }
        two_direct = run_workers(
            broker, single, 2, "two frictionwatch workers, ingest=direct, single events", workdir, ingest="direct"
        )
        result["direct"]["scale_out"] = {
            "one": direct_single,
            "two": two_direct,
            "ratio": ratio(two_direct["events_per_second"], direct_single["events_per_second"]),
        }
    return result
