"""Resident memory per active session: the click stage holding N concurrent sessions.

Each size runs in a fresh subprocess (``python -m bench.memory --sessions N``): it builds
the stage of one clickstream partition (:class:`~frictionwatch.streams.stage.ClickState`,
the shipped journey map, default settings but ``cold_start=0`` so every session is judged
and holds all its timers), measures its resident memory (VmRSS, after a full garbage
collection), then feeds N session-start events decoded and validated as the worker does
(orjson bytes -> ``EventValidator.click``), all within 50 s of event time so none has
ended or passed its early check, and measures again. The slope between two sizes is the
cost of one more session, free of the interpreter, imports and the journey map.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import orjson

from bench.common import ROOT, BenchError, Progress, rss_bytes, say
from frictionwatch.contract import EventValidator
from frictionwatch.journeymap import load_journey_map
from frictionwatch.streams.stage import ClickState, Output, StageSettings

SPAN = 50.0  # seconds of event time the session starts are spread over (less than early_age)


def session_starts(count: int, seed: int = 1, chunk: int = 1000) -> Iterator[list[bytes]]:
    """``count`` first events of distinct sessions as Kafka record values, ``chunk`` at a time."""
    journey_map = load_journey_map()
    rng = random.Random(seed)
    places = [
        (journey.name, step.name, channel)
        for journey in journey_map.journeys.values()
        for step in journey.steps[:1]
        for channel in step.channels
    ]
    start = time.time() - 3600
    for offset in range(0, count, chunk):
        values = []
        for index in range(offset, min(offset + chunk, count)):
            journey, step, channel = places[index % len(places)]
            event = {
                "schema": 1, "event_id": f"e-{index:08x}-1", "ts": round(start + SPAN * index / count, 3),
                "session_id": f"s-{index:08x}-{rng.getrandbits(16):04x}", "journey": journey, "step": step,
                "channel": channel, "type": "step", "customer_id": f"cust-{rng.randrange(10**7):07d}",
                "device": "desktop",
            }  # fmt: skip
            values.append(orjson.dumps(event))
        yield values


def measure(count: int) -> dict[str, Any]:
    """In this process: RSS of the stage before and after it holds ``count`` sessions."""
    journey_map = load_journey_map()
    validator = EventValidator(journey_map)
    state = ClickState(journey_map, StageSettings(cold_start=0.0))
    for values in session_starts(2000, seed=99):  # warm up code paths and free lists, in another stage
        ClickState(journey_map, StageSettings(cold_start=0.0)).add(
            [validator.click(orjson.loads(v)) for v in values], Output()
        )
    gc.collect()
    before = rss_bytes(os.getpid())
    for values in session_starts(count):
        state.add([validator.click(orjson.loads(value)) for value in values], Output())
    gc.collect()
    after = rss_bytes(os.getpid())
    return {"sessions": len(state), "rss_before": before, "rss_after": after}


def run(*, quick: bool = False) -> dict[str, Any]:
    """Both sizes, each in its own process; the slope in bytes per session."""
    sizes = (20_000, 200_000) if quick else (100_000, 1_000_000)
    say("memory per active session: the click stage in a fresh process per size")
    points = []
    for size in sizes:
        progress = Progress(f"stage holding {size:,} sessions")
        progress.update("generating, feeding, measuring")
        done = subprocess.run(
            [sys.executable, "-m", "bench.memory", "--sessions", str(size)],
            capture_output=True, text=True, cwd=ROOT, timeout=600, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise BenchError(f"memory measurement of {size:,} sessions failed:\n{done.stderr[-2000:]}")
        point = json.loads(done.stdout)
        point["grown"] = point["rss_after"] - point["rss_before"]
        points.append(point)
        progress.done(f"RSS grew {point['grown'] / 2**20:,.1f} MiB ({point['grown'] / size:,.0f} bytes per session)")
    small, large = points
    slope = (large["grown"] - small["grown"]) / (large["sessions"] - small["sessions"])
    say(f"  slope: {slope:,.0f} bytes per session")
    return {"points": points, "bytes_per_session": slope}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, required=True)
    args = parser.parse_args()
    print(json.dumps(measure(args.sessions)))


if __name__ == "__main__":
    main()
