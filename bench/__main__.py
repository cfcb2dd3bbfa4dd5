"""Run the benchmarks: throughput, scale-out, event-to-alert latency, memory per session, detection.

Throughput and scale-out run on both brokers (the embedded Tansu, then Apache Kafka, fetched
by scripts/fetch-kafka), each against its own baselines; the rest on the embedded broker.

    bash bench/run                      # everything (~60 min), from a fresh clone
    python -m bench --only throughput   # a subset: throughput, scaleout, latency, memory, detection
    python -m bench --quick             # smaller sizes, for smoke-testing the harness

Each number is measured against a baseline measured in the same run. Results go to
bench/results/latest.json (raw) and bench/results/latest.md (the table); a full run (no
--only, no --quick) also rewrites the table in README.md. A run with --only replaces its parts
in the results file and keeps the full run's date, machine and length; the table is then
written from the whole file, each re-run part with its own date.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import detection, latency, memory, report, throughput
from bench.common import RESULTS, ROOT, BenchError, machine, machine_line, say
from frictionwatch.broker import ENGINES, BrokerError, EmbeddedBroker, local_broker

PARTS = ("throughput", "scaleout", "latency", "memory", "detection")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", action="append", choices=PARTS, help="run only this part (repeatable)")
    parser.add_argument("--quick", action="store_true", help="smaller sizes: a smoke test of the harness")
    parser.add_argument("--events", type=int, default=None, help="events per pre-filled topic (default 1,000,000)")
    parser.add_argument("--batch", type=int, default=100, help="events per array record (default 100)")
    parser.add_argument("--out", type=Path, default=None, help="JSON results file (default bench/results/latest.json)")
    parser.add_argument("--readme", action=argparse.BooleanOptionalAction, default=None, help="update README.md")
    parser.add_argument("--keep", action="store_true", help="keep the logs of the processes run (printed path)")
    args = parser.parse_args(argv)
    parts = tuple(args.only or PARTS)
    events = args.events or (100_000 if args.quick else 1_000_000)
    out = args.out or RESULTS / ("quick.json" if args.quick else "latest.json")
    update_readme = args.readme if args.readme is not None else (not args.quick and args.only is None)

    info = machine()
    began = datetime.now(UTC)
    say(f"frictionwatch benchmarks on {machine_line(info)}; load average {info['load_average_at_start'][0]:.2f}")
    results: dict[str, Any] = {"started": began.isoformat(timespec="seconds"), "machine": info, "quick": args.quick}
    workdir = Path(tempfile.mkdtemp(prefix="frictionwatch-bench-"))
    clock = time.monotonic()
    try:
        if "throughput" in parts or "scaleout" in parts:
            results["throughput"] = {}
            for engine in ENGINES:  # each broker with its own baselines, one after the other
                try:
                    with local_broker(engine, log_path=workdir / f"broker-{engine}.log") as broker:
                        folder = workdir / engine
                        folder.mkdir()
                        when: dict[str, Any] = {
                            "started": datetime.now(UTC).isoformat(timespec="seconds"),
                            "load_average_at_start": os.getloadavg()[0],
                            "machine": info["cpu"],  # the README's table may hold parts run on other machines
                        }
                        results["throughput"][engine] = when | throughput.run(
                            broker, folder, events=events, batch=args.batch, scale_out="scaleout" in parts
                        )
                except BrokerError as error:  # e.g. no Java or Kafka's jars: the other broker's rows still count
                    say(f"throughput on {engine}: not measured: {error}")
                    results["throughput"][engine] = {"broker": engine, "not_measured": str(error)}
        if "memory" in parts:
            measured_from = datetime.now(UTC).isoformat(timespec="seconds")
            results["memory"] = {"started": measured_from} | memory.run(quick=args.quick)
        if "latency" in parts:
            with EmbeddedBroker(log_path=workdir / "broker-latency.log") as broker:
                results["latency"] = latency.run(broker, workdir, quick=args.quick)
        # detection writes its own key of the results file (bench/detection.py)
        if "detection" in parts and detection.main([*(["--quick"] if args.quick else []), "--out", str(out)]) != 0:
            raise BenchError("the detection benchmark failed")
    except (BenchError, KeyboardInterrupt) as error:
        say(f"\nbenchmark stopped: {error}\nlogs: {workdir}")
        return 1
    results["seconds"] = round(time.monotonic() - clock, 1)
    results["load_average_at_end"] = list(os.getloadavg())
    out.parent.mkdir(parents=True, exist_ok=True)
    document = json.loads(out.read_text()) if out.exists() else {}
    if args.only and "started" in document:  # some parts re-run: the full run's date, machine and length stay
        if "throughput" in results and "scaleout" not in parts:
            report.keep_scale_out(document.get("throughput", {}), results["throughput"])
        document.update({key: value for key, value in results.items() if key not in RUN_KEYS})
    else:
        document.update(results)  # keys of parts not run this time (and the detection key) are kept
    out.write_text(json.dumps(document, indent=2) + "\n")
    table = report.markdown(document)
    out.with_suffix(".md").write_text(table)
    print(table)
    say(f"results: {out} and {out.with_suffix('.md')}; took {results['seconds'] / 60:.1f} min")
    if update_readme:
        report.update_readme(ROOT / "README.md", table)
        say("README.md: benchmark table updated")
    if args.keep:
        say(f"logs: {workdir}")
    else:
        _remove(workdir)
    return 0


#: what a results file says of the whole run, not of one part
RUN_KEYS = frozenset({"started", "machine", "quick", "seconds", "load_average_at_end"})


def _remove(directory: Path) -> None:
    import shutil

    shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
