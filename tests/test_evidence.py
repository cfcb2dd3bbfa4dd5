"""The evidence path (streams/evidence.py, detectors/evidence.py): counts as events arrive, on a fake clock.

Event time is the clock: every test drives the partitions' watermarks itself.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import orjson
from prometheus_client import CollectorRegistry

from frictionwatch.contract import ClickEvent, ContactEvent
from frictionwatch.detectors.bank import Finding, SeriesPlace
from frictionwatch.detectors.budget import FalseAlarmBudget
from frictionwatch.detectors.evidence import EvidenceBank, PoissonCusum, evidence
from frictionwatch.journeymap import load_journey_map, parse_journey_map
from frictionwatch.streams.evidence import GUARD, EvidenceCounts, EvidenceMeter, EvidenceRecord, Hazard
from frictionwatch.streams.exposition import FrictionMetrics
from frictionwatch.streams.friction import Friction
from frictionwatch.streams.sessions import SessionTracker
from frictionwatch.streams.stage import ContactState, Output, StageSettings
from frictionwatch.streams.windows import Touchpoint, WindowedCounts

PAYMENT = Touchpoint("purchase", "payment", "web")
BILLING = Touchpoint(channel="phone", queue="billing")
BUDGET = FalseAlarmBudget.parse("1 per 180d")
EXAMPLE_MAP = Path(__file__).parent.parent / "frictionwatch" / "examples" / "journey-map.yml"


def budget(place: SeriesPlace, metric: str) -> FalseAlarmBudget:
    return BUDGET


def click(ts: float, session: str, step: str, kind: str = "step") -> ClickEvent:
    return ClickEvent(f"{session}-{ts}-{kind}", ts, session, "purchase", step, "web", kind)


def tracker_with_learned_payment() -> tuple[SessionTracker, EvidenceMeter, float]:
    """A partition whose payment step has been learned: 60 sessions moving on after 10 to 20 s."""
    meter = EvidenceMeter({})
    tracker = SessionTracker(load_journey_map(), WindowedCounts(10), cold_start=0, evidence=meter)
    rng = random.Random(3)
    ts = 0.0
    for index in range(60):
        ts += 15.0
        tracker.add(click(ts, f"s{index}", "payment"))
        tracker.add(click(ts + rng.uniform(10, 20), f"s{index}", "confirmation"))
    meter.tick(ts + 25.0, tracker.waiting())
    return tracker, meter, ts + 25.0


def test_evidence_grows_while_a_session_waits_and_stops_when_it_moves_on() -> None:
    tracker, meter, now = tracker_with_learned_payment()
    tracker.add(click(now + 1.0, "stuck", "payment"))
    expected = []
    for second in range(2, 40, 4):  # the watermark moves on with other sessions' clicks
        tracker.add(click(now + second, f"other{second}", "cart"))
        counts = meter.tick(now + second, tracker.waiting())
        observed, grown, _ = counts[PAYMENT]["step_progress"]
        assert observed == 0.0
        expected.append(grown)
    assert all(amount > 0 for amount in expected)
    assert sum(expected[3:]) > 1.0, expected  # past the usual 10-20 s, each second weighs: overdue
    tracker.add(click(now + 41.0, "stuck", "confirmation"))  # it moves on: one observed, no more waiting
    counts = meter.tick(now + 45.0, tracker.waiting())
    assert counts[PAYMENT]["step_progress"][0] == 1.0
    tracker.add(click(now + 46.0, "other46", "cart"))
    assert PAYMENT not in meter.tick(now + 50.0, tracker.waiting())


def test_a_tick_adds_to_each_place_what_walking_its_visitors_one_by_one_adds_to_the_last_bit() -> None:
    """The tick's fast path (a visitor who spent the tick in one dwell bucket) and its table of
    cumulative counts give what walking each visitor over the buckets gives, bit for bit."""
    meters = []
    for _ in range(2):
        meter = EvidenceMeter({})
        rng = random.Random(11)
        for visit in range(80):  # learned: payment visits moving on after 5 to 60 s
            start = visit * 40.0
            meter.spent(PAYMENT, "progress", start, start + rng.uniform(5, 60), 300.0, happened=True)
        meter.tick(3300.0, [])
        meters.append(meter)
    walked, ticked = meters
    rates = walked.judged[(PAYMENT, "progress")]
    for spent in (0.0, 0.5, 1.0, 7.25, 30.0, 59.9, 299.0, 5000.0):
        assert rates.cumulative(spent) == rates.expected(0.0, spent)
    visitors = [(PAYMENT, "progress", 3300.0 - rng.uniform(0, 200), 300.0, f"v{i}") for i in range(40)]
    for end in (3301.0, 3301.5, 3340.0, 3341.0):  # ticks of a second, of half of one, and one of 39 s
        rates = walked.judged[(PAYMENT, "progress")]
        exposure = list(walked.hazards[(PAYMENT, "progress")].exposure)
        expected = 0.0
        by_bucket = [0.0] * len(rates.bounds)
        for _, _, since, cap, _ in visitors:
            start, stop = max(since, walked.ticked_at) - since, min(end - since, cap)
            if stop > start:
                walked.hazards[(PAYMENT, "progress")].expose(start, stop)
                expected += rates.expected(start, stop, by_bucket)
        walked.ticked_at = end
        counts = ticked.tick(end, visitors)
        if ticked.frozen_at == end:  # the tick took new rates (and decayed what was learned)
            walked.freeze(end)
        assert counts[PAYMENT]["step_progress"][1] == expected
        assert ticked.hazards[(PAYMENT, "progress")].exposure == walked.hazards[(PAYMENT, "progress")].exposure
        assert walked.hazards[(PAYMENT, "progress")].exposure != exposure
        assert counts[PAYMENT]["step_progress"][2] == rates.strength(by_bucket)


def test_visits_under_way_across_a_hole_in_the_partitions_events_are_not_judged() -> None:
    """A collector holds five minutes of a partition's clicks back and sends them after newer ones.
    The visitors at the step when the hole began must not all look stalled for five minutes; a
    visitor who really stays, while the partition's other sessions go on clicking, must."""
    held, held_meter, now = tracker_with_learned_payment()
    stalled, stalled_meter, _ = tracker_with_learned_payment()
    for tracker in (held, stalled):
        tracker.add(click(now + 1.0, "visitor", "payment"))
    for second in range(10, 300, 10):  # the stalled partition's other sessions keep clicking
        stalled.add(click(now + second, f"other{second}", "cart"))
    stalled_counts = stalled_meter.tick(now + 300.0, stalled.waiting())
    held.add(click(now + 300.0, "after", "cart"))  # the first click after the hole: the held ones come later
    held_counts = held_meter.tick(now + 300.0, held.waiting())
    assert stalled_counts[PAYMENT]["step_progress"][1] > 2.0  # overdue for minutes: evidence
    assert "step_progress" not in held_counts.get(PAYMENT, {})  # under way across the hole: not judged
    held.add(click(now + 20.0, "visitor", "confirmation"))  # the held click, behind newer ones
    held.add(click(now + 301.0, "new", "payment"))  # a visit begun after the hole is judged as usual
    held.add(click(now + 330.0, "after", "search"))
    later = held_meter.tick(now + 330.0, held.waiting())
    assert later[PAYMENT]["step_progress"][0] == 0.0 and later[PAYMENT]["step_progress"][1] > 0.0


def test_a_session_that_leaves_a_step_counts_up_to_its_progress_timeout_at_once() -> None:
    tracker, meter, now = tracker_with_learned_payment()  # two partitions that learned the same
    other, other_meter, _ = tracker_with_learned_payment()
    purchase = tracker.journey_map.journeys["purchase"]
    timeout = tracker.progress_timeout(purchase, purchase.steps_by_name["payment"])
    tracker.add(click(now + 1.0, "leaves", "payment"))
    tracker.add(click(now + 3.0, "leaves", "payment", "exit"))
    left = meter.tick(now + 4.0, tracker.waiting())[PAYMENT]["step_progress"]
    other.add(click(now + 1.0, "waits", "payment"))
    waited = other_meter.tick(now + 1.0 + timeout + 10.0, other.waiting())[PAYMENT]["step_progress"]
    assert left[0] == waited[0] == 0.0
    assert math.isclose(left[1], waited[1], rel_tol=1e-9), (left, waited)  # as much as one that stalled


def test_callers_waiting_with_nobody_answered_are_evidence_before_anyone_hangs_up() -> None:
    state = ContactState(StageSettings(window_size=10))
    bank = EvidenceBank(budget)
    contact = 0

    def events(*items: tuple[float, str, str]) -> list[Finding]:
        out = Output()
        state.add(
            [ContactEvent(f"e{ts}-{kind}-{cid}", ts, cid, "phone", "billing", kind) for ts, cid, kind in items], out
        )
        if not out.evidence:
            return []
        record = EvidenceRecord("journey.contacts", 0, "phone", out.evidence_until, out.evidence, out.evidence_examples)
        return bank.add(record)

    ts = 0.0
    for _ in range(400):  # normal: a caller every 6 s, answered after about 20 s
        contact += 1
        ts += 6.0
        assert events((ts, f"c{contact}", "queued"), (ts + 20.0, f"c{contact}", "answered")) == []
    onset = ts + 30.0
    found: list[Finding] = []
    second = 0.0
    while not found and second < 600:  # nobody is answered any more, nobody hangs up yet
        second += 2.0
        contact += 1
        found = events((onset + second, f"c{contact}", "queued"))
    assert found, "no evidence after 10 minutes with nobody answered"
    assert found[0].metric == "queue_answers" and found[0].verdict.anomaly
    assert found[0].place == tuple(BILLING)
    assert second < 180, f"alarmed only after {second} s"  # within minutes, before any abandon came
    examples = bank.examples[BILLING]  # callers waiting longer than usual, for on-call
    assert examples and all(example.startswith("c") and int(example[1:]) > 400 for example in examples), examples


def test_partitions_merge_to_the_single_partition_answer() -> None:
    counts_a: EvidenceCounts = {PAYMENT: {"step_progress": [3.0, 9.5]}}
    counts_b: EvidenceCounts = {PAYMENT: {"step_progress": [1.0, 6.0], "step_errors": [2.0, 0.5]}}
    merged: EvidenceCounts = {PAYMENT: {"step_progress": [4.0, 15.5], "step_errors": [2.0, 0.5]}}
    split, single = EvidenceBank(budget), EvidenceBank(budget)
    for end in range(1, 640):  # judged after 600 s
        split.add(EvidenceRecord("clicks", 1, "purchase", float(end), counts_b))
        split.add(EvidenceRecord("clicks", 0, "purchase", float(end), counts_a))
        single.add(EvidenceRecord("clicks", 0, "purchase", float(end), merged))
    for key, series in single.series.items():
        assert math.isclose(split.series[key].cusum.statistic, series.cusum.statistic), key
        assert series.cusum.statistic > 0


def test_stage_one_counts_of_two_partitions_add_up_to_one_partitions() -> None:
    """With the learned hazard settled, splitting the sessions over two partitions splits their counts."""
    hazards: dict[tuple[Touchpoint, str], Hazard] = {}
    trainer = EvidenceMeter(hazards)
    for index in range(20000):  # learned from plenty: what a few more sessions teach moves it by little
        trainer.spent(PAYMENT, "progress", index * 3.0, index * 3.0 + 12.0, 300.0, happened=index % 5 > 0)
    trainer.tick(60000.0, [])
    one, first, second = EvidenceMeter(hazards), EvidenceMeter(hazards), EvidenceMeter(hazards)
    for meter in (one, first, second):
        meter.ticked_at = 60000.0
        meter.freeze(60000.0)  # each partition judges with what it took from the shared hazards
    visits = [(60000.0 + i * 2.0, 60000.0 + i * 2.0 + 5.0 + i % 7, i % 3 > 0) for i in range(50)]
    for index, (since, until, moved) in enumerate(visits):
        one.spent(PAYMENT, "progress", since, until, 300.0, moved)
        (first if index % 2 else second).spent(PAYMENT, "progress", since, until, 300.0, moved)
    a, b, both = first.counts[PAYMENT]["step_progress"], second.counts[PAYMENT]["step_progress"], one.counts[PAYMENT]
    assert a[0] + b[0] == both["step_progress"][0]
    assert math.isclose(a[1] + b[1], both["step_progress"][1], rel_tol=1e-9)


def test_a_restored_bank_continues_identically_and_a_replayed_record_counts_once() -> None:
    rng = random.Random(5)
    records = [
        EvidenceRecord("clicks", rng.randrange(2), "purchase", 10.0 * i, {PAYMENT: {"step_progress": [o, 3.0]}})
        for i, o in enumerate(rng.choice([0.0, 0.0, 1.0, 3.0]) for _ in range(400))
    ]
    original = EvidenceBank(budget)
    for record in records[:200]:
        original.add(record)
    restored = EvidenceBank(budget)
    restored.restore(orjson.loads(orjson.dumps(original.state("purchase"))))
    for record in records[150:]:  # a replay from before the checkpoint: its first 50 were applied
        theirs, ours = original.add(record) if record.end > 1990 else [], restored.add(record)
        assert theirs == ours
    key = (tuple(PAYMENT), "step_progress")
    assert original.series[key].cusums == restored.series[key].cusums  # type: ignore[index]


def test_a_restored_bank_keeps_every_cusum_and_how_sure_its_rates_were() -> None:
    records = [
        EvidenceRecord("clicks", 0, "purchase", float(i), {PAYMENT: {"step_errors": [float(i % 20 == 19), 0.05, 6.0]}})
        for i in range(400)
    ]
    original, restored = EvidenceBank(budget), EvidenceBank(budget)
    for record in records[:300]:
        original.add(record)
    restored.restore(orjson.loads(orjson.dumps(original.state("purchase"))))
    key = (tuple(PAYMENT), "step_errors")
    before = original.series[key]  # type: ignore[index]
    assert len(before.cusums) == 2 and before.strength == 6.0 and before.cusums[1].statistic > 0
    for record in records[300:]:
        assert original.add(record) == restored.add(record)
    after = restored.series[key]  # type: ignore[index]
    assert after.cusums == original.series[key].cusums and after.strength == 6.0  # type: ignore[index]


def test_the_cusum_adds_log_likelihood_ratios_and_restarts_at_zero() -> None:
    cusum = PoissonCusum(ratio=3.0)
    cusum.add(4.0, 1.0, ts=5.0)
    assert math.isclose(cusum.statistic, 4 * math.log(3.0) - 2.0) and cusum.since == 5.0
    cusum.add(0.0, 10.0, ts=6.0)
    assert cusum.statistic == 0.0 and cusum.since is None and cusum.observed == 0.0


def test_evidence_with_rates_learned_from_few_outcomes_is_weaker_and_tends_to_poisson() -> None:
    exact = evidence(8.0, 1.0, ratio=3.0)
    assert math.isclose(exact, 8 * math.log(3.0) - 2.0)
    assert math.isclose(evidence(8.0, 1.0, ratio=3.0, strength=1e9), exact, rel_tol=1e-6)
    few, many = evidence(8.0, 1.0, ratio=3.0, strength=2.0), evidence(8.0, 1.0, ratio=3.0, strength=200.0)
    assert 0 < few < many < exact
    cusum = PoissonCusum(ratio=3.0)  # a CUSUM's steps with uncertain rates add up to the run's evidence
    for _ in range(4):
        cusum.add(2.0, 0.25, ts=1.0, strength=5.0)
    assert math.isclose(cusum.statistic, evidence(8.0, 1.0, ratio=3.0, strength=5.0))


def _burst(bank: EvidenceBank, strength: float, errors_per_minute: float) -> int | None:
    """Seconds until the step's errors alarm: 0.1 expected a minute, ``errors_per_minute`` seen (one
    at a time, evenly), the rates learned from ``strength`` errors; None: no alarm in 10 minutes."""
    every = 60.0 / errors_per_minute
    for second in range(1200):
        burst = second >= 600
        error = 1.0 if burst and (second - 600) % every < 1.0 else 0.0
        counts: EvidenceCounts = {PAYMENT: {"step_errors": [error, 0.1 / 60.0, strength]}}
        found = bank.add(EvidenceRecord("c", 0, "purchase", float(second), counts))
        if any(f.verdict.anomaly for f in found):
            assert burst
            return second - 600
    return None


def test_a_burst_at_a_quiet_step_is_caught_by_the_cusum_for_large_changes() -> None:
    """Errors at 20 times the usual rate at a quiet step (0.1 expected a minute, 2 seen): the CUSUM
    for ten times the usual leads; the one for tripled errors alone would take longer."""
    bank = EvidenceBank(budget)
    caught = _burst(bank, math.inf, 2.0)
    assert caught is not None and caught <= 240, caught  # tripled errors alone: 300 s
    series = bank.series[(tuple(PAYMENT), "step_errors")]  # type: ignore[index]
    assert [c.ratio for c in series.cusums] == [3.0, 10.0] and series.leading == 1
    assert series.cusums[0].statistic < series.cusums[1].statistic


def test_the_same_burst_pages_later_or_not_at_all_when_the_rates_were_learned_from_few_errors() -> None:
    sure, unsure = _burst(EvidenceBank(budget), 500.0, 2.0), _burst(EvidenceBank(budget), 2.0, 2.0)
    assert sure is not None and (unsure is None or unsure > sure), (sure, unsure)
    assert _burst(EvidenceBank(budget), 2.0, 6.0) is not None  # a clear burst still pages


def test_normal_traffic_spends_little_of_the_budget() -> None:
    """A day of Poisson counts at the learned rate: no alarm at 1 per 180 days."""
    rng = random.Random(11)
    bank = EvidenceBank(budget)
    alarms = 0
    for second in range(86400):
        expected = 0.5
        observed = float(_poisson(rng, expected))
        counts: EvidenceCounts = {PAYMENT: {"step_progress": [observed, expected], "step_errors": [observed, expected]}}
        alarms += sum(f.verdict.anomaly for f in bank.add(EvidenceRecord("c", 0, "purchase", float(second), counts)))
    assert alarms == 0


def _poisson(rng: random.Random, mean: float) -> int:
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def test_an_alarm_ends_soon_after_the_rate_is_back_to_normal() -> None:
    rng = random.Random(2)
    bank = EvidenceBank(budget)
    found: list[tuple[int, Finding]] = []

    def second(at: int, rate: float) -> None:
        counts: EvidenceCounts = {PAYMENT: {"step_progress": [float(_poisson(rng, rate)), 1.0]}}
        found.extend((at, f) for f in bank.add(EvidenceRecord("c", 0, "purchase", float(at), counts)))

    for at in range(1200):  # normal: one visitor a second moves on, as expected
        second(at, 1.0)
    assert found == []
    for at in range(1200, 1500):  # nobody moves on for 5 minutes
        second(at, 0.0)
    for at in range(1500, 2000):
        second(at, 1.0)
    alarms = [at for at, f in found if f.verdict.anomaly]
    normal = [at for at, f in found if not f.verdict.anomaly]
    assert alarms and 1200 < alarms[0] < 1260, found
    assert len(normal) == 1 and 1500 < normal[0] < 1560, found  # within a minute of the recovery


def _errors_at_one_an_hour(bank: EvidenceBank, rate_after: float, hours_after: float = 4.0) -> list[tuple[int, bool]]:
    """A step with one error an hour expected: 10 minutes of errors at 20 a minute, then ``rate_after``
    times the usual rate (one error every ``3600 / rate_after`` s, evenly); (second, alarming) per finding."""
    found: list[tuple[int, bool]] = []
    burst_end = 3600 + 600
    every_after = 3600.0 / rate_after if rate_after > 0 else math.inf
    for second in range(burst_end + int(hours_after * 3600)):
        if 3600 <= second < burst_end:
            error = 1.0 if second % 3 == 0 else 0.0
        else:
            error = 1.0 if second > burst_end and (second - burst_end) % every_after < 1.0 else 0.0
        counts: EvidenceCounts = {PAYMENT: {"step_errors": [error, 1.0 / 3600.0]}}
        found.extend((second, f.verdict.anomaly) for f in bank.add(EvidenceRecord("c", 0, "purchase", second, counts)))
    return found


def test_an_error_burst_at_a_quiet_step_ends_within_an_hour_of_the_burst() -> None:
    """The alarm saw errors at 10 times the usual rate and more: it ends on the evidence against that
    change. Judged against tripled errors (the smallest change), it took over two hours of no errors."""
    found = _errors_at_one_an_hour(EvidenceBank(budget), rate_after=0.0)
    assert found[0][1] and 3600 < found[0][0] < 3600 + 300, found
    ends = [at for at, alarming in found if not alarming]
    assert len(ends) == 1 and ends[0] - 4200 < 3600, found
    series = EvidenceBank(budget)
    _errors_at_one_an_hour(series, rate_after=0.0, hours_after=0.05)
    assert series.series[(tuple(PAYMENT), "step_errors")].change == 10.0  # type: ignore[index]


def test_errors_still_tripled_after_the_burst_keep_the_alarm_open() -> None:
    """Back to tripled errors after a burst of twenty times: the evidence against tenfold comes, but
    the counts since are likelier tripled than usual, so the alarm stays open."""
    found = _errors_at_one_an_hour(EvidenceBank(budget), rate_after=3.0, hours_after=12.0)
    assert [alarming for _, alarming in found] == [True, True], found
    bank = EvidenceBank(budget)
    _errors_at_one_an_hour(bank, rate_after=3.0, hours_after=2.0)
    series = bank.series[(tuple(PAYMENT), "step_errors")]  # type: ignore[index]
    assert series.severity != "none" and series.recovery > math.log(100.0)  # enough against tenfold alone


def test_an_alarm_restored_from_a_checkpoint_keeps_what_its_end_is_judged_on() -> None:
    bank = EvidenceBank(budget)
    _errors_at_one_an_hour(bank, rate_after=0.0, hours_after=0.25)
    restored = EvidenceBank(budget)
    restored.restore(bank.state("purchase"))
    key = (tuple(PAYMENT), "step_errors")
    before, after = bank.series[key], restored.series[key]  # type: ignore[index]
    assert after.severity != "none" and (after.change, after.recovery, after.recovery_counts) == (
        before.change, before.recovery, before.recovery_counts
    )  # fmt: skip


def test_an_override_switches_one_evidence_series_off(tmp_path: Path) -> None:
    text = EXAMPLE_MAP.read_text() + (
        "\n    - match: {journey: purchase, step: payment, metric: step_progress}\n      enabled: false\n"
    )
    path = tmp_path / "map.yml"
    path.write_text(text)
    journey_map = load_journey_map(path)
    friction = Friction(
        journey_map, FrictionMetrics(CollectorRegistry(), journey_map), {"clicks": "clicks"}, {"clicks": 1},
        windows_topic="windows", touches_topic="touches",
    )  # fmt: skip
    payment = ("purchase", "payment", "web", "", "")
    assert friction.evidence.budget_of(payment, "step_progress") is None
    assert friction.evidence.budget_of(payment, "step_errors") is not None
    assert friction.evidence.budget_of(("purchase", "cart", "web", "", ""), "step_progress") is not None


def test_a_backlog_is_worked_through_with_few_ticks_when_a_clock_is_given() -> None:
    wall = [0.0]
    meter = EvidenceMeter({}, clock=lambda: wall[0])
    assert meter.due(100.0)
    meter.tick(100.0, [])
    assert not meter.due(100.5)  # less than a second of event time
    assert not meter.due(160.0)  # a minute of event time, but no wall time: a backlog
    wall[0] += 0.3
    assert meter.due(160.0)
    assert EvidenceMeter({}).due(100.0)  # without a clock, event time alone decides


def visited(meter: EvidenceMeter, place: Touchpoint) -> None:
    """A visit of ``place`` that begins and ends at once."""
    meter.visit(place)
    meter.visit_over(place)


def test_a_partition_far_ahead_does_not_leave_the_others_judging_with_what_it_saw_early() -> None:
    """Through a backlog on Kafka one partition can run many minutes ahead of the others. The rates
    the others judge with must follow what all of them learn (errors per visit here), not what
    the hazards knew when the partition ahead passed that minute of event time."""
    hazards: dict[tuple[Touchpoint, str], Hazard] = {}
    ahead, behind = EvidenceMeter(hazards), EvidenceMeter(hazards)
    for second in range(0, 1500, 10):  # 25 minutes ahead, through 60 visits that happened to bring no error
        if second < 600:
            visited(ahead, PAYMENT)
        if ahead.due(float(second)):
            ahead.tick(float(second), [])
    observed = expected = 0.0
    for second in range(0, 1300):  # the other goes on: a visit a second, one in ten errs
        visited(behind, PAYMENT)
        if second % 10 == 0:
            behind.error(PAYMENT)
        if behind.due(float(second)):
            counts = behind.tick(float(second), [])
            if second > 300 + GUARD and PAYMENT in counts:  # judged with what was learned GUARD s before
                observed += counts[PAYMENT]["step_errors"][0]
                expected += counts[PAYMENT]["step_errors"][1]
    assert observed == 69
    assert 0.8 < observed / expected < 1.25, (observed, expected)


def test_errors_per_visit_are_learned_from_visits_that_are_over() -> None:
    """An error comes during its visit, up to minutes after the visit began (a chat). Learned
    from the visits that began, errors per visit came out far too low in the first minutes of
    traffic (at a chat, through the first half hour), and the step's usual errors looked like a
    burst; learned from the visits whose flow outcome is known, they are not too low."""
    meter = EvidenceMeter({})
    tracker = SessionTracker(load_journey_map(), WindowedCounts(10), cold_start=0, evidence=meter)
    rng = random.Random(4)
    events = []
    for index in range(400):  # a visit begins every second, lasts 1 to 3 minutes; one in ten errs during it
        ts, dwell = float(index), rng.uniform(60.0, 170.0)
        events += [click(ts, f"s{index}", "payment"), click(ts + dwell, f"s{index}", "confirmation")]
        if index % 10 == 0:
            events.append(click(ts + rng.uniform(0.0, dwell), f"s{index}", "payment", "error"))
    for event in sorted(events, key=lambda event: event.ts):
        if event.ts > 400.0:
            break
        tracker.add(event)
    learned = meter.hazards[(PAYMENT, "error")].learned()
    assert learned is not None
    assert learned.rates[0] >= 0.095, learned.rates  # learned when the visits are over: not too low


def test_an_expected_count_is_as_sure_as_the_buckets_it_comes_from() -> None:
    """Callers are answered within a minute, nearly always: the hazard of the first buckets is
    learned from hundreds of answers, that of long waits from a few. Callers still waiting after
    ten minutes make an expected count that is far less sure."""
    hazard = Hazard("answer")
    for index in range(400):
        hazard.expose(0.0, 30.0)
        hazard.happened(25.0)
        if index % 100 == 0:  # now and then a caller waits 15 minutes
            hazard.expose(30.0, 900.0)
            hazard.happened(890.0)
    rates = hazard.learned()
    assert rates is not None
    early, late = [0.0] * len(hazard.bounds), [0.0] * len(hazard.bounds)
    rates.expected(20.0, 30.0, early)  # the bucket most are answered in
    rates.expected(600.0, 620.0, late)
    assert sum(early) > 0 and sum(late) > 0
    assert rates.strength(early) > 100 > 10 > rates.strength(late), (rates.strength(early), rates.strength(late))
    both = [a + b for a, b in zip(early, late, strict=True)]
    assert rates.strength(late) < rates.strength(both) < rates.strength(early)


def test_a_step_whose_first_visits_brought_no_error_does_not_know_its_errors_to_two_errors_worth() -> None:
    """The prior that shrinks each bucket towards the overall rate is no surer than that rate."""
    hazard = Hazard("error", (0.0,))
    for _ in range(600):
        hazard.expose(0.0, 1.0)
    none_seen = hazard.learned()
    for _ in range(3):
        hazard.happened(0.0)
    three_seen = hazard.learned()
    assert none_seen is not None and three_seen is not None
    assert none_seen.strengths == [0.5]  # Jeffreys: half an event
    assert three_seen.strengths == [5.0]  # 3 errors, and the prior's two


def test_a_burst_is_judged_against_the_rates_learned_before_it_and_a_lasting_shift_is_learned() -> None:
    """Errors per visit jump from 1 in 50 to 1 in 2 at a step of a visit every 10 s: while the burst
    is judged, its expected errors stay those of before it (a young hazard would otherwise take
    them as its usual rate within a minute); once it has lasted GUARD seconds, it is learned."""
    meter = EvidenceMeter({})
    expected_by_minute: dict[int, float] = {}
    for second in range(0, 3600 + 1200, 10):
        visited(meter, PAYMENT)
        if second % (500 if second < 3600 else 20) == 0:
            meter.error(PAYMENT)
        if meter.due(float(second)):
            counts = meter.tick(float(second), [])
            if PAYMENT in counts:
                minute = second // 60
                expected_by_minute[minute] = expected_by_minute.get(minute, 0.0) + counts[PAYMENT]["step_errors"][1]
    before = expected_by_minute[59]
    assert 0.05 < before < 0.3, before  # 6 visits a minute, 1 in 50 errs
    burst = [expected_by_minute[minute] for minute in range(60, 60 + int(GUARD // 60))]
    assert max(burst) < 1.5 * before, (before, burst)  # the burst's errors are evidence, not learned
    assert expected_by_minute[79] > 5 * before, (before, expected_by_minute[79])  # 15 minutes on: the new normal


def test_check_config_counts_the_evidence_series_and_says_how_soon_they_catch() -> None:
    from frictionwatch.detectors.explain import explain

    def evidence_lines(text: str) -> list[str]:
        lines = explain(parse_journey_map(text), 60.0)
        return lines[next(i for i, line in enumerate(lines) if line.startswith("evidence path:")) :]

    shipped = evidence_lines(EXAMPLE_MAP.read_text())
    count = int(shipped[0].split()[2])
    assert count > 50, shipped[0]
    seconds = [float(line.split()[3].replace(",", "")) for line in shipped if "a minute" in line][:3]
    assert seconds[0] > seconds[1] > seconds[2] > 0, shipped  # more volume, sooner
    off = "\n    - match: {journey: purchase, step: payment, metric: step_progress}\n      enabled: false\n"
    fewer = evidence_lines(EXAMPLE_MAP.read_text() + off)
    assert int(fewer[0].split()[2]) == count - 3, fewer[0]  # web, app and all (the kiosk is off in the map)


def test_a_session_moving_on_from_one_channel_to_another_counts_where_it_waited() -> None:
    tracker, meter, now = tracker_with_learned_payment()
    tracker.add(click(now + 1.0, "switcher", "payment"))  # on web
    waited = meter.tick(now + 5.0, tracker.waiting())[PAYMENT]["step_progress"]
    assert waited[0] == 0.0 and waited[1] > 0.0
    app_confirmation = ClickEvent("switch", now + 8.0, "switcher", "purchase", "confirmation", "app", "step")
    tracker.add(app_confirmation)
    counts = meter.tick(now + 9.0, tracker.waiting())
    assert counts[PAYMENT]["step_progress"][0] == 1.0  # moved on from where it waited: web
    assert Touchpoint("purchase", "payment", "app") not in counts
