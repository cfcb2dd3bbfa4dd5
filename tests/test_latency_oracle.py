"""The latency benchmark's oracle column (bench/latency.py oracle_delays): the run's events
made again and judged by a CUSUM that knows each incident."""

from __future__ import annotations

from pathlib import Path

from bench.latency import WINDOW_SIZE, oracle_delays

START = 1_796_100_000.0


def test_the_oracle_times_an_outage_on_the_runs_own_windows(tmp_path: Path) -> None:
    scenario = tmp_path / "scenario.yml"
    scenario.write_text(
        "version: 1\nincidents:\n"
        "  - {name: payment_outage, kind: step_outage, journey: purchase, step: payment, start: 400s,"
        " duration: 120s, continuation: 0.05}\n"
        "  - {name: a_harmless_wobble, kind: error_burst, journey: support, step: article, start: 400s,"
        " duration: 60s, error_rate: 0.0001}\n"
    )
    found = oracle_delays(START, 560.0, scenario, rate=200.0)
    delay, status = found["payment_outage"]
    assert status == "detected"
    assert delay is not None and WINDOW_SIZE <= delay <= 120.0 + 2 * WINDOW_SIZE
    assert delay % WINDOW_SIZE == 0  # the end of a final window, counted from the onset on the window grid
    # an incident that makes nothing worse is not one the oracle can tell
    assert found["a_harmless_wobble"] == (None, "undetectable")
