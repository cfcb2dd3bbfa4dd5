"""What every benchmark part shares: the machine, progress lines, subprocesses, /metrics polls.

Waiting is done on conditions (a counter reaching a value, a port accepting) with a
deadline; the only fixed sleeps are the poll intervals themselves.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from frictionwatch.broker import free_port
from frictionwatch.metrics_page import Samples as Samples  # scrape and total: the project's one /metrics reader
from frictionwatch.metrics_page import scrape as scrape
from frictionwatch.metrics_page import total as total

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


class BenchError(RuntimeError):
    """A benchmark could not run (a process died, a deadline passed)."""


# -- the machine --------------------------------------------------------------------------------


def cpu_model(cpuinfo: str) -> str:
    """The first ``model name`` of /proc/cpuinfo text (or '' when it has none).

    >>> cpu_model("processor\\t: 0\\nmodel name\\t: AMD EPYC 7B13\\n")
    'AMD EPYC 7B13'
    """
    match = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    return match.group(1).strip() if match else ""


def machine() -> dict[str, Any]:
    """CPU model, cores, memory, Python and OS of this machine, and the load when asked."""
    try:
        cpu = cpu_model(Path("/proc/cpuinfo").read_text())
    except OSError:
        cpu = ""
    try:
        memory = int(re.findall(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())[0]) * 1024
    except (OSError, IndexError):
        memory = 0
    return {
        "cpu": cpu or platform.processor() or platform.machine(),
        "cores": os.cpu_count() or 0,
        "memory_bytes": memory,
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "load_average_at_start": list(os.getloadavg()),
    }


def machine_line(info: Mapping[str, Any]) -> str:
    gib = info.get("memory_bytes", 0) / 2**30
    return f"{info['cpu']}, {info['cores']} cores, {gib:.0f} GiB, Python {info['python']}, {info['os']}"


# -- progress --------------------------------------------------------------------------------------


class Progress:
    """One status line on stderr, rewritten in place on a terminal (else a line every 10 s)."""

    def __init__(self, label: str, stream: TextIO = sys.stderr) -> None:
        self.label = label
        self.stream = stream
        self.tty = stream.isatty()
        self.began = time.monotonic()
        self.printed = -1e9
        self.last = ""

    def update(self, text: str) -> None:
        elapsed = time.monotonic() - self.began
        self.last = f"  {self.label}: {text}  [{elapsed:4.0f} s]"
        if self.tty:
            print("\r\033[K" + self.last, end="", file=self.stream, flush=True)
        elif elapsed - self.printed >= 10:
            self.printed = elapsed
            print(self.last, file=self.stream, flush=True)

    def done(self, text: str) -> None:
        elapsed = time.monotonic() - self.began
        line = f"  {self.label}: {text}  [{elapsed:4.0f} s]"
        print(("\r\033[K" if self.tty else "") + line, file=self.stream, flush=True)


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# -- processes -------------------------------------------------------------------------------------


def python_module(module: str, *args: str, env: Mapping[str, str] | None = None, log: Path) -> subprocess.Popen[bytes]:
    """``python -m module args`` in the background, output to ``log``.

    It runs in the log's folder (the bench's temp folder), so that what it leaves behind,
    such as Faust's ``<app id>-data`` folder, goes there and not into the repository; the
    repository root is on its path for the ``bench`` modules.
    """
    path = os.pathsep.join(part for part in (str(ROOT), os.environ.get("PYTHONPATH", "")) if part)
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", module, *args],
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=log.parent,
            env={**os.environ, **(env or {}), "PYTHONPATH": path},
        )


def stop(process: subprocess.Popen[bytes], timeout: float = 30.0) -> int:
    """SIGTERM, then SIGKILL after ``timeout`` s; the exit code."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def rss_bytes(pid: int) -> int:
    """Resident memory of process ``pid`` (0 when it is gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(r"VmRSS:\s+(\d+) kB", text)
    return int(match.group(1)) * 1024 if match else 0


TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def _process_times(stat: str) -> tuple[int, float]:
    """The parent pid and the CPU seconds (user + system) in a /proc/<pid>/stat line.

    >>> _process_times("42 (tansu broker) S 7 42 42 0 -1 4194560 1 0 0 0 250 50 0 0 20 0 9")
    (7, 3.0)
    """
    fields = stat[stat.rindex(")") + 2 :].split()  # the command may hold spaces and brackets
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / TICKS_PER_SECOND


def cpu_seconds(pids: Sequence[int]) -> dict[int, float]:
    """CPU seconds used so far by each of ``pids`` with all its descendants (0 when it is gone)."""
    parent: dict[int, int] = {}
    used: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent[int(entry.name)], used[int(entry.name)] = _process_times((entry / "stat").read_text())
            except (OSError, ValueError):  # gone since the listing
                continue
    result = {}
    for pid in pids:
        tree, todo = {pid}, [pid]
        while todo:
            current = todo.pop()
            children = [child for child, of in parent.items() if of == current and child not in tree]
            tree.update(children)
            todo.extend(children)
        result[pid] = sum(used.get(member, 0.0) for member in tree)
    return result


def machine_busy_seconds() -> float:
    """CPU seconds every core of the machine has spent busy (not idle or waiting on I/O) since boot."""
    ticks = [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / TICKS_PER_SECOND


@dataclass
class CpuMeter:
    """Cores used by named processes (with their children) and by the whole machine, over time.

    ``sample()`` at each poll; ``cores(begin, end)`` between the first sample at or after
    ``begin`` and the last at or before ``end`` (monotonic seconds).
    """

    pids: Mapping[str, int]
    samples: list[tuple[float, dict[str, float]]] = field(default_factory=list)

    def sample(self) -> None:
        used = cpu_seconds(list(self.pids.values()))
        seconds = {name: used[pid] for name, pid in self.pids.items()}
        seconds["machine"] = machine_busy_seconds()
        self.samples.append((time.monotonic(), seconds))

    def cores(self, begin: float | None, end: float | None) -> dict[str, float] | None:
        """Average cores used by each name (and "machine") from ``begin`` to ``end``; None without two samples."""
        if begin is None or end is None:
            return None
        inside = [(at, seconds) for at, seconds in self.samples if begin <= at <= end]
        if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
            return None
        (first, before), (last, after) = inside[0], inside[-1]
        return {name: round((after[name] - before[name]) / (last - first), 3) for name in after}


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# -- /metrics ------------------------------------------------------------------------------------


def free_metrics_port() -> int:
    return free_port()


def _interpolate(pairs: Sequence[tuple[float, float]], x: float) -> float | None:
    """y at ``x`` on the line through (x, y) ``pairs`` of non-decreasing x: the y of the first pair
    at or past ``x``, linear from the pair before it; None when every pair is before ``x``."""
    previous: tuple[float, float] | None = None
    for px, py in pairs:
        if px >= x:
            if previous is None or px == previous[0]:
                return py
            return previous[1] + (py - previous[1]) * (x - previous[0]) / (px - previous[0])
        previous = (px, py)
    return None


@dataclass
class Trace:
    """A counter observed over time: (monotonic seconds, value) pairs, values non-decreasing."""

    points: list[tuple[float, float]] = field(default_factory=list)

    def add(self, at: float, value: float) -> None:
        self.points.append((at, value))

    def time_at(self, value: float) -> float | None:
        """When the counter reached ``value`` (linear between polls); None if it never did.

        >>> Trace([(0.0, 0.0), (1.0, 100.0), (2.0, 300.0)]).time_at(200.0)
        1.5
        """
        return _interpolate([(seen, at) for at, seen in self.points], value)

    def value_at(self, at: float) -> float:
        """The counter at time ``at`` (linear between polls; the first or last value outside them).

        >>> Trace([(0.0, 0.0), (2.0, 100.0)]).value_at(0.5)
        25.0
        """
        found = _interpolate(self.points, at)
        return found if found is not None else (self.points[-1][1] if self.points else 0.0)

    def first_moved(self) -> float | None:
        """The poll before the one that first saw the counter above zero."""
        for index, (_, seen) in enumerate(self.points):
            if seen > 0:
                return self.points[max(0, index - 1)][0]
        return None

    def steady_span(
        self, expected: float, low: float = 0.1, high: float = 0.9, *, not_before: float | None = None
    ) -> tuple[float, float, float, float] | None:
        """(begin, counter at begin, end, counter at end) of the steady span: from ``low`` to ``high``
        of ``expected``, or from ``not_before`` (a consumer group that settled only then) when that
        falls inside; None if the counter never got there."""
        begin, end = self.time_at(low * expected), self.time_at(high * expected)
        if begin is None or end is None or end <= begin:
            return None
        if not_before is not None and begin < not_before < end:
            return not_before, self.value_at(not_before), end, high * expected
        return begin, low * expected, end, high * expected

    def rates(
        self, expected: float, low: float = 0.1, high: float = 0.9, *, not_before: float | None = None
    ) -> dict[str, float | None]:
        """The steady rate (over :meth:`steady_span`) and the first-to-last rate.

        >>> trace = Trace([(0.0, 0.0), (1.0, 0.0), (2.0, 100.0), (3.0, 200.0), (4.0, 300.0)])
        >>> {name: round(value or 0, 6) for name, value in trace.rates(300.0).items()}
        {'steady': 100.0, 'first_to_last': 100.0, 'seconds': 3.0}
        >>> stalled = Trace([(0.0, 0.0), (1.0, 100.0), (3.0, 100.0), (4.0, 300.0), (5.0, 500.0)])
        >>> round(stalled.rates(500.0)["steady"] or 0), round(stalled.rates(500.0, not_before=3.0)["steady"] or 0)
        (94, 200)
        """
        span = self.steady_span(expected, low, high, not_before=not_before)
        steady = None if span is None else (span[3] - span[1]) / (span[2] - span[0])
        first, last = self.first_moved(), self.time_at(expected)
        seconds = last - first if first is not None and last is not None and last > first else None
        whole = expected / seconds if seconds is not None else None
        return {"steady": steady, "first_to_last": whole, "seconds": seconds}


def follow(
    read: Callable[[], float],
    expected: float,
    progress: Progress,
    *,
    alive: Callable[[], bool],
    timeout: float,
    unit: str = "events",
    interval: float = 0.5,
) -> Trace:
    """Poll ``read`` until it reaches ``expected``; the trace of what it returned.

    Raises BenchError when ``alive`` turns False, or when nothing moves for ``timeout`` s.
    """
    trace = Trace()
    stalled_since = time.monotonic()
    last = -1.0
    while True:
        now = time.monotonic()
        try:
            value = read()
        except OSError:
            value = last if last >= 0 else 0.0
        trace.add(now, value)
        if value > last:
            last, stalled_since = value, now
        speed = ""
        if len(trace.points) > 4:
            (t0, v0), (t1, v1) = trace.points[-5], trace.points[-1]
            speed = f"  {(v1 - v0) / max(t1 - t0, 1e-9):>9,.0f}/s"
        progress.update(f"{value:>11,.0f} / {expected:,.0f} {unit}{speed}")
        if value >= expected:
            return trace
        if not alive():
            raise BenchError(f"{progress.label}: the process exited at {value:,.0f} of {expected:,.0f} {unit}")
        if now - stalled_since > timeout:
            raise BenchError(f"{progress.label}: stuck at {value:,.0f} of {expected:,.0f} {unit} for {timeout:.0f} s")
        time.sleep(interval)  # polling another process: there is no event to wait on


def wait_until(condition: Callable[[], bool], timeout: float, what: str, poll: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(poll)  # polling another process: there is no event to wait on


def series_name(place: Sequence[str], metric: str) -> str:
    """How the benchmarks' tables name a series: ``journey/step/channel metric`` (or ``channel/queue metric``)."""
    return f"{'/'.join(part for part in place if part)} {metric}"
