"""Event time that survives producers with skewed clocks (streams/eventtime.py, issue 15).

Generated traffic is replayed through the backtest's replayer, which runs the worker's
stage 1, event-time correction included, and its detectors. Each case changes the
clocks of some devices and compares the windows with a replay of the same traffic at true
times: the windows must be the same (or the difference counted), and no friction alert
may come of it.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import pytest

from frictionwatch.backtest.replay import Replayer, ReplayResult, replay_events
from frictionwatch.contract import ClickEvent, EventValidator, InvalidEvent, Reason
from frictionwatch.generator import GeneratorConfig, JsonLinesSink, generate, run
from frictionwatch.generator.clocks import parse_clock_skew
from frictionwatch.generator.records import GeneratedRecord
from frictionwatch.journeymap import load_journey_map
from frictionwatch.partitioning import partition_for
from frictionwatch.streams.eventtime import EventClock, arrival_of
from frictionwatch.streams.ingest import RecordDecoder
from frictionwatch.streams.sessions import SessionTracker
from frictionwatch.streams.windows import Touchpoint, WindowedCounts

START = 1_793_577_600.0 + 10 * 3600  # a weekday, 10:00 UTC
MINUTE = 60.0
SKEW_FROM, SKEW_UNTIL = START + 60 * MINUTE, START + 70 * MINUTE  # after the detectors' warm-up

Change = Callable[[GeneratedRecord, dict[str, Any]], dict[str, Any] | None]  # None: leave the event out


@cache
def traffic() -> tuple[GeneratedRecord, ...]:
    config = GeneratorConfig(seed=15, rate=20.0, duration=100 * MINUTE, start=START, daily_pattern=False)
    return tuple(generate(load_journey_map(), config))


def replay(change: Change | None = None, *, arrivals: bool = True) -> tuple[ReplayResult, int]:
    """Replay the traffic with ``change`` applied to each event; (result, events given)."""
    journey_map = load_journey_map()
    replayer = Replayer(journey_map)
    delivered, given = 0.0, 0
    for record in traffic():
        delivered = max(delivered, record.ts)  # arrival: the latest true time delivered so far
        value = record.value
        if change is not None and record.malformed is None:
            value = change(record, dict(value))
            if value is None:
                continue
        given += 1
        replayer.add(record.kind, value, now=delivered if arrivals else None)
    result = replayer.finish()
    result.detect(journey_map)
    return result, given


def alerts(result: ReplayResult) -> set[tuple[Any, ...]]:
    """The (series, window) of every anomaly verdict: what would page someone."""
    return {(key, index) for key, trace in result.series.items() for index, v in enumerate(trace.verdicts) if v.anomaly}


@cache
def truth() -> ReplayResult:
    return replay()[0]


def check(result: ReplayResult, given: int, expected: ReplayResult | None = None) -> None:
    """Windows equal ``expected``'s (the true-time replay by default), no new alert, and every
    event given is counted: processed (events) or rejected (malformed)."""
    expected = expected or truth()
    assert sum(result.events.values()) + result.malformed_total == given
    assert result.observed == expected.observed
    assert result.late == expected.late
    assert alerts(result) == alerts(expected)


def in_skew(record: GeneratedRecord) -> bool:
    return SKEW_FROM <= record.ts < SKEW_UNTIL


def test_the_true_traffic_raises_no_friction_alert() -> None:
    result = truth()
    assert sum(result.events.values()) > 100_000 and len(result.observed) > 300
    assert alerts(result) == set()


def test_a_single_outlier_event_does_not_move_time_for_everyone() -> None:
    outlier = next(r for r in traffic() if r.kind == "clicks" and r.ts >= SKEW_FROM and r.value["type"] == "click")

    def ahead(record: GeneratedRecord, value: dict[str, Any]) -> dict[str, Any]:
        if record is outlier:
            value["ts"] += 290.0  # inside max_future_skew (300 s): a valid event
        return value

    result, given = replay(ahead)
    check(result, given)
    assert result.clock_corrected == 1
    # Without arrival times there is nothing to tell the outlier by: it moves the watermark
    # 290 s and other sessions' amounts come too late for their windows (what issue 15 measured).
    blind, _ = replay(ahead, arrivals=False)
    assert blind.late > truth().late + 100
    assert blind.observed != truth().observed


def test_one_channels_devices_90_s_ahead_for_10_minutes() -> None:
    def ahead(record: GeneratedRecord, value: dict[str, Any]) -> dict[str, Any]:
        if record.kind == "clicks" and value["channel"] == "app" and in_skew(record):
            value["ts"] += 90.0
        return value

    result, given = replay(ahead)
    check(result, given)
    assert result.clock_corrected > 1000


def test_a_device_an_hour_behind_counts_as_late_and_nowhere_else() -> None:
    # A clock behind, without sent_ts, can't be told from a late delivery: its events keep their
    # ts, too old for any open window. The difference to the true times is the late count.
    sessions = {r.key for r in traffic() if r.kind == "clicks" and in_skew(r) and r.key is not None}
    device = sorted(sessions)[len(sessions) // 2]
    events = sum(1 for r in traffic() if r.key == device and r.malformed is None)

    def behind(record: GeneratedRecord, value: dict[str, Any]) -> dict[str, Any]:
        if record.key == device:
            value["ts"] -= 3600.0
        return value

    def absent(record: GeneratedRecord, value: dict[str, Any]) -> dict[str, Any] | None:
        return None if record.key == device else value

    result, given = replay(behind)
    without, _ = replay(absent)
    assert events >= 2
    assert sum(result.events.values()) + result.malformed_total == given
    assert result.observed == without.observed  # the windows hold everyone else's amounts, at their times
    assert result.late - without.late >= events  # each of the device's events left at least one late amount
    assert alerts(result) == alerts(without) == set()
    assert result.clock_corrected == 0


def test_devices_whose_sent_ts_says_their_clock_is_10_minutes_fast() -> None:
    def fast(record: GeneratedRecord, value: dict[str, Any]) -> dict[str, Any]:
        if record.kind == "clicks" and in_skew(record) and zlib.crc32(str(record.key).encode()) % 4 == 0:
            value["ts"] += 600.0  # beyond max_future_skew: only sent_ts makes it valid
            value["sent_ts"] = record.ts + 600.0
        return value

    result, given = replay(fast)
    check(result, given)
    assert result.clock_corrected > 200


def test_a_batch_record_is_corrected_by_its_sent_ts_against_its_arrival() -> None:
    # The worker's path: one Kafka record, an array of a session's events, sent by a device
    # whose clock is 10 minutes fast; the record arrived (its Kafka timestamp) at 10:05:00.
    journey_map = load_journey_map()
    decoder = RecordDecoder("clicks", EventValidator(journey_map), partitions=4, clock=EventClock(5.0))
    arrival, fast = START + 300.0, 600.0
    steps = [("cart", START + 290.0), ("checkout", START + 296.0), ("payment", START + 299.5)]
    batch = [
        {"schema": 1, "event_id": f"b{i}", "ts": ts + fast, "sent_ts": arrival + fast, "session_id": "s-b",
         "journey": "purchase", "step": step, "channel": "app", "type": "step"}
        for i, (step, ts) in enumerate(steps)
    ]  # fmt: skip
    partition = partition_for(b"s-b", 4)
    record = decoder.decode(orjson.dumps(batch), partition, now=arrival + 0.5, timestamp=arrival)
    assert record.items == len(record.events) + len(record.rejected) + len(record.strays) == 3
    assert [event.ts for event in record.events] == [ts for _, ts in steps]  # the true times
    assert [event.device_ts for event in record.events] == [ts + fast for _, ts in steps]  # the original ts kept
    assert {(r.channel, r.offset, r.exact, r.corrected) for r in record.clock_readings} == {("app", fast, True, True)}
    # Read by a worker whose clock is 10 minutes behind the device, without sent_ts it would be ts_in_future.
    bare = [{key: value for key, value in event.items() if key != "sent_ts"} for event in batch]
    refused = decoder.decode(orjson.dumps(bare), partition, now=arrival, timestamp=arrival)
    assert {rejection.reason for rejection in refused.rejected} == {Reason.TS_IN_FUTURE}


@pytest.mark.parametrize(
    ("ts", "sent_ts", "arrival", "expected"),
    [
        (1000.0, None, 1001.0, (1000.0, None)),  # ordinary: ts before its arrival
        (1004.0, None, 1000.0, (1004.0, None)),  # ahead within the tolerance: clocks a little apart
        (1290.0, None, 1000.0, (1000.0, 290.0)),  # ahead: it can't have happened after it arrived
        (400.0, None, 4000.0, (400.0, None)),  # behind, or delivered late: can't tell without sent_ts
        (1590.0, 1600.0, 1000.0, (990.0, 600.0)),  # sent_ts: 10 min fast
        (1390.0, 1400.0, 5000.0, (4990.0, -3600.0)),  # sent_ts: an hour behind
        (990.0, 1002.0, 1000.0, (990.0, 2.0)),  # sent_ts within the tolerance: ts stands
        (1290.0, None, None, (1290.0, None)),  # no arrival known: nothing to correct against
    ],
)
def test_event_time(
    ts: float, sent_ts: float | None, arrival: float | None, expected: tuple[float, float | None]
) -> None:
    assert EventClock(5.0).event_time(ts, sent_ts, arrival) == expected


def test_no_event_time_is_more_than_the_tolerance_past_its_arrival() -> None:
    clock = EventClock(5.0)
    for ts, sent_ts in [(2000.0, None), (2000.0, 2000.5), (1999.0, 1000.0), (5000.0, 4000.0), (10.0, 10.0)]:
        assert clock.event_time(ts, sent_ts, 1000.0)[0] <= 1005.0


def test_the_arrival_is_the_record_timestamp_but_never_after_the_workers_clock() -> None:
    assert arrival_of(1000.0, 1001.0) == 1000.0
    assert arrival_of(1500.0, 1001.0) == 1001.0  # a producer whose own clock stamped the record
    assert arrival_of(-1.0, 1001.0) == 1001.0  # Kafka's "no timestamp"
    assert arrival_of(None, None) is None


@pytest.mark.parametrize(
    ("change", "reason", "detail"),
    [
        ({"sent_ts": "soon"}, Reason.INVALID_VALUE, "not an RFC 3339 time"),
        ({"sent_ts": True}, Reason.WRONG_TYPE, "boolean"),
        ({"sent_ts": START - 60}, Reason.INVALID_VALUE, "60 s before ts"),
        ({"sent_ts": START + 8 * 86400}, Reason.TS_TOO_OLD, "8.0 days old"),
    ],
)
def test_bad_sent_ts_is_dead_lettered_naming_the_field(change: dict[str, Any], reason: Reason, detail: str) -> None:
    validator = EventValidator(load_journey_map())
    event = {"schema": 1, "event_id": "e1", "ts": START, "session_id": "s1", "journey": "purchase",
             "step": "cart", "channel": "web", "type": "step", **change}  # fmt: skip
    with pytest.raises(InvalidEvent) as raised:
        validator.click(event, now=START + 1)
    assert raised.value.reason == reason and detail in raised.value.detail
    assert raised.value.field == ("ts" if reason == Reason.TS_TOO_OLD else "sent_ts")


def test_sent_ts_as_rfc3339_is_read_like_ts() -> None:
    validator = EventValidator(load_journey_map())
    event = {"schema": 1, "event_id": "e1", "ts": "2026-11-24T10:00:00Z", "sent_ts": "2026-11-24T10:00:02.5Z",
             "session_id": "s1", "journey": "purchase", "step": "cart", "channel": "web", "type": "step"}  # fmt: skip
    click = validator.click(event)
    assert (click.ts, click.sent_ts, click.device_ts) == (1795514400.0, 1795514402.5, None)


def test_examples_of_a_session_whose_times_were_corrected_keep_the_device_ts() -> None:
    tracker = SessionTracker(load_journey_map(), WindowedCounts(60), cold_start=0)
    corrected = ClickEvent("e1", START, "s-9", "purchase", "cart", "app", "error", device_ts=START + 600)
    tracker.add(corrected)
    tracker.add(ClickEvent("e2", START + 1, "s-8", "purchase", "cart", "web", "error"))
    (window,) = tracker.windows.open.values()
    assert window.examples[Touchpoint("purchase", "cart", "app")] == [
        "s-9 (device ts 2026-11-02T10:10:00Z, clock +600 s)"
    ]
    assert window.examples[Touchpoint("purchase", "cart", "web")] == ["s-8"]


def test_generated_skewed_producers_replay_to_the_windows_of_true_times(tmp_path: Path) -> None:
    # frictionwatch generate --clock-skew ... writes each record's delivery time as its timestamp;
    # the backtest corrects against it as the worker does against the Kafka record timestamp.
    journey_map = load_journey_map()
    config = GeneratorConfig(seed=3, rate=20.0, duration=40 * MINUTE, start=START, daily_pattern=False)
    skews = (
        parse_clock_skew("share=0.5,offset=90s,channel=app,from=20m,until=30m"),
        parse_clock_skew("share=0.3,offset=10m,channel=web,from=20m,until=30m,sent_ts"),
        parse_clock_skew("share=0.3,offset=-1h,channel=web,from=20m,until=30m,sent_ts"),
    )
    plain, skewed = tmp_path / "plain.jsonl", tmp_path / "skewed.jsonl"
    run(journey_map, config, JsonLinesSink(plain))
    summary = run(journey_map, replace(config, clock_skews=skews), JsonLinesSink(skewed))
    lines = [orjson.loads(line) for line in skewed.read_bytes().splitlines()]

    def is_moved(line: dict[str, Any]) -> bool:
        value = line.get("value")
        if not isinstance(value, dict):
            return False
        return "sent_ts" in value or (value.get("channel") == "app" and value["ts"] > line["timestamp"] + 60)

    moved = [line for line in lines if is_moved(line)]
    assert len(moved) > 1000 and all("timestamp" in line for line in lines)
    expected, result = replay_events(plain, journey_map), replay_events(skewed, journey_map)
    assert sum(result.events.values()) + result.malformed_total == sum(summary.events.values())
    assert result.clock_corrected == len(moved)
    assert result.observed == expected.observed and result.late == expected.late
    assert alerts(result) == alerts(expected)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("share=0.2", "offset= is missing"),
        ("share=0.2,offset=soon", "expected a duration"),
        ("share=0,offset=90s", "share must be > 0"),
        ("share=0.2,offset=90s,from=20m,until=10m", "must come before until"),
        ("share=0.2,offset=90s,device=ios", "expected name=value"),
    ],
)
def test_bad_clock_skew_specs_say_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_clock_skew(spec)


def test_a_line_without_timestamp_arrives_with_the_line_before_it(tmp_path: Path) -> None:
    # Someone adds one event by hand, without a timestamp, 290 s ahead of its neighbours.
    journey_map = load_journey_map()
    config = GeneratorConfig(seed=5, rate=20.0, duration=20 * MINUTE, start=START, daily_pattern=False)
    plain, edited = tmp_path / "plain.jsonl", tmp_path / "edited.jsonl"
    run(journey_map, config, JsonLinesSink(plain))
    lines = plain.read_bytes().splitlines(keepends=True)
    middle = len(lines) // 2
    neighbour = orjson.loads(lines[middle])
    added = {"topic": "clicks", "key": "s-added", "value": step_at("s-added", neighbour["timestamp"] + 290)}
    edited.write_bytes(b"".join([*lines[:middle], orjson.dumps(added) + b"\n", *lines[middle:]]))
    expected, result = replay_events(plain, journey_map), replay_events(edited, journey_map)
    assert result.clock_corrected == 1 and result.events["clicks"] == expected.events["clicks"] + 1
    assert result.late == expected.late  # nobody else's amounts came too late
    # A file with no timestamps at all replays the times its events give, as before issue 15.
    bare = tmp_path / "bare.jsonl"
    bare.write_bytes(b"".join(orjson.dumps({k: v for k, v in orjson.loads(line).items() if k != "timestamp"}) + b"\n"
                              for line in edited.read_bytes().splitlines()))  # fmt: skip
    blind = replay_events(bare, journey_map)
    assert blind.clock_corrected == 0 and blind.late > expected.late


def step_at(session: str, ts: float) -> dict[str, Any]:
    return {"schema": 1, "event_id": f"{session}-{ts}", "ts": ts, "session_id": session, "journey": "purchase",
            "step": "landing", "channel": "web", "type": "step"}  # fmt: skip
