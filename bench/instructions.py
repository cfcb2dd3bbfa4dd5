"""Instructions of stage 1 per event, counted by valgrind's callgrind (Debian package
``valgrind``): a figure that the noise of a shared machine does not move, for comparing two
versions of the per-event path.

On the 2-core machines here, wall-clock rates of the same code vary by a quarter from one
minute to the next (other processes, CPU steal), which hides a 10% change. Callgrind counts
the instructions the CPU executes instead. It runs Python 50-100 times slower, so the input is
small (30,000 events by default, about 90 s per count). The count of stage 1 is the count of a
run with one pass of ``bench.pure_pipeline.stage_one`` (compiled click decoder) minus the count
of the same run stopped before it.

Two things are fixed so that counts of one checkout repeat (to 0.1%): the events' time starts at
yesterday's midnight (UTC), and the stage's wall clock moves with the events applied, as at
50,000 events a second. Both moved with the run before 2026-12-04: the windows' and timer
buckets' edges fell elsewhere (2% from run to run), and the evidence ticks, spaced in wall time
too, came 25 times as often an event as at full speed (a fifth of the count).

    python -m bench.instructions                          # this checkout
    git worktree add /tmp/before HEAD~3
    python -m bench.instructions --code /tmp/before       # another checkout's frictionwatch

Instructions are not time (a cache miss costs more than an addition), but in an interpreter
whose time goes to bytecodes they follow it closely; check a change on the wall clock too.

The default 30,000 events are 30 s of event time: no visit reaches its early check (60 s) or
its progress timeout, so no timer fires. For a change to the timers or to what happens when a
visit ends, count ``--events 200000`` (3 minutes 20 s of event time, about 8 minutes a count on this machine).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run_stage_one(code: Path, events: int, batch: int, stop_before: bool) -> None:
    """In the process callgrind watches: import frictionwatch from ``code``, make the records,
    and apply them unless ``stop_before``."""
    _import_from(code)
    from bench.pure_pipeline import records, stage_one
    from frictionwatch.journeymap import load_journey_map

    journey_map = load_journey_map()
    # Yesterday's midnight (UTC): the same windows and timer buckets in every count of a day (from
    # a day ago to the second, counts of one checkout moved by 2% between runs)
    data = records(events, batch, start=(time.time() // 86400 - 1) * 86400)
    applied = sum(count for *_, count in data)  # the events packed into whole records
    print(f"events {applied}")
    if not stop_before:
        # the stage's wall clock as at 50,000 events a second (stage 1 in arrays at full speed here,
        # 2026-12-03): its evidence ticks come as often an event as then, and in every count alike
        stage_one(journey_map, data, applied, compiled=True, seconds_per_event=1 / 50_000)


def _import_from(code: Path) -> None:
    """Point the editable install's import mapping (scripts/setup installs frictionwatch with
    ``pip install -e``) at another checkout, so that its modules are the ones imported."""
    if code.resolve() == ROOT:
        return
    import importlib

    for finder in sys.meta_path:
        mapping = getattr(importlib.import_module(finder.__module__), "MAPPING", None)
        if isinstance(mapping, dict) and "frictionwatch" in mapping:
            for package, folder in mapping.items():
                mapping[package] = str(code / Path(folder).relative_to(ROOT))
            sys.path.insert(0, str(code))
            return
    raise SystemExit("--code needs frictionwatch installed in editable mode (scripts/setup does that)")


def count(code: Path, events: int, batch: int, stop_before: bool) -> tuple[int, int]:
    """Instructions callgrind counted in one run, and the events it applied (or would have)."""
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed: apt-get install valgrind (Debian), then run this again")
    with tempfile.TemporaryDirectory() as folder:
        command = [
            "valgrind", "--tool=callgrind", f"--callgrind-out-file={folder}/out",
            sys.executable, "-m", "bench.instructions", "--inside", "--code", str(code),
            "--events", str(events), "--batch", str(batch), *(["--stop-before"] if stop_before else []),
        ]  # fmt: skip
        env = dict(os.environ, PYTHONHASHSEED="0")  # the same dict layouts in every run
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    found = re.search(r"Collected : (\d+)", done.stderr)
    applied = re.search(r"^events (\d+)$", done.stdout, re.MULTILINE)
    if done.returncode != 0 or found is None or applied is None:
        raise SystemExit(f"callgrind run failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return int(found.group(1)), int(applied.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--code", type=Path, default=ROOT, help="the checkout whose frictionwatch is counted")
    parser.add_argument("--events", type=int, default=30_000, help="generated events (default 30,000)")
    parser.add_argument("--batch", type=int, action="append", help="events per record (default: 50, then 1)")
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--stop-before", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside:
        _run_stage_one(args.code, args.events, args.batch[0], args.stop_before)
        return
    print(f"stage 1 of {args.code.resolve()}, {args.events:,} generated events, callgrind")
    for batch in args.batch or [50, 1]:
        (whole, applied), (before, _) = (count(args.code, args.events, batch, stop) for stop in (False, True))
        label = "single events" if batch == 1 else f"arrays of {batch}"
        print(f"{label:<16} {(whole - before) / applied:>10,.0f} instructions an event", flush=True)


if __name__ == "__main__":
    main()
