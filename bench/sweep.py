"""Traffic sets replayed once and cached, and contenders run over the cached windows.

The costly part of the detection benchmark is turning events into final windows (the
generator, then the worker's stage-1 and stage-2 code via
:func:`frictionwatch.backtest.replay.replay_records`); the detectors are cheap. So each
traffic set (journey map, traffic level, days, seed, incidents) is generated and replayed
**once**, straight from the generator with no file between, and every final window's
observations are kept in ``bench/results/cache/<key>.npz`` (git-ignored; the key hashes
the generation parameters, the map and the scenario; the file records a digest of the
generator's, stages' and replay's source, and a result made from a cache of older code
says so (``code_changed``); ``--fresh`` replays again). Every contender then runs over the same observations with
:func:`frictionwatch.backtest.replay.detect` (a fresh ``DetectorBank``, fed window by
window, as the worker's stage 2 feeds it).

A **contender** is a row of :data:`CONTENDERS`: detector settings written as the journey
map's ``detectors.defaults`` (the map's own overrides keep only ``enabled``, so every
contender watches the same touchpoints); ``shipped`` is the example map's defaults (``kind:
auto`` and one false alarm a day for the whole map), ``window`` the window detectors alone.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from frictionwatch.backtest.replay import Replayer, detect
from frictionwatch.backtest.scoring import alerts_of
from frictionwatch.detectors.base import Observation
from frictionwatch.generator.config import GeneratorConfig
from frictionwatch.generator.records import GeneratedRecord
from frictionwatch.generator.sinks import Summary, run, write_ground_truth
from frictionwatch.journeymap import JourneyMap, load_journey_map, parse_journey_map
from frictionwatch.streams.series import MONITORED
from frictionwatch.streams.stage import StageSettings
from frictionwatch.streams.windows import Touchpoint

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "bench" / "results" / "cache"
MAPS = {"example": ROOT / "frictionwatch" / "examples" / "journey-map.yml"}
BENCH_MAPS = ROOT / "bench" / "maps"
START = 1_793_577_600.0  # 2026-11-02 00:00 UTC, a Monday: every traffic set starts there
#: source whose change makes a cached replay stale
CODE = ("frictionwatch/generator", "streams", "frictionwatch/contract.py", "frictionwatch/backtest/replay.py")


@dataclass(frozen=True, slots=True)
class Contender:
    """One detector configuration in the race: ``settings`` become the map's detector defaults
    (the first of ``alternatives`` this tree accepts, when the settings were renamed) and
    ``overrides`` (journey-map overrides, e.g. per metric) come before the map's own."""

    name: str
    settings: dict[str, Any]
    note: str
    overrides: tuple[dict[str, Any], ...] = ()
    alternatives: tuple[dict[str, Any], ...] = ()
    map_false_alarms: str | None = None  # a budget for the whole map (detectors.map_false_alarms)
    #: what alerts: the window detectors over the cached windows ("windows"), the evidence path
    #: fed the events (bench/evidence_path.py, "evidence"), or both, as a worker pages ("both")
    paths: str = "windows"

    @property
    def windows(self) -> bool:
        return self.paths in ("windows", "both")

    @property
    def evidence(self) -> bool:
        return self.paths in ("evidence", "both")


#: the window detectors' shipped defaults (detectors/bank.py DEFAULTS; on a series' first day under kind auto)
WINDOW_DEFAULTS = {"sensitivity": 4.0, "min_volume": 10, "warmup": 30, "direction": "auto", "consecutive": 2}


RATIO_METRICS = tuple(metric.name for metric in MONITORED if metric.kind == "ratio")


def _on_outcomes(kind: str) -> Contender:
    """A river binary drift detector: per-unit outcomes exist for ratio metrics only, so the
    mean metrics (errors, waits, NPS, CES) go unwatched."""
    return Contender(
        kind, {"enabled": False}, f"{kind} on per-unit outcomes of the ratio metrics (mean metrics unwatched)",
        tuple({"match": {"metric": metric}, "enabled": True, "kind": kind} for metric in RATIO_METRICS),
    )  # fmt: skip


def _shipped(name: str, note: str, paths: str = "windows") -> Contender:
    """The example map's settings (kind auto, one false alarm a day for the whole map) on ``paths``."""
    return Contender(name, {"kind": "auto", **WINDOW_DEFAULTS}, note, map_false_alarms="1 per 1d", paths=paths)


#: the contenders, one line each (kinds this tree doesn't know are reported as unavailable)
CONTENDERS: tuple[Contender, ...] = (
    _shipped(
        "shipped",
        "the example map's settings: kind auto (window detectors on a series' first day, sequential after),"
        " 1 false alarm a day for the whole map",
    ),
    _shipped(
        "evidence",
        "the evidence path alone (events judged as they arrive against learned hazards), the example map's settings",
        paths="evidence",
    ),
    _shipped(
        "shipped+evidence",
        "what a worker pages on with the example map's settings: the shipped window detectors and the evidence path",
        paths="both",
    ),
    Contender(
        "window",
        {"kind": "window", **WINDOW_DEFAULTS},
        "the window detectors alone (the shipped default before 2026-12-01)",
        alternatives=({"kind": "auto", **WINDOW_DEFAULTS},),  # before the sequential detectors, auto was them
    ),
    Contender(
        "sequential",
        {"kind": "sequential", "false_alarms": "1 per 30d"},
        "sequential LLR tests, 1 per 30d",
        alternatives=({"kind": "auto", "false_alarms": "1 per 30d"},),
    ),
    Contender(
        "sequential-map-1d",
        {"kind": "sequential"},
        "sequential LLR tests, 1 false alarm a day for the whole map (split over its series)",
        map_false_alarms="1 per 1d",
    ),
    Contender(
        "sequential-180d",
        {"kind": "sequential", "false_alarms": "1 per 180d"},
        "sequential LLR tests at the example map's default budget, 1 per 180d",
    ),
    Contender(
        "river.PageHinkley",
        {"kind": "river.PageHinkley", "params": {"threshold": 0.5, "delta": 0.005}},
        "PageHinkley on the window value (waits: threshold 600 s, delta 10 s)",
        (
            {
                "match": {"metric": "average_speed_of_answer"},
                "kind": "river.PageHinkley",
                "params": {"threshold": 600, "delta": 10},
            },
        ),
    ),
    Contender("river.ADWIN", {"kind": "river.ADWIN"}, "ADWIN on the window value, river's defaults"),
    _on_outcomes("river.DDM"),
    _on_outcomes("river.HDDMA"),
    _on_outcomes("river.HDDMW"),
    Contender("river.GaussianScorer", {"kind": "river.GaussianScorer"}, "GaussianScorer, river's defaults"),
    Contender(
        "river.PAD-HoltWinters",
        {
            "kind": "river.PredictiveAnomalyDetection",
            "params": {
                "predictive_model": {"kind": "river.time_series.HoltWinters", "params": {"alpha": 0.3, "beta": 0.1}}
            },
        },
        "PredictiveAnomalyDetection with HoltWinters (alpha 0.3, beta 0.1, no season: 1-min windows)",
    ),
)


@dataclass(frozen=True, slots=True)
class TrafficSet:
    """What one replay is generated from."""

    map_name: str
    rate: float  # events per second, mean over the day
    days: float
    seed: int
    incidents: int  # random incidents asked of the generator (0: none)
    controls: int = 0  # random must-not-alert controls asked of the generator
    scenario: str = ""  # a scenario file (relative to the repository) with more incidents and controls
    start: float = START

    @property
    def label(self) -> str:
        return f"{self.map_name} {self.rate:g} ev/s"

    def map_path(self) -> Path:
        return MAPS.get(self.map_name) or BENCH_MAPS / f"{self.map_name}.yml"

    def key(self) -> str:
        """The cache key: the parameters, the map's journeys and queues, and the scenario's text."""
        digest = hashlib.blake2b(json.dumps(asdict(self), sort_keys=True).encode(), digest_size=12)
        generated = yaml.safe_load(self.map_path().read_text())
        generated.pop("detectors", None)  # detector settings don't change the traffic
        digest.update(json.dumps(generated, sort_keys=True).encode())
        if self.scenario:
            digest.update((ROOT / self.scenario).read_bytes())
        return f"{self.map_name}-{self.rate:g}-{self.days:g}d-s{self.seed}-n{self.incidents}-{digest.hexdigest()}"


def code_version() -> str:
    """A digest of the code that turns parameters into windows (generator, stages, replay)."""
    digest = hashlib.blake2b(digest_size=8)
    for source in sorted(path for name in CODE for path in _files(ROOT / name)):
        digest.update(source.read_bytes())
    return digest.hexdigest()


def _files(path: Path) -> Iterator[Path]:
    yield from (sorted(path.rglob("*.py")) + sorted(path.rglob("*.yml"))) if path.is_dir() else [path]


def random_incidents_supported() -> bool:
    """Whether this tree's generator draws random incidents (``--random-incidents``)."""
    return "random_incidents" in GeneratorConfig.__dataclass_fields__


def generator_config(traffic: TrafficSet) -> GeneratorConfig:
    options: dict[str, Any] = {
        "seed": traffic.seed,
        "rate": traffic.rate,
        "duration": traffic.days * 86400.0,
        "start": traffic.start,
    }
    if traffic.scenario:
        options["scenario"] = ROOT / traffic.scenario
    if (traffic.incidents or traffic.controls) and random_incidents_supported():
        options["random_incidents"] = traffic.incidents
        options["random_controls"] = traffic.controls
    elif traffic.incidents or traffic.controls:
        raise RuntimeError(
            "this tree's generator has no random incidents yet (GeneratorConfig.random_incidents);"
            " the detection benchmark needs `frictionwatch generate --random-incidents N`"
        )
    return GeneratorConfig(**options)


def progress_lines(label: str, config: GeneratorConfig, report: bool = True) -> Callable[[Summary], None]:
    """A generator progress callback that prints ``label``'s share done every 15 s (nothing unless ``report``)."""
    expected = config.rate * (config.duration or 0.0)
    printed = [0.0]

    def progress(summary: Summary) -> None:
        if report and summary.wall_seconds - printed[0] >= 15:
            printed[0] = summary.wall_seconds
            print(
                f"  {label}: ~{summary.total / max(expected, 1.0):.0%}, {summary.total:,} events,"
                f" {summary.total / summary.wall_seconds:,.0f}/s",
                file=sys.stderr, flush=True,
            )  # fmt: skip

    return progress


# -- replay once, cache --------------------------------------------------------------------------


@dataclass(slots=True)
class Replayed:
    """Every final window's observations of one traffic set, column by column."""

    traffic: TrafficSet
    window_size: float
    first_ts: float
    last_ts: float
    events: int
    seconds: float  # generation and replay, wall
    series: list[tuple[tuple[str, str, str, str, str], str]]  # (touchpoint labels, metric) by series id
    window: np.ndarray  # per observation: index of its final window (feeding order)
    series_id: np.ndarray
    ts: np.ndarray
    value: np.ndarray
    volume: np.ndarray  # nan: no volume
    truth: list[dict[str, Any]]  # the ground truth lines
    code: str = ""  # code_version() when it was replayed

    @property
    def days(self) -> float:
        return (self.last_ts - self.first_ts) / 86400.0

    def observed(self) -> list[list[tuple[Touchpoint, str, Observation]]]:
        """The windows as :func:`frictionwatch.backtest.replay.detect` takes them."""
        places = [(Touchpoint(*labels), metric) for labels, metric in self.series]
        windows: list[list[tuple[Touchpoint, str, Observation]]] = []
        current = -1
        for window, series, ts, value, volume in zip(
            self.window.tolist(), self.series_id.tolist(), self.ts.tolist(), self.value.tolist(),
            self.volume.tolist(), strict=True,
        ):  # fmt: skip
            if window != current:
                windows.append([])
                current = window
            place, metric = places[series]
            windows[-1].append((place, metric, Observation(ts, value, None if volume != volume else volume)))
        return windows

    def series_windows(self) -> dict[int, list[tuple[float, float, float]]]:
        """Per series id: its windows as (end ts, value, volume), in time order."""
        out: dict[int, list[tuple[float, float, float]]] = {}
        for series, ts, value, volume in zip(
            self.series_id.tolist(), self.ts.tolist(), self.value.tolist(), self.volume.tolist(), strict=True
        ):
            out.setdefault(series, []).append((ts, value, 1.0 if volume != volume else volume))
        return out

    def save(self, path: Path) -> None:
        meta = {
            "traffic": asdict(self.traffic), "window_size": self.window_size, "first_ts": self.first_ts,
            "last_ts": self.last_ts, "events": self.events, "seconds": self.seconds,
            "series": [[list(labels), metric] for labels, metric in self.series], "truth": self.truth,
            "code": self.code,
        }  # fmt: skip
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.parent / ".gitignore").write_text("*\n")  # a cache: never committed
        partial = path.with_suffix(".tmp.npz")
        np.savez(
            partial, window=self.window, series_id=self.series_id, ts=self.ts, value=self.value, volume=self.volume,
            meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
        )  # fmt: skip
        partial.replace(path)

    @classmethod
    def load(cls, path: Path) -> Replayed:
        with np.load(path) as data:
            meta = json.loads(data["meta"].tobytes())
            arrays = {name: data[name] for name in ("window", "series_id", "ts", "value", "volume")}
        series = [
            ((labels[0], labels[1], labels[2], labels[3], labels[4]), metric) for labels, metric in meta["series"]
        ]
        return cls(
            TrafficSet(**meta["traffic"]), meta["window_size"], meta["first_ts"], meta["last_ts"], meta["events"],
            meta["seconds"], series, truth=meta["truth"], code=meta.get("code", ""), **arrays,
        )  # fmt: skip


def cache_path(traffic: TrafficSet, cache: Path = CACHE) -> Path:
    return cache / f"{traffic.key()}.npz"


class _ReplaySink:
    """A generator sink (``frictionwatch.generator.sinks.Sink``) that replays what it is given."""

    def __init__(self, replayer: Replayer) -> None:
        self.replayer = replayer
        self.records: dict[str, int] = {}
        self.delivered = -math.inf  # the delivery clock: the latest event time delivered so far

    def write(self, record: GeneratedRecord) -> None:
        self.records[record.kind] = self.records.get(record.kind, 0) + 1
        self.delivered = max(self.delivered, record.ts)
        self.replayer.add(record.kind, record.value, now=self.delivered)

    def idle(self) -> None:
        pass

    def close(self) -> None:
        pass


def replay_traffic(traffic: TrafficSet, cache: Path = CACHE, *, report: bool = True, fresh: bool = False) -> Path:
    """Generate and replay ``traffic`` once; the cache file. A cached replay is used even when
    the generator or stage code has changed since (the results say so: ``code_changed``),
    unless ``fresh``."""
    path = cache_path(traffic, cache)
    if path.exists() and not fresh:
        return path
    replay(traffic, generator_config(traffic), report=report).save(path)
    return path


def replay(
    traffic: TrafficSet, config: GeneratorConfig, settings: StageSettings | None = None, *, report: bool = True
) -> Replayed:
    """Generate ``config``'s traffic on ``traffic``'s map and replay it through the worker's
    stages (``settings``: the window size and the rest; default the worker's defaults),
    straight from the generator with no file between; every final window's observations."""
    journey_map = load_journey_map(traffic.map_path())
    progress = progress_lines(f"replay {traffic.label}", config, report)
    began = time.monotonic()
    replayer = Replayer(journey_map, settings, source=traffic.label)
    summary = run(journey_map, config, _ReplaySink(replayer), progress)
    result = replayer.finish()
    truth = io.BytesIO()
    write_ground_truth(summary.incidents, truth)
    end = traffic.start + traffic.days * 86400.0
    series_ids: dict[tuple[tuple[str, str, str, str, str], str], int] = {}
    window_index: list[int] = []
    series_index: list[int] = []
    ts: list[float] = []
    value: list[float] = []
    volume: list[float] = []
    for index, window in enumerate(result.observed):
        for place, metric, observation in window:
            key = (tuple(place), metric)
            sid = series_ids.setdefault(key, len(series_ids))  # type: ignore[arg-type]
            window_index.append(index)
            series_index.append(sid)
            ts.append(observation.ts)
            value.append(observation.value)
            volume.append(np.nan if observation.volume is None else observation.volume)
    replayed = Replayed(
        traffic, result.window_size, result.first_ts or traffic.start, result.last_ts or end,
        sum(result.events.values()), time.monotonic() - began, list(series_ids),
        np.asarray(window_index, dtype=np.int32), np.asarray(series_index, dtype=np.int32),
        np.asarray(ts), np.asarray(value), np.asarray(volume),
        [json.loads(line) for line in truth.getvalue().splitlines() if line.strip()], code_version(),
    )  # fmt: skip
    if report:
        print(
            f"  replay {traffic.label}: {replayed.events:,} events, {len(replayed.ts):,} observations"
            f" in {replayed.seconds:.0f} s",
            file=sys.stderr, flush=True,
        )  # fmt: skip
    return replayed


# -- contenders ----------------------------------------------------------------------------------


def contender_map(journey_map_path: Path, contender: Contender) -> JourneyMap:
    """The journey map with the contender's detector settings: its journeys and queues, the
    contender's defaults and overrides, then the map's own ``enabled`` overrides (so every
    contender watches the same touchpoints). ValueError when this tree accepts none of the
    contender's settings (an unknown kind or setting)."""
    document = yaml.safe_load(journey_map_path.read_text())
    overrides = (document.get("detectors") or {}).get("overrides") or []
    kept = [
        {"match": item["match"], "enabled": item["enabled"]}
        for item in overrides
        if isinstance(item, dict) and "enabled" in item and "match" in item
    ]
    ours = [dict(item) for item in contender.overrides]
    error: ValueError | None = None
    for settings in (contender.settings, *contender.alternatives):
        document["detectors"] = {"defaults": dict(settings), "overrides": ours + kept}
        if contender.map_false_alarms is not None:
            document["detectors"]["map_false_alarms"] = contender.map_false_alarms
        text = yaml.safe_dump(document, sort_keys=False)
        try:
            return parse_journey_map(text, f"{journey_map_path} ({contender.name})")
        except ValueError as problem:
            error = error or problem
    assert error is not None
    raise error


def available(contender: Contender, journey_map_path: Path) -> str | None:
    """None when this tree can run ``contender``, else why not."""
    try:
        journey_map = contender_map(journey_map_path, contender)
        probe = [(Touchpoint("", "", "phone", "billing", ""), "abandonment_ratio", Observation(60.0, 0.1, 20.0))]
        detect([probe], journey_map)
    except (ValueError, TypeError, KeyError, ImportError) as error:
        return f"{type(error).__name__}: {str(error).splitlines()[0][:160]}"
    return None


@lru_cache(maxsize=1)
def _loaded(path: Path) -> tuple[Replayed, list[list[tuple[Touchpoint, str, Observation]]]]:
    replayed = Replayed.load(path)
    return replayed, replayed.observed()


#: one alert of a contender: (touchpoint labels, metric, start, end, flagged windows)
AlertRow = tuple[tuple[str, str, str, str, str], str, float, float, int]


def run_contender(path: Path, contender: Contender) -> tuple[list[AlertRow], float, int]:
    """The contender's alerts on a cached traffic set, the seconds it took and the observations fed."""
    replayed, observed = _loaded(path)
    journey_map = contender_map(replayed.traffic.map_path(), contender)
    began = time.monotonic()
    traces = detect(observed, journey_map)
    seconds = time.monotonic() - began
    rows: list[AlertRow] = []
    for trace in traces.values():
        for alert in alerts_of(trace, replayed.window_size):
            rows.append((alert.place, alert.metric, alert.start, alert.end, alert.windows))
    return rows, seconds, len(replayed.ts)
