"""The detection benchmark's oracle (bench/oracle.py) on cases with a closed-form answer, and the
check that it keeps its budget (bench/power.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench import oracle, power
from bench.power import Case
from bench.sweep import Replayed, TrafficSet


def test_threshold_matches_the_tabulated_normal_cusum() -> None:
    # A normal mean shift of one standard deviation: the LLR CUSUM is the standardised CUSUM
    # with reference k = 1/2 and the same threshold. Its one-sided in-control ARL is 336
    # windows at h = 4 and 930 at h = 5 (twice the two-sided 168 and 465 of Montgomery's
    # table, "Introduction to Statistical Quality Control", Table 9.3; Brook & Evans 1972).
    i0 = 0.5  # KL divergence of N(0, 1) from N(1, 1)
    assert oracle.threshold(336, i0) == pytest.approx(4.0, abs=0.05)
    assert oracle.threshold(930, i0) == pytest.approx(5.0, abs=0.05)
    assert oracle.siegmund_arl(oracle.threshold(43_200, i0), i0) == pytest.approx(43_200, rel=1e-6)


def test_siegmund_arl_agrees_with_a_simulation() -> None:
    i0, h = 0.5, 2.0  # short enough to simulate: ARL ~ 39 windows
    rng = np.random.default_rng(5)
    runs = 20_000
    statistic = np.zeros(runs)
    alarm = np.full(runs, -1)
    step = 0
    while (alarm < 0).any():
        step += 1
        statistic = np.maximum(0.0, statistic + rng.standard_normal(runs) - 0.5)  # llr = x - 1/2 under no change
        fired = (statistic >= h) & (alarm < 0)
        alarm[fired] = step
    simulated = alarm.mean()
    assert oracle.siegmund_arl(h, i0) == pytest.approx(simulated, rel=0.05)


def test_a_change_as_large_as_the_threshold_is_caught_in_one_window() -> None:
    parameters = oracle.Parameters("binomial", before=0.05, after=0.5)
    windows = [(60.0 * i, 0.5, 200.0) for i in range(1, 6)]
    h = oracle.threshold(43_200, oracle.divergence(parameters, 200.0))
    # one window: k = 100 of n = 200, llr = 100 ln(10) + 100 ln(0.5 / 0.95) ~ 166 >> h
    assert oracle.llr(parameters, 0.5, 200.0) == pytest.approx(100 * math.log(10) + 100 * math.log(0.5 / 0.95))
    assert oracle.cusum_alarm(parameters, windows, h)[0] == 60.0
    # no change: the statistic stays at 0 and nothing fires
    assert oracle.cusum_alarm(parameters, [(60.0 * i, 0.05, 200.0) for i in range(1, 100)], h) == (None, 0.0)


@pytest.mark.parametrize(
    ("model", "before", "after"), [("binomial", 0.2, 0.35), ("poisson", 0.1, 0.3), ("normal", 0.4, 0.1)]
)
def test_divergence_is_minus_the_expected_llr_without_change(model: oracle.Model, before: float, after: float) -> None:
    n = 40
    parameters = oracle.Parameters(model, before, after, unit_variance=0.5)
    if model == "binomial":
        expected = sum(
            math.comb(n, k) * before**k * (1 - before) ** (n - k) * oracle.llr(parameters, k / n, n)
            for k in range(n + 1)
        )
    elif model == "poisson":
        mean = before * n
        expected = sum(
            math.exp(-mean + k * math.log(mean) - math.lgamma(k + 1)) * oracle.llr(parameters, k / n, n)
            for k in range(200)
        )
    else:
        expected = oracle.llr(parameters, before, n)  # linear in the window mean: its expectation is at the mean
    assert oracle.divergence(parameters, n) == pytest.approx(-expected, rel=1e-9)


def test_pooled_normal_variance_is_per_unit() -> None:
    # windows of volume 4 whose means scatter by 1/2: per unit, 4 x 0.25 x 4 windows / (4 - 1)
    windows = [(60.0 * i, value, 4.0) for i, value in enumerate([0.5, -0.5, 0.5, -0.5], start=1)]
    mean, variance = oracle.pooled("normal", windows) or (math.nan, math.nan)
    assert mean == pytest.approx(0.0)
    assert variance == pytest.approx(4 * 0.25 * 4 / 3)


def test_threshold_falls_back_to_lordens_bound_when_one_window_can_cross() -> None:
    # 200 units a window of a 0.05 -> 0.5 change: ~100 nats of evidence a window, so the
    # normal random walk's overshoot no longer applies; ARL0 >= exp(h) does.
    assert oracle.threshold(43_200, 100.0) == pytest.approx(math.log(43_200))


def test_a_window_that_says_more_than_exp_can_hold_gives_lordens_bound() -> None:
    """A high-volume step whose incident rate is near 0 or 1: a window's divergence in the
    hundreds of thousands (the latency bench overflowed on one, 2026-12-01)."""
    assert oracle.siegmund_arl(10.0, 1e6) == math.inf
    assert oracle.threshold(1e6, 1e6) == pytest.approx(math.log(1e6))


def _quiet_queue_week(long_waits_on_normal_days: bool) -> tuple[Replayed, list[Case]]:
    """A week of a quiet chat queue, a contact a minute answered in about 2 s, and an hour of
    understaffing (waits x3) at 13:00 on day 4; with ``long_waits_on_normal_days``, one caller
    also waits 66 s at about 13:00 on three other days, as callers of a quiet queue sometimes do."""
    rng = np.random.default_rng(3)
    start, day = 1_793_577_600.0, 86400.0
    ts = start + 60.0 * np.arange(1, 7 * 1440 + 1)
    waits = 2.0 * np.exp(0.5 * rng.standard_normal(ts.size))
    onset = start + 4 * day + 13 * 3600.0
    during = (ts > onset) & (ts <= onset + 3600.0)
    waits[during] *= 3.0
    if long_waits_on_normal_days:
        for other in (1, 2, 5):
            waits[np.searchsorted(ts, start + other * day + 13.5 * 3600.0)] = 66.0
    truth = [
        {"incident": "understaffed-chat", "kind": "understaffed", "channel": "chat", "queue": "technical",
         "metric": "wait_seconds", "start": onset, "end": onset + 3600.0, "magnitude": 0.33, "shape": "step"},
    ]  # fmt: skip
    replayed = Replayed(
        TrafficSet("example", 1.0, 7.0, 0, 0), 60.0, start, float(ts[-1]), int(ts.size), 0.0,
        [(("", "", "chat", "technical", ""), "average_speed_of_answer")],
        window=np.arange(ts.size), series_id=np.zeros(ts.size, dtype=int), ts=ts, value=waits,
        volume=np.ones(ts.size), truth=truth,
    )  # fmt: skip
    return replayed, power.cases_of(replayed, burn_in=6 * 3600.0)


def test_an_incident_the_oracle_catches_only_with_a_test_that_alarms_on_normal_days_is_over_budget() -> None:
    replayed, cases = _quiet_queue_week(long_waits_on_normal_days=False)
    power.run_oracle(replayed, cases, budget_days=200.0)
    assert cases[0].oracle_status == "detected" and cases[0].oracle_delay is not None
    assert cases[0].oracle_delay < 600, "waits x3 a contact a minute: caught within minutes"

    # the same incident, but the test that knows it also alarms on a single 66-s wait at the
    # same hour on normal days: three alarms in the 7 x 3 hours it allows one per 200 days
    replayed, cases = _quiet_queue_week(long_waits_on_normal_days=True)
    power.run_oracle(replayed, cases, budget_days=200.0)
    assert cases[0].oracle_status == "over budget" and cases[0].oracle_delay is None
