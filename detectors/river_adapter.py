"""Any river drift detector or anomaly scorer behind the :class:`Detector` protocol.

:class:`RiverDetector` is configured entirely through ``__init__``: the river class (``"river.X"``,
a module-level class of ``river.drift``, ``river.drift.binary`` or ``river.anomaly``), its
parameters, and the project's own knobs (direction, warm-up, minimum volume, windows in a row).
What the estimator sees depends on its family:

* **drift detectors** (``river.drift``: PageHinkley, ADWIN, KSWIN, ...) get the window's value
  (``update(value)``) and say only *that* the series changed (``drift_detected``). The adapter
  says *which way*: it compares the mean of the last ``recent`` windows with the mean before the
  change, and fires only for a change in the bad direction; the alert holds while the recent
  mean stays at least half the detected shift away from the old level (at most ``hold`` windows);
* **binary drift detectors** (``river.drift.binary``: DDM, EDDM, FHDDM, HDDMA, HDDMW) get one
  outcome per session or contact, rebuilt from a ratio and its volume: 30 of 40 sessions
  progressed (a flow ratio of 0.75, bad direction down) is 10 ``True`` (the bad outcome:
  a session that did not progress) and 30 ``False``, interleaved evenly (FHDDM, which watches
  for a drop in the share of ones, gets the good outcomes as ``True``). Only ratios have
  per-unit outcomes;
* **anomaly scorers** (``river.anomaly``) score the window's value, then learn it (during the
  warm-up too: PredictiveAnomalyDetection learns its error statistics from its scores):
  supervised ones (GaussianScorer, PredictiveAnomalyDetection, StandardAbsoluteDeviation) as
  ``score_one(None, value)``, the others (HalfSpaceTrees, LODA, ...) as ``score_one({"value":
  value})``. A window is anomalous when the score reaches ``threshold`` (in the estimator's own
  units; river's ThresholdFilter and QuantileFilter decide themselves), and, where the estimator
  gives an expected value (a Gaussian's mean, a forecaster's forecast), lies on the bad side of it.

The verdict's ``score`` is the estimator's anomaly score for scorers, and for drift detectors
the shift of the recent mean from the earlier one, in standard deviations of the earlier
windows, in the bad direction. ``expected`` is the forecast or the earlier mean where there is
one, NaN otherwise; there is no band (``lower``/``upper`` are NaN) except for GaussianScorer.

**Checkpoints.** :meth:`RiverDetector.state` pickles the estimator and the adapter's own
running statistics into a JSON-able dict (base64 text with a version tag, the river version
and the estimator's class). Unpickling runs code named in the data, so a state must only ever
come from this worker's own ``detector-state`` changelog topic (written by a frictionwatch
worker), never from a user or another system. A state from a detector configured differently
(another class or other parameters) is refused with :class:`ValueError`: the detector starts
afresh.

>>> import random
>>> from frictionwatch.detectors.base import Observation
>>> rng = random.Random(7)
>>> detector = RiverDetector("river.PageHinkley", {"threshold": 0.5, "min_instances": 30},
...                          direction="up", warmup=30)
>>> calm = [detector.update(Observation(60.0 * i, 0.1 + rng.gauss(0, 0.01), 200)) for i in range(100)]
>>> any(verdict.anomaly for verdict in calm)
False
>>> worse = [detector.update(Observation(60.0 * i, 0.3 + rng.gauss(0, 0.01), 200)) for i in range(100, 110)]
>>> first = next(verdict for verdict in worse if verdict.anomaly)
>>> (first.ts - 6000.0) / 60, round(first.expected, 2), first.severity
(2.0, 0.1, 'warning')
>>> twin = RiverDetector("river.PageHinkley", {"threshold": 0.5, "min_instances": 30}, direction="up", warmup=30)
>>> twin.restore(detector.state())
>>> twin.update(Observation(6600.0, 0.3, 200)) == detector.update(Observation(6600.0, 0.3, 200))
True
"""

from __future__ import annotations

import base64
import importlib
import importlib.metadata
import inspect
import math
import pickle
from collections import deque
from collections.abc import Mapping
from statistics import NormalDist
from typing import Any

from river import base as river_base
from river import stats

from frictionwatch.detectors.base import Direction, Observation, Severity, Verdict

__all__ = ["RiverConfigError", "RiverDetector", "family", "kinds", "make_estimator"]

#: where ``kind: river.X`` is looked up, in this order
DETECTOR_MODULES = ("river.drift", "river.drift.binary", "river.anomaly")
#: where an estimator nested in the parameters (``{kind: river.time_series.HoltWinters, ...}``) may come from
NESTED_MODULES = (
    *DETECTOR_MODULES,
    "river.time_series",
    "river.linear_model",
    "river.preprocessing",
    "river.stats",
    "river.optim",
    "river.proba",
)
#: scorers with a natural threshold in their own units; the others need river's ThresholdFilter/QuantileFilter
DEFAULT_THRESHOLDS = {
    "GaussianScorer": 0.9999,  # 2|CDF - 1/2|: about 3.9 standard deviations
    "PredictiveAnomalyDetection": 1.0,  # its own n_std rule says 1.0
    "StandardAbsoluteDeviation": 4.0,  # |value - mean| / sd
}
#: binary detectors that watch for a *drop* in the share of ones, so are fed True for a good outcome
#: (FHDDM's code, like MOA's, tests max(mean) - mean, though its docstring calls 1 an error)
ONES_ARE_GOOD = frozenset({"FHDDM"})
STATE_VERSION = 1
RIVER_VERSION = importlib.metadata.version("river")
_TINY = 1e-12


class RiverConfigError(ValueError):
    """A river detector can't be built as configured; ``field`` is the parameter at fault ("" = the kind)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}" if field else message)


def _is_detector(cls: type) -> bool:
    bases = (
        river_base.DriftDetector,
        river_base.BinaryDriftDetector,
        river_base.AnomalyDetector,
        river_base.SupervisedAnomalyDetector,
        river_base.AnomalyFilter,
    )
    return issubclass(cls, bases)


def kinds() -> list[str]:
    """Every ``river.X`` a journey map may name, sorted."""
    names = set()
    for module_name in DETECTOR_MODULES:
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", dir(module)):
            found = getattr(module, name, None)
            if inspect.isclass(found) and _is_detector(found):
                names.add(f"river.{name}")
    return sorted(names)


def _resolve(kind: str, modules: tuple[str, ...]) -> type:
    """The river class named ``river.X`` (looked up in ``modules``) or ``river.module.X``."""
    if not isinstance(kind, str) or not kind.startswith("river."):
        raise RiverConfigError("", f"{kind!r} is not a river class; write river.<Name>")
    module_name, _, name = kind.rpartition(".")
    candidates = modules if module_name == "river" else (module_name,) if module_name in modules else ()
    for candidate in candidates:
        found = getattr(importlib.import_module(candidate), name, None)
        if inspect.isclass(found) and not name.startswith("_"):
            return found
    if modules == DETECTOR_MODULES:
        raise RiverConfigError(
            "", f"{kind!r} is not a river drift detector or anomaly scorer; one of: {', '.join(kinds())}"
        )
    raise RiverConfigError("", f"{kind!r} is not a class of {', '.join(modules)}")


def make_estimator(kind: str, params: Mapping[str, Any] | None = None, *, nested: bool = False) -> Any:
    """A fresh river estimator ``kind`` built with ``params``.

    A parameter value that is a mapping with a ``kind`` (and optional ``params``) is itself an
    estimator, e.g. ``{"kind": "river.time_series.HoltWinters", "params": {"alpha": 0.3}}``; a
    list is passed as a tuple. Raises :class:`RiverConfigError` naming the parameter at fault.
    """
    cls = _resolve(kind, NESTED_MODULES if nested else DETECTOR_MODULES)
    if not nested and not _is_detector(cls):
        raise RiverConfigError("", f"{kind!r} is not a drift detector or anomaly scorer; one of: {', '.join(kinds())}")
    accepted = [name for name in inspect.signature(cls).parameters if name not in ("self", "args", "kwargs")]
    values: dict[str, Any] = {}
    for name, value in (params or {}).items():
        if name not in accepted:
            choices = ", ".join(accepted) or "none"
            raise RiverConfigError(str(name), f"{kind} takes no parameter {name!r}; it takes: {choices}")
        try:
            values[name] = _value(value)
        except RiverConfigError as error:
            raise RiverConfigError(f"{name}.{error.field}" if error.field else name, error.message) from None
    try:
        return cls(**values)
    except (TypeError, ValueError) as error:
        raise RiverConfigError("", f"{kind} refused its parameters: {error}") from None


def _value(value: Any) -> Any:
    if isinstance(value, Mapping) and "kind" in value:
        unknown = set(value) - {"kind", "params"}
        if unknown:
            raise RiverConfigError(sorted(unknown)[0], "a nested estimator takes only kind and params")
        try:
            return make_estimator(value["kind"], value.get("params"), nested=True)
        except RiverConfigError as error:
            raise RiverConfigError(f"params.{error.field}" if error.field else "kind", error.message) from None
    if isinstance(value, list):
        return tuple(_value(item) for item in value)
    if isinstance(value, Mapping):
        return {key: _value(item) for key, item in value.items()}
    return value


def family(estimator: Any) -> str:
    """ "outcomes" (binary drift), "drift" (drift on values) or "scorer" (anomaly)."""
    if isinstance(estimator, river_base.BinaryDriftDetector):
        return "outcomes"
    if isinstance(estimator, river_base.DriftDetector):
        return "drift"
    return "scorer"


def _supervised(estimator: Any) -> bool:
    if isinstance(estimator, river_base.AnomalyFilter):
        return _supervised(estimator.anomaly_detector)
    return isinstance(estimator, river_base.SupervisedAnomalyDetector)


def _unwrapped(estimator: Any) -> Any:
    while isinstance(estimator, river_base.AnomalyFilter):
        estimator = estimator.anomaly_detector
    return estimator


class RiverDetector:
    """A river drift detector or anomaly scorer judging one series (see the module docstring).

    Args:
        estimator: the river class, ``"river.PageHinkley"`` (see :func:`kinds`).
        params: its parameters; nested estimators as ``{"kind": ..., "params": ...}``.
        direction: the bad direction, "up", "down" or "both".
        warmup: windows fed before any alert.
        min_volume: windows with less volume are not fed (value-fed families; binary
            detectors take every session, however few).
        consecutive: anomalous windows in a row before the verdict fires.
        threshold: the anomaly score at which a scorer's window is anomalous, in the
            estimator's units (default: see ``DEFAULT_THRESHOLDS``); unused by drift detectors
            and by river's filters, which classify scores themselves.
        critical: score (the scorer's, or the drift's shift in standard deviations) from which
            an anomaly is critical rather than a warning; None: always a warning.
        recent: windows in the recent mean a drift is judged by.
        hold: the most windows a drift alert lasts.
        max_outcomes: the most outcomes a binary detector is fed per window: a larger window is
            scaled down to it, keeping its ratio (river's binary detectors cost 1-100 µs per
            outcome; see bench/river_blocks.py).
    """

    def __init__(
        self,
        estimator: str,
        params: Mapping[str, Any] | None = None,
        direction: Direction = "both",
        warmup: int = 30,
        min_volume: float = 0,
        consecutive: int = 1,
        threshold: float | None = None,
        critical: float | None = None,
        recent: int = 10,
        hold: int = 30,
        max_outcomes: int = 1000,
    ) -> None:
        if direction not in ("up", "down", "both"):
            raise ValueError(f"direction must be up, down or both, not {direction!r}")
        if consecutive < 1 or warmup < 0 or min_volume < 0 or recent < 1 or hold < 1 or max_outcomes < 1:
            raise ValueError("consecutive, recent, hold, max_outcomes >= 1 and warmup, min_volume >= 0 are required")
        self.estimator = estimator
        self.params = dict(params or {})
        self.direction = direction
        self.warmup = warmup
        self.min_volume = min_volume
        self.consecutive = consecutive
        self.critical = critical
        self.recent = recent
        self.hold = hold
        self.max_outcomes = max_outcomes
        self.model: Any = make_estimator(estimator, self.params)
        self.family = family(self.model)
        name = type(_unwrapped(self.model)).__name__
        self.filtered = isinstance(self.model, river_base.AnomalyFilter)
        if self.family == "scorer" and threshold is None and not self.filtered:
            if name not in DEFAULT_THRESHOLDS:
                raise RiverConfigError(
                    "",
                    f"{estimator} has no natural threshold: wrap it, e.g. kind: river.ThresholdFilter, "
                    f"params: {{anomaly_detector: {{kind: {estimator}}}, threshold: 0.9}}",
                )
            threshold = DEFAULT_THRESHOLDS[name]
        if self.filtered and threshold is None:
            threshold = getattr(self.model, "threshold", None)  # ThresholdFilter's (QuantileFilter's moves)
        self.threshold = threshold
        self._reset()

    def _reset(self) -> None:
        self.seen = 0  # windows fed
        self.before = stats.Var()  # the windows since the last drift, but the recent ones: mean and spread
        self.latest: deque[float] = deque(maxlen=self.recent)  # the last `recent` window values
        self.alarm: tuple[float, float, float] | None = None  # after a bad drift: (old mean, old sd, shift)
        self.alarm_left = 0
        self.bad_run = 0

    def __repr__(self) -> str:
        shown = ("estimator", "params", "direction", "warmup", "min_volume", "consecutive", "threshold", "critical")
        return f"RiverDetector({', '.join(f'{name}={getattr(self, name)!r}' for name in shown)})"

    # -- the Detector protocol ------------------------------------------------------------

    def update(self, observation: Observation) -> Verdict:
        """Feed one window to the estimator; the verdict on it."""
        value, volume = observation.value, observation.volume
        if not math.isfinite(value):
            return Verdict.quiet(observation, "no value")
        if self.family == "outcomes":
            if volume is None or volume < 1 or not 0.0 <= value <= 1.0:
                return Verdict.quiet(observation, "needs a ratio and its volume")
        elif volume is not None and volume < max(self.min_volume, _TINY):
            return Verdict.quiet(observation, "low volume")
        warm = self.seen >= self.warmup
        self.seen += 1
        if self.family == "scorer":
            return self._score(observation, warm)
        return self._drift(observation, warm)

    def _bad_side(self, shift: float) -> float:
        return {"up": max(0.0, shift), "down": max(0.0, -shift), "both": abs(shift)}[self.direction]

    def _drift(self, observation: Observation, warm: bool) -> Verdict:
        value = observation.value
        if self.family == "outcomes":
            drifted = self._feed_outcomes(value, min(round(observation.volume or 0.0), self.max_outcomes))
        else:
            self.model.update(value)
            drifted = bool(self.model.drift_detected)
        if len(self.latest) == self.recent:  # the oldest recent window becomes an earlier one
            self.before.update(self.latest[0])
        self.latest.append(value)
        recent = sum(self.latest) / len(self.latest)
        earlier, spread = self.before.mean.get(), math.sqrt(max(self.before.get(), 0.0))
        if self.before.mean.n == 0:
            earlier = recent
        if drifted:
            shift = recent - earlier
            if self._bad_side(shift) > 0 and warm:
                self.alarm, self.alarm_left = (earlier, spread, shift), self.hold
            else:
                self.alarm, self.alarm_left = None, 0
            self.before = stats.Var()  # the new normal is learned from here
        expected, sd = earlier, spread
        firing = False
        if self.alarm is not None:
            old, old_sd, shift = self.alarm
            expected, sd = old, old_sd
            still = (recent - old) / shift if shift else 0.0
            self.alarm_left -= 1
            firing = still >= 0.5
            if not firing or self.alarm_left <= 0:
                self.alarm, self.alarm_left = None, 0
        score = self._bad_side((recent - expected) / sd) if sd > _TINY else 0.0
        return self._verdict(observation, warm, firing, score, expected, math.nan, math.nan)

    def _feed_outcomes(self, value: float, units: int) -> bool:
        """Feed a window's sessions one by one, the ``True`` ones spread evenly; whether any drifted."""
        bad_share = 1.0 - value if self.direction == "down" else value
        ones = round((1.0 - bad_share if type(self.model).__name__ in ONES_ARE_GOOD else bad_share) * units)
        drifted, given = False, 0
        for unit in range(units):
            outcome = (unit + 1) * ones // units > given  # evenly interleaved: Bresenham
            given += outcome
            self.model.update(outcome)
            drifted = drifted or bool(self.model.drift_detected)
        return drifted

    def _expected(self) -> tuple[float, float, float]:
        """The estimator's expected value and band, where it gives one (NaN otherwise)."""
        inner = _unwrapped(self.model)
        nan = math.nan
        gaussian = getattr(inner, "gaussian", None)
        if gaussian is not None and gaussian.n_samples > 0:
            mu, sigma = gaussian.mu, gaussian.sigma
            if self.threshold is not None and 0 < self.threshold < 1 and sigma > 0:
                half = sigma * NormalDist().inv_cdf(0.5 + self.threshold / 2)
                return mu, mu - half, mu + half
            return mu, nan, nan
        sub_stat = getattr(inner, "sub_stat", None)
        if sub_stat is not None:
            return float(sub_stat.get()), nan, nan
        forecaster = getattr(inner, "predictive_model", None)
        if forecaster is not None and hasattr(forecaster, "forecast"):
            try:
                return float(forecaster.forecast(getattr(inner, "horizon", 1))[0]), nan, nan
            except (IndexError, ValueError, ZeroDivisionError):  # not initialised yet (e.g. HoltWinters)
                return nan, nan, nan
        return nan, nan, nan

    def _score(self, observation: Observation, warm: bool) -> Verdict:
        value = float(observation.value)
        args: tuple[Any, ...] = (None, value) if _supervised(self.model) else ({"value": value},)
        expected, lower, upper = self._expected()
        try:
            score = float(self.model.score_one(*args))
        except (IndexError, ValueError, ZeroDivisionError):  # a forecaster not initialised yet
            self.model.learn_one(*args)
            return Verdict.quiet(observation, "estimator not ready")
        flagged = bool(self.model.classify(score)) if self.filtered else score >= (self.threshold or 0.0)
        if flagged and math.isfinite(expected):
            flagged = self._bad_side(value - expected) > 0
        self.model.learn_one(*args)
        return self._verdict(observation, warm, flagged, score, expected, lower, upper)

    def _verdict(
        self,
        observation: Observation,
        warm: bool,
        flagged: bool,
        score: float,
        expected: float,
        lower: float,
        upper: float,
    ) -> Verdict:
        self.bad_run = self.bad_run + 1 if flagged else 0
        anomaly = warm and self.bad_run >= self.consecutive
        severity: Severity = "none"
        if anomaly:
            critical = self.critical is not None and score >= self.critical
            severity = "critical" if critical else "warning"
        reason = "" if warm else "warming up"
        if anomaly:
            reason = f"{self.estimator}: {'drift' if self.family != 'scorer' else 'score'} {score:.3g}"
        return Verdict(
            observation.ts,
            observation.value,
            expected,
            lower,
            upper,
            score,
            observation.volume,
            anomaly,
            severity,
            reason,
        )

    # -- checkpoints ------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """The estimator and running statistics, pickled: JSON-able, for this worker's changelog only."""
        learned = (self.model, self.seen, self.before, list(self.latest), self.alarm, self.alarm_left, self.bad_run)
        return {
            "format": "river-pickle",
            "version": STATE_VERSION,
            "river": RIVER_VERSION,
            "estimator": self.estimator,
            "params": repr(sorted(self.params.items())),
            "pickle": base64.b64encode(pickle.dumps(learned, protocol=pickle.HIGHEST_PROTOCOL)).decode("ascii"),
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Take back a :meth:`state` of a detector configured the same way (ValueError otherwise)."""
        if state.get("format") != "river-pickle" or state.get("version") != STATE_VERSION:
            raise ValueError("not a river detector state of this version")
        if state.get("estimator") != self.estimator or state.get("params") != repr(sorted(self.params.items())):
            raise ValueError(f"state of {state.get('estimator')} {state.get('params')}, not of this detector")
        learned = pickle.loads(base64.b64decode(state["pickle"]))  # trusted: our own changelog (module docstring)
        model, seen, before, latest, alarm, alarm_left, bad_run = learned
        self.model, self.seen, self.before = model, int(seen), before
        self.latest = deque((float(x) for x in latest), maxlen=self.recent)
        self.alarm = None if alarm is None else (float(alarm[0]), float(alarm[1]), float(alarm[2]))
        self.alarm_left, self.bad_run = int(alarm_left), int(bad_run)
