"""The detection benchmark (bench/detection.py): its replay matches the backtest's, and the CI
reduced sweep holds the floors taken from the full run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.detection import Plan, by_margin, kept_rows, merged, missed, sweep
from bench.sweep import CONTENDERS, Replayed, TrafficSet, generator_config, replay_traffic
from frictionwatch.backtest.replay import Replayer, replay_events
from frictionwatch.generator.config import GeneratorConfig
from frictionwatch.generator.pipeline import generate
from frictionwatch.generator.sinks import JsonLinesSink, run
from frictionwatch.journeymap import load_journey_map

START = 1_793_577_600.0


def test_pushed_events_make_the_windows_of_a_file_replay(tmp_path: Path) -> None:
    journey_map = load_journey_map()
    config = GeneratorConfig(seed=4, rate=20.0, duration=900.0, start=START + 12 * 3600)
    events = tmp_path / "events.jsonl"
    run(journey_map, config, JsonLinesSink(events))
    from_file = replay_events(events, journey_map)
    replayer = Replayer(journey_map)
    for record in generate(journey_map, config):
        replayer.add(record.kind, record.value)
    pushed = replayer.finish()
    assert pushed.events == from_file.events and sum(pushed.events.values()) > 5_000
    assert pushed.observed == from_file.observed and len(pushed.observed) > 15


def test_a_late_batch_is_replayed_by_its_delivery_time(tmp_path: Path) -> None:
    # Ten minutes of every topic held back and delivered 5 minutes after the window: the events
    # after the gap are more than the allowed clock skew ahead of the last one before it.
    scenario = tmp_path / "late.yml"
    scenario.write_text(
        "version: 1\nincidents:\n  - {name: batch, kind: late_batch, start: 20m, duration: 10m, delay: 5m}\n"
    )
    traffic = TrafficSet("example", 10.0, 1 / 24, 3, 0, 0, str(scenario), START + 12 * 3600)
    assert generator_config(traffic).scenario == scenario
    replayed = Replayed.load(replay_traffic(traffic, tmp_path, report=False))
    assert replayed.last_ts - replayed.first_ts > 3500  # the replay went on past the batch
    assert [line["kind"] for line in replayed.truth] == ["late_batch"]


# Floors of the reduced sweep, `python -m bench.detection --quick` (1 simulated day, example
# map, 10 events/s, 30 random incidents and 2 controls, seed 11), measured 2026-11-30 17:32 UTC
# and again 2026-12-01 02:27 UTC with the same result, on the 2 shared cores
# (bench/results/detection-quick.md): 29 incidents scored, 11 of them detectable by the oracle
# at 1 per 30 days a series; the window detectors 1/11 caught, 1.1 false alerts a day;
# sequential (1 per 30 days a series) 8/11 caught, 18 false alerts a day. A day is the first
# day, when kind auto (shipped) is the window detectors, so the shipped row is not run here.
# The full run (docs/detectors.md, "Detection benchmark", 2026-12-01 02:09 UTC: 7 days a set,
# 214 incidents, 33 oracle-detectable at one false alarm a day for the map): shipped (auto)
# 23/33, 0.52 a day; window detectors 4/33, 0.15 a day; sequential with that map budget
# 24/33, 0.48 a day. Floors sit below the reduced sweep's numbers with the margin named.
QUICK_ORACLE_DETECTABLE_MIN = 7  # measured 11: four fewer
QUICK_SEQUENTIAL_RECALL_MIN = 0.5  # of the oracle-detectable; measured 0.73: two or three incidents fewer
QUICK_SEQUENTIAL_FALSE_PER_DAY_MAX = 32.0  # measured 19 at 1 per 30d a series (30x the map's budget of 1 a day)
QUICK_WINDOW_FALSE_PER_DAY_MAX = 3.0  # measured 1.1: two episodes more (its recall, 1/11, is no floor)
# The evidence path (bench/evidence_path.py: the events fed through a worker's stages, the
# example map's settings, one false alarm a day for the map), measured 2026-12-01 23:18 UTC:
# 6/11 caught at 1.09x the oracle's median, 3.4 false alerts a day: three episodes at the chat
# queues' thin evening shift (the generator's, about 20:30), which it has no daily profile
# for. Before the hole rule (streams/evidence.py, HOLE_EVENTS) the late-batch control added
# four step_progress episodes at once: 8.0 a day.
# Again 2026-12-05 14:10 UTC (AMD EPYC, after the oracle's budget check, bench/power.py): the
# same 11 detectable; window and sequential as before; the evidence path 7/11 at 2.29 a day.
QUICK_EVIDENCE_RECALL_MIN = 0.35  # of the oracle-detectable; measured 6/11 (0.55): two incidents fewer
QUICK_EVIDENCE_FALSE_PER_DAY_MAX = 6.0  # measured 3.4: two episodes more, not the late batch's four


@pytest.mark.integration
@pytest.mark.computing  # one process (jobs=1): it runs beside the integration tests
def test_reduced_sweep_holds_the_floors(tmp_path: Path) -> None:
    by_name = {contender.name: contender for contender in CONTENDERS}
    plan = Plan(
        maps=["example"], levels=[10.0], days=1.0, incidents=30, controls=2, seed=11,
        contenders=[by_name["window"], by_name["sequential"], by_name["evidence"]], burn_in=3 * 3600.0,
        cache=tmp_path, quick=True, jobs=1,
    )  # fmt: skip
    results = sweep(plan, say=lambda _: None)
    assert results["skipped"] == {}
    rows = {row["name"].split(" ")[0]: row for row in results["contenders"]}
    assert results["incidents"]["scored"] >= 25
    assert rows["oracle"]["oracle_detectable"] >= QUICK_ORACLE_DETECTABLE_MIN
    assert rows["oracle"]["recall_of_detectable"] == 1.0
    assert rows["sequential"]["recall_of_detectable"] >= QUICK_SEQUENTIAL_RECALL_MIN
    assert rows["sequential"]["false_per_day"] <= QUICK_SEQUENTIAL_FALSE_PER_DAY_MAX
    assert rows["window"]["false_per_day"] <= QUICK_WINDOW_FALSE_PER_DAY_MAX
    assert rows["evidence"]["recall_of_detectable"] >= QUICK_EVIDENCE_RECALL_MIN
    assert rows["evidence"]["false_per_day"] <= QUICK_EVIDENCE_FALSE_PER_DAY_MAX
    detected = [case for case in results["cases"] if case["oracle"] == "detected"]
    assert all(case["oracle_series"] and case["oracle_units"] > 0 for case in detected)
    assert all(case["oracle_margin"] >= 1.0 for case in detected)  # it alarmed: its evidence reached the threshold
    row = next(line for line in by_margin(results) if line.startswith("| evidence |"))
    cells = [cell.strip() for cell in row.strip("|").split("|")[1:] if cell.strip()]
    caught, cases = (sum(int(cell.split("/")[i]) for cell in cells) for i in (0, 1))
    assert (caught, cases) == (rows["evidence"]["caught_of_detectable"], len(detected))
    misses = [case for case in detected if case["caught"]["evidence"] is None]
    listed = missed(results, "evidence")
    assert len(listed) == (5 + len(misses) if misses else 0)
    assert all(any(case["name"] in line for line in listed) for case in misses)


def test_a_merge_keeps_each_rows_run_and_the_header_names_only_runs_still_in_the_table(tmp_path: Path) -> None:
    def row(name: str, run: str | None = None) -> dict[str, object]:
        return {"name": name, **({"run": run} if run else {})}

    def results(started: str, names: list[str]) -> dict[str, object]:
        oracle = {"name": "oracle (CUSUM, knows before/after)"}
        return {"started": started, "plan": {"days": 7}, "cases": [], "skipped": {}, "contenders": [
            oracle, *(row(name, started) for name in names)]}  # fmt: skip

    out = tmp_path / "latest.json"
    first = results("2026-12-01T23:14:06+00:00", ["shipped", "window", "evidence"])
    out.write_text(json.dumps({"detection": first}))
    second = merged(results("2026-12-01T23:43:10+00:00", ["evidence"]), out)
    out.write_text(json.dumps({"detection": second}))
    third = merged(results("2026-12-02T06:03:54+00:00", ["evidence"]), out)
    runs = {row["name"]: row.get("run") for row in third["contenders"]}
    assert runs == {
        "oracle (CUSUM, knows before/after)": None,
        "shipped": "2026-12-01T23:14:06+00:00",
        "evidence": "2026-12-02T06:03:54+00:00",
        "window": "2026-12-01T23:14:06+00:00",
    }
    assert third["merged_from"] == ["2026-12-01T23:14:06+00:00"]  # not 23:43: its only row was re-run
    assert kept_rows(third) == "; the rows of shipped, window from the run of 2026-12-01 23:14"

    # a document written before rows said their run: its rows are from its run or one it merged
    legacy = {**second, "contenders": [{k: v for k, v in r.items() if k != "run"} for r in second["contenders"]]}
    legacy["merged_from"] = ["2026-12-01T23:14:06+00:00"]
    out.write_text(json.dumps({"detection": legacy}))
    fourth = merged(results("2026-12-02T06:03:54+00:00", ["evidence"]), out)
    assert fourth["merged_from"] == ["2026-12-01T23:14:06+00:00 or 2026-12-01T23:43:10+00:00"]
    assert kept_rows(fourth) == "; the rows of shipped, window from the run of 2026-12-01 23:14 or 2026-12-01 23:43"
