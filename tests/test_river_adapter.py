"""River detectors behind the Detector protocol: families, direction, checkpoints, journey-map selection."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import orjson
import pytest

from frictionwatch.cli import main
from frictionwatch.detectors.bank import DetectorBank
from frictionwatch.detectors.base import Observation, Verdict
from frictionwatch.detectors.river_adapter import RiverConfigError, RiverDetector, kinds
from frictionwatch.journeymap import JourneyMapError, parse_journey_map

MINUTE = 60.0
HOLT_WINTERS = {
    "kind": "river.time_series.HoltWinters",
    "params": {"alpha": 0.3, "beta": 0.01, "gamma": 0.3, "seasonality": 24},
}


def ratio_windows(rng: random.Random, p: float, n: int, count: int) -> list[tuple[float, float]]:
    return [(sum(rng.random() < p for _ in range(n)) / n, float(n)) for _ in range(count)]


def feed(detector: RiverDetector, windows: list[tuple[float, float]], start: int = 0) -> list[Verdict]:
    return [detector.update(Observation((start + i) * MINUTE, v, n)) for i, (v, n) in enumerate(windows)]


def same(a: Verdict, b: Verdict) -> bool:
    """Verdicts equal field by field, NaN equal to NaN."""
    pairs = zip(
        (a.ts, a.observed, a.expected, a.lower, a.upper, a.score, a.anomaly, a.severity, a.reason),
        (b.ts, b.observed, b.expected, b.lower, b.upper, b.score, b.anomaly, b.severity, b.reason),
        strict=True,
    )
    return all(
        x == y or (isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y)) for x, y in pairs
    )


CHECKPOINTED = [
    ("river.PageHinkley", {"threshold": 0.3}),
    ("river.ADWIN", {"delta": 0.01}),
    ("river.KSWIN", {"alpha": 0.001, "seed": 3}),
    ("river.DDM", {}),
    ("river.HDDMA", {}),
    ("river.HDDMW", {}),
    ("river.GaussianScorer", {"grace_period": 20}),
    ("river.StandardAbsoluteDeviation", {}),
    ("river.PredictiveAnomalyDetection", {"predictive_model": HOLT_WINTERS, "warmup_period": 30}),
    (
        "river.ThresholdFilter",
        {"anomaly_detector": {"kind": "river.HalfSpaceTrees", "params": {"seed": 1}}, "threshold": 0.9},
    ),
]


@pytest.mark.parametrize(("kind", "params"), CHECKPOINTED, ids=[kind for kind, _ in CHECKPOINTED])
def test_checkpoint_round_trips(kind: str, params: dict[str, Any]) -> None:
    rng = random.Random(5)
    history = ratio_windows(rng, 0.8, 60, 80) + ratio_windows(rng, 0.5, 60, 10)
    detector = RiverDetector(kind, params, direction="down", warmup=20)
    feed(detector, history)
    state = orjson.loads(orjson.dumps(detector.state()))  # JSON on the way, as in the changelog
    twin = RiverDetector(kind, params, direction="down", warmup=20)
    twin.restore(state)
    after = ratio_windows(rng, 0.5, 60, 20) + ratio_windows(rng, 0.8, 60, 40)
    originals, restored = feed(detector, after, start=90), feed(twin, after, start=90)
    assert all(same(a, b) for a, b in zip(originals, restored, strict=True))
    fresh = feed(RiverDetector(kind, params, direction="down", warmup=20), after, start=90)
    assert not all(same(a, b) for a, b in zip(originals, fresh, strict=True))  # the state carried something


def test_a_state_of_another_configuration_is_refused() -> None:
    detector = RiverDetector("river.PageHinkley", {"threshold": 0.3})
    feed(detector, [(0.5, 10.0)] * 5)
    with pytest.raises(ValueError, match="not of this detector"):
        RiverDetector("river.PageHinkley", {"threshold": 0.5}).restore(detector.state())
    with pytest.raises(ValueError, match="not a river detector state"):
        RiverDetector("river.PageHinkley").restore({"level": 0.5})


def test_a_drift_fires_only_in_the_bad_direction() -> None:
    rng = random.Random(1)
    calm = ratio_windows(rng, 0.8, 200, 120)
    better, worse = ratio_windows(rng, 0.95, 200, 20), ratio_windows(rng, 0.6, 200, 20)
    for changed, should_fire in ((better, False), (worse, True)):
        detector = RiverDetector("river.PageHinkley", {"threshold": 0.5}, direction="down", warmup=30)
        assert not any(v.anomaly for v in feed(detector, calm))
        verdicts = feed(detector, changed, start=len(calm))
        assert any(v.anomaly for v in verdicts) is should_fire
        if should_fire:
            first = next(v for v in verdicts if v.anomaly)
            assert first.expected == pytest.approx(0.8, abs=0.01) and first.score > 1.5  # the old level, how far


def test_a_drift_alert_holds_while_the_shift_lasts_then_ends() -> None:
    rng = random.Random(2)
    detector = RiverDetector("river.ADWIN", {"delta": 0.002, "clock": 1}, direction="up", warmup=30, consecutive=2)
    feed(detector, [(20 + rng.gauss(0, 1), 50.0) for _ in range(200)])
    during = feed(detector, [(35 + rng.gauss(0, 1), 50.0) for _ in range(20)], start=200)
    back = feed(detector, [(20 + rng.gauss(0, 1), 50.0) for _ in range(60)], start=220)
    assert sum(v.anomaly for v in during) >= 10  # consecutive=2 is met: the alert holds, not one window
    assert not any(v.anomaly for v in back[20:])


def test_binary_detectors_see_one_outcome_per_session() -> None:
    detector = RiverDetector("river.DDM", {}, direction="down", warmup=30)
    detector.update(Observation(0.0, 0.75, 40))  # 30 of 40 sessions progressed: 10 bad outcomes
    assert detector.model._p.n == 40 and detector.model._p.get() == pytest.approx(10 / 40)
    capped = RiverDetector("river.DDM", {}, direction="down", max_outcomes=100)
    capped.update(Observation(0.0, 0.75, 4000))  # a big window is scaled down, keeping its ratio
    assert capped.model._p.n == 100 and capped.model._p.get() == pytest.approx(0.25)
    rng = random.Random(3)
    verdicts = feed(detector, ratio_windows(rng, 0.9, 40, 100) + ratio_windows(rng, 0.6, 40, 10), start=1)
    assert not any(v.anomaly for v in verdicts[:100])
    assert any(v.anomaly for v in verdicts[100:])
    assert detector.update(Observation(9999.0, 3.5, 40)).reason == "needs a ratio and its volume"


def test_gaussian_scorer_judges_the_bad_side_of_its_mean() -> None:
    rng = random.Random(4)
    detector = RiverDetector("river.GaussianScorer", {"grace_period": 20}, direction="up", warmup=30)
    feed(detector, [(100 + rng.gauss(0, 5), 30.0) for _ in range(200)])
    high = detector.update(Observation(200 * MINUTE, 140.0, 30))
    low = detector.update(Observation(201 * MINUTE, 60.0, 30))
    assert high.anomaly and high.expected == pytest.approx(100, abs=2) and high.lower < 100 < high.upper < 140
    assert low.score > 0.999 and not low.anomaly  # as unusual, but on the good side


def test_a_forecaster_gives_the_expected_value() -> None:
    detector = RiverDetector(
        "river.PredictiveAnomalyDetection",
        {"predictive_model": HOLT_WINTERS, "n_std": 6.0, "warmup_period": 30},
        direction="up",
        warmup=72,  # PAD scores 1.0 just after its own warmup_period: its error statistics are empty
    )
    rng = random.Random(6)
    hourly = [(100 + 30 * math.sin(2 * math.pi * h / 24) + rng.gauss(0, 2), 40.0) for h in range(24 * 10)]
    verdicts = feed(detector, hourly)
    assert not any(v.anomaly for v in verdicts)
    peak = detector.update(Observation(240 * MINUTE, 100 + 30 * math.sin(0) + 60, 40))
    assert peak.anomaly and peak.expected == pytest.approx(100, abs=8)


def test_unknown_class_or_parameter_is_named() -> None:
    with pytest.raises(RiverConfigError, match=r"river\.PageHinkley") as error:
        RiverDetector("river.PageHinky")
    assert error.value.field == ""
    with pytest.raises(RiverConfigError, match="takes: min_instances, delta") as error:
        RiverDetector("river.PageHinkley", {"delt": 0.1})
    assert error.value.field == "delt"
    with pytest.raises(RiverConfigError) as error:
        RiverDetector(
            "river.PredictiveAnomalyDetection", {"predictive_model": {**HOLT_WINTERS, "params": {"alpah": 1}}}
        )
    assert error.value.field == "predictive_model.params.alpah"
    with pytest.raises(RiverConfigError, match="ThresholdFilter"):
        RiverDetector("river.HalfSpaceTrees")  # no natural threshold: it must be wrapped
    assert {"river.PageHinkley", "river.ADWIN", "river.HDDMA", "river.GaussianScorer"} <= set(kinds())
    assert "river.DriftRetrainingClassifier" not in kinds()


MAP = """\
version: 1
journeys:
  purchase:
    steps:
      - {name: cart, stage: purchase, channels: [web]}
      - {name: paid, stage: purchase, channels: [web], goal: true}
detectors:
  overrides:
    - match: {metric: flow_ratio}
      kind: river.HDDMA
      params: {drift_confidence: 0.0001}
    - match: {metric: errors_per_visit}
      kind: river.PageHinkley
      params:
        delta: 0.005
        {tail}
"""


def map_text(tail: str = "threshold: 50") -> str:
    return MAP.replace("{tail}", tail)


def test_journey_map_selects_river_detectors() -> None:
    journey_map = parse_journey_map(map_text())
    bank = DetectorBank(journey_map)
    place = ("purchase", "cart", "web", "", "")
    findings = bank.observe(
        [(place, "flow_ratio", Observation(0.0, 0.8, 50)), (place, "errors_per_visit", Observation(0.0, 0.1, 50))]
    )
    flow, errors = (bank.detectors[(place, metric)] for metric in ("flow_ratio", "errors_per_visit"))
    assert isinstance(flow, RiverDetector) and flow.family == "outcomes" and flow.model.drift_confidence == 0.0001
    assert isinstance(errors, RiverDetector) and errors.model.threshold == 50 and errors.direction == "up"
    assert len(findings) == 2
    state = bank.state("purchase")
    again = DetectorBank(journey_map)
    assert again.restore(orjson.loads(orjson.dumps(state))) == 2  # both detectors (the rest: expected visits)
    assert again.expected_visits == bank.expected_visits


@pytest.mark.parametrize(
    ("text", "line", "field", "says"),
    [
        (map_text("threshol: 50"), 16, "detectors.overrides[1].params.threshol", "takes: min_instances"),
        (map_text().replace("river.HDDMA", "river.HDDM_A"), 10, "detectors.overrides[0].kind", "river.HDDMA"),
        (map_text().replace("metric: flow_ratio", "metric: nps"), 10, "detectors.overrides[0].kind", "ratio"),
        (map_text().replace("kind: river.PageHinkley", "kind: mean"), 15, "detectors.overrides[1].params", "river"),
    ],
)
def test_journey_map_names_the_bad_river_setting(text: str, line: int, field: str, says: str) -> None:
    with pytest.raises(JourneyMapError) as error:
        parse_journey_map(text, "map.yml")
    found = [(p.line, p.field) for p in error.value.problems]
    assert (line, field) in found, found
    assert says in str(error.value)


def test_check_config_accepts_river_detectors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "map.yml"
    path.write_text(map_text())
    assert main(["check-config", "--journey-map", str(path)]) == 0
    path.write_text(map_text("threshol: 50"))
    assert main(["check-config", "--journey-map", str(path)]) == 1
    assert "params.threshol" in capsys.readouterr().err


def test_changing_a_river_detector_starts_it_afresh() -> None:
    bank = DetectorBank(parse_journey_map(map_text()))
    place = ("purchase", "cart", "web", "", "")
    for minute in range(5):
        bank.observe([(place, "errors_per_visit", Observation(minute * MINUTE, 0.1, 50))])
    assert bank.reconfigure(parse_journey_map(map_text("threshold: 20"))) >= 1
    detector = bank.detectors[(place, "errors_per_visit")]
    assert isinstance(detector, RiverDetector) and detector.model.threshold == 20 and detector.seen == 0
    assert bank.reconfigure(parse_journey_map(map_text().split("detectors:")[0])) >= 1  # back to the default kind
    assert not isinstance(bank.detectors[(place, "errors_per_visit")], RiverDetector)


def test_the_documented_example_loads() -> None:
    docs = (Path(__file__).resolve().parents[1] / "docs" / "detectors.md").read_text()
    section = docs.split("### River detectors", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    head = "version: 1\njourneys:\n  purchase:\n    steps:\n"
    steps = "".join(f"      - {{name: {name}, stage: purchase, channels: [web]}}\n" for name in ("checkout", "payment"))
    contact = "      - {name: paid, stage: purchase, channels: [web], goal: true}\ncontact_centre:\n"
    queues = "  phone: {queues: [billing]}\n  email: {queues: [general]}\n"
    journey_map = parse_journey_map(head + steps + contact + queues + example)
    kinds_used = [override.settings.kind for override in journey_map.detector_overrides]
    assert kinds_used == [
        "river.HDDMA",
        "river.PageHinkley",
        "river.PredictiveAnomalyDetection",
        "river.ThresholdFilter",
    ]
    bank = DetectorBank(journey_map)
    place = ("purchase", "checkout", "web", "", "")
    (finding,) = bank.observe([(place, "errors_per_visit", Observation(0.0, 0.2, 50))])
    assert isinstance(bank.detectors[(place, "errors_per_visit")], RiverDetector) and finding.threshold == 0.9


def test_params_go_with_their_kind() -> None:
    head = map_text().split("detectors:")[0]
    detectors = """detectors:
  defaults: {kind: river.PageHinkley, params: {threshold: 20}}
  overrides:
    - match: {metric: nps}
      kind: river.ADWIN
"""
    bank = DetectorBank(parse_journey_map(head + detectors))
    place = ("purchase", "cart", "web", "", "")
    bank.observe([(place, "nps", Observation(0.0, 0.5, 20)), (place, "errors_per_visit", Observation(0.0, 0.1, 20))])
    adwin, page_hinkley = bank.detectors[(place, "nps")], bank.detectors[(place, "errors_per_visit")]
    assert isinstance(adwin, RiverDetector) and adwin.params == {} and adwin.estimator == "river.ADWIN"
    assert isinstance(page_hinkley, RiverDetector) and page_hinkley.model.threshold == 20


@pytest.mark.parametrize("kind", ["river.HDDMA", "river.HDDMW", "river.FHDDM"])
def test_binary_detectors_fire_on_a_worse_ratio_only(kind: str) -> None:
    rng = random.Random(1)
    calm = ratio_windows(rng, 0.8, 50, 300)
    for after, should_fire in ((0.4, True), (0.95, False)):
        detector = RiverDetector(kind, {}, direction="down", warmup=30)
        assert not any(v.anomaly for v in feed(detector, calm))
        verdicts = feed(detector, ratio_windows(rng, after, 50, 30), start=300)
        assert any(v.anomaly for v in verdicts) is should_fire  # FHDDM watches the share of ones fall
