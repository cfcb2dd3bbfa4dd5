"""Soak test: a worker under steady load for a long time, watched for leaks.

Starts the embedded broker, one worker and the traffic generator (wall-clock time, a flat
rate), samples the worker's /metrics every few seconds and prints a progress line with
its resident memory, open file descriptors, asyncio tasks, consumer lag and state sizes.
At the end it judges the run on the samples after warm-up (the first third):

* memory flat: the median RSS of the last third exceeds the median of the middle third
  by at most ``--tolerance`` (share) or 8 MiB, whichever is larger;
* lag bounded: the highest summed consumer lag after warm-up stays under ``--max-lag``;
* no descriptor or task leak: the median count of the last third is at most the median
  of the middle third plus a small slack (5 descriptors, 20 tasks). A leak raises every
  later sample; a connection opened for a few seconds raises one, and is not a leak;
* still processing: events were processed during the last third.

Windows, sessions and contacts must expire for memory to stay flat, so the soak runs with a
short session timeout (``--session-timeout``, default 60 s, written into a copy of the
journey map), repeat-contact horizon (``--repeat-contact-horizon``, 300 s) and contact
timeout (``--contact-timeout``, 600 s); with the shipped horizons (30 min, 24 h, 4 h) state
keeps growing for hours, as it should.

Usage: ``scripts/soak --minutes 30`` (exit 0 when every check passes, 1 otherwise).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

from frictionwatch.broker import EmbeddedBroker, free_port
from frictionwatch.journeymap import example_path
from frictionwatch.metrics_page import Samples, scrape, total

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Sample:
    """One scrape of the worker's /metrics."""

    at: float  # seconds since the start
    rss: float  # bytes
    fds: float
    tasks: float
    lag: float  # records, summed over the input partitions
    processed: float  # events, summed over the input topics
    sessions: float
    contacts: float
    customers: float


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    passed: bool
    detail: str


def parse_sample(samples: Samples, at: float, inputs: Sequence[str]) -> Sample:
    """The soak's view of one scrape; lag summed over the ``inputs`` topics' partitions."""
    lag = sum(
        max(0.0, value)
        for (name, labels), value in samples.items()
        if name == "frictionwatch_consumer_lag" and dict(labels).get("topic") in inputs
    )
    return Sample(
        at,
        total(samples, "process_resident_memory_bytes"),
        total(samples, "process_open_fds"),
        total(samples, "frictionwatch_asyncio_tasks"),
        lag,
        total(samples, "frictionwatch_events_processed_total"),
        total(samples, "frictionwatch_state_size", kind="sessions"),
        total(samples, "frictionwatch_state_size", kind="contacts"),
        total(samples, "frictionwatch_state_size", kind="customers"),
    )


def judge(samples: Sequence[Sample], *, tolerance: float = 0.05, max_lag: float = 2000.0) -> list[Check]:
    """The verdict on a run: the first third is warm-up; the middle third is compared with the last.

    >>> flat = [Sample(t, 100 * MIB, 40, 60, 10, t * 100, 5, 1, 1) for t in range(30)]
    >>> all(check.passed for check in judge(flat))
    True
    >>> leaking = [Sample(t, (100 + 2 * t) * MIB, 40 + t, 60, 10, t * 100, 5, 1, 1) for t in range(30)]
    >>> [check.name for check in judge(leaking) if not check.passed]
    ['memory flat', 'no descriptor leak']
    >>> blip = [Sample(t, 100 * MIB, 40 + 6 * (t == 25), 60, 10, t * 100, 5, 1, 1) for t in range(30)]
    >>> all(check.passed for check in judge(blip))
    True
    """
    if len(samples) < 9:
        return [Check("enough samples", False, f"{len(samples)} samples; at least 9 are needed")]
    third = len(samples) // 3
    middle, last = samples[third : 2 * third], samples[2 * third :]
    settled = samples[third:]
    rss_middle = statistics.median(s.rss for s in middle)
    rss_last = statistics.median(s.rss for s in last)
    allowed = max(tolerance * rss_middle, 8 * MIB)
    top_lag = max(s.lag for s in settled)
    fds_middle, fds_last = statistics.median(s.fds for s in middle), statistics.median(s.fds for s in last)
    tasks_middle, tasks_last = statistics.median(s.tasks for s in middle), statistics.median(s.tasks for s in last)
    progressed = last[-1].processed - last[0].processed
    return [
        Check(
            "memory flat",
            rss_last - rss_middle <= allowed,
            f"median RSS {rss_middle / MIB:.1f} MiB (middle third) -> {rss_last / MIB:.1f} MiB (last third);"
            f" allowed growth {allowed / MIB:.1f} MiB",
        ),
        Check("lag bounded", top_lag <= max_lag, f"highest lag after warm-up {top_lag:.0f} (limit {max_lag:.0f})"),
        Check("no descriptor leak", fds_last <= fds_middle + 5, f"open fds: median {fds_middle:.0f} -> {fds_last:.0f}"),
        Check("no task leak", tasks_last <= tasks_middle + 20, f"tasks: median {tasks_middle:.0f} -> {tasks_last:.0f}"),
        Check("still processing", progressed > 0, f"{progressed:,.0f} events processed in the last third"),
    ]


def short_timeout_map(directory: Path, session_timeout: float) -> Path:
    """A copy of the shipped journey map whose sessions end after ``session_timeout`` s of inactivity."""
    text = example_path().read_text()
    text, count = re.subn(r"session_timeout: *\S+", f"session_timeout: {session_timeout:g}s", text)
    if count == 0:
        raise SystemExit("soak: the shipped journey map has no session_timeout to shorten")
    path = directory / "journey-map.yml"
    path.write_text(text)
    return path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/soak",
        description=__doc__.split("\n\n")[0] + "\n\n" + "\n\n".join(__doc__.split("\n\n")[1:4]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--minutes", type=float, default=30.0, help="how long the load runs (default 30)")
    parser.add_argument("--rate", type=float, default=300.0, help="events per second (default 300)")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between samples (default 10)")
    parser.add_argument("--tolerance", type=float, default=0.05, help="allowed RSS growth, share (default 0.05)")
    parser.add_argument("--max-lag", type=float, default=2000.0, help="highest lag allowed, records (default 2000)")
    parser.add_argument("--session-timeout", type=float, default=60.0, help="journey session timeout, s (default 60)")
    parser.add_argument(
        "--repeat-contact-horizon", type=float, default=300.0, help="customer memory of the worker, s (default 300)"
    )
    parser.add_argument(
        "--contact-timeout", type=float, default=600.0, help="contact memory of the worker, s (default 600)"
    )
    parser.add_argument("--json", type=Path, default=None, help="write the samples and the verdict here")
    parser.add_argument("--workdir", type=Path, default=None, help="where logs go (default: a temporary folder)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="frictionwatch-soak-") as temporary:
        workdir = args.workdir or Path(temporary)
        workdir.mkdir(parents=True, exist_ok=True)
        return run(args, workdir)


def run(args: argparse.Namespace, workdir: Path) -> int:
    duration = args.minutes * 60
    inputs = ("journey.clicks", "journey.contacts", "journey.feedback")
    journey_map = short_timeout_map(workdir, args.session_timeout)
    python = sys.executable
    print(f"soak: {args.minutes:g} min at {args.rate:g} events/s; logs in {workdir}", flush=True)
    with EmbeddedBroker(log_path=workdir / "broker.log") as broker:
        port = free_port()
        worker_log = (workdir / "worker.log").open("wb")
        worker = subprocess.Popen(
            [python, "-m", "frictionwatch", "worker", "--bootstrap-servers", broker.bootstrap_servers,
             "--metrics-port", str(port), "--journey-map", str(journey_map), "--window-size", "10",
             "--contact-timeout", str(args.contact_timeout),
             "--repeat-contact-horizon", str(args.repeat_contact_horizon), "--broker-quirks", broker.quirks],
            stdout=worker_log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        generator = subprocess.Popen(
            [python, "-m", "frictionwatch", "generate", "--output", "kafka", "--bootstrap-servers",
             broker.bootstrap_servers, "--time", "wall", "--flat", "--rate", str(args.rate),
             "--duration", f"{duration + 120:.0f}s", "--batch", "20", "--seed", "8", "--malformed-rate", "0.01",
             "--journey-map", str(journey_map), "--quiet"],
            stdout=subprocess.DEVNULL, stderr=(workdir / "generator.log").open("wb"),
        )  # fmt: skip
        samples: list[Sample] = []
        began = time.monotonic()
        try:
            print(f"{'time':>7} {'RSS MiB':>8} {'fds':>5} {'tasks':>6} {'lag':>7} {'processed':>11}"
                  f" {'sessions':>9} {'contacts':>9} {'customers':>9}", flush=True)  # fmt: skip
            while (elapsed := time.monotonic() - began) < duration:
                time.sleep(min(args.interval, max(0.0, duration - elapsed)))  # the sampling period
                if worker.poll() is not None:
                    print(f"soak: the worker exited with {worker.returncode}; see {workdir / 'worker.log'}")
                    return 1
                try:
                    scraped = scrape(f"http://127.0.0.1:{port}/metrics", timeout=10)
                except OSError:
                    continue  # not serving yet (start-up)
                sample = parse_sample(scraped, time.monotonic() - began, inputs)
                samples.append(sample)
                print(
                    f"{sample.at:6.0f}s {sample.rss / MIB:8.1f} {sample.fds:5.0f} {sample.tasks:6.0f}"
                    f" {sample.lag:7.0f} {sample.processed:11,.0f} {sample.sessions:9.0f} {sample.contacts:9.0f}"
                    f" {sample.customers:9.0f}",
                    flush=True,
                )
        finally:
            generator.send_signal(signal.SIGTERM)
            worker.send_signal(signal.SIGTERM)
            for process in (generator, worker):
                try:
                    process.wait(60)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            worker_log.close()
    checks = judge(samples, tolerance=args.tolerance, max_lag=args.max_lag)
    print("verdict:")
    for check in checks:
        print(f"  {'PASS' if check.passed else 'FAIL'}  {check.name}: {check.detail}")
    ok = all(check.passed for check in checks)
    print(f"soak {'passed' if ok else 'FAILED'}", flush=True)
    if args.json is not None:
        doc = {"samples": [asdict(s) for s in samples], "checks": [asdict(c) for c in checks], "passed": ok}
        args.json.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    return 0 if ok else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
