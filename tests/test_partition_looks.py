"""The worker's look at each partition every 30 s (streams/recovery.py): when to read records
again that the consumer fetched but never handed over, and when to acknowledge records in
Faust's book because the group's commits stopped. Pure decisions; the outage and scale-out
runs on Apache Kafka exercise them end to end."""

from __future__ import annotations

from frictionwatch.streams.recovery import Continuity, PartitionLook, commit_range, read_again_from


def look(committed: int | None, handled: tuple[int, int] | None, position: int | None) -> PartitionLook:
    return PartitionLook(committed, handled, position)


def test_records_dropped_at_the_end_of_a_partition_are_read_again() -> None:
    # after a rebalance Faust dropped 2,210-2,399 of a pre-filled topic; no later record shows the gap
    continuity = Continuity()
    for offset in range(2_000, 2_210):
        continuity.check("journey.contacts", 0, offset)
    now = look(2_100, continuity.handled("journey.contacts", 0), 2_400)
    assert read_again_from(None, now) is None  # a first look: it may just be on its way
    assert read_again_from(now, now) == 2_210


def test_a_partition_never_handed_over_is_read_from_the_groups_offset_or_the_beginning() -> None:
    assert read_again_from(look(1_500, None, 1_800), look(1_500, None, 1_800)) == 1_500
    assert read_again_from(look(None, None, 300), look(None, None, 300)) == 0
    assert read_again_from(look(None, None, 0), look(None, None, 0)) is None  # an empty partition


def test_nothing_is_read_again_while_anything_moves_or_everything_was_handed_over() -> None:
    busy_before, busy_now = look(900, (0, 950), 1_000), look(940, (0, 990), 1_040)
    assert read_again_from(busy_before, busy_now) is None
    idle = look(1_000, (0, 1_000), 1_000)
    assert read_again_from(idle, idle) is None
    assert read_again_from(look(None, None, None), look(None, None, None)) is None  # no position yet


def test_handled_records_the_group_never_committed_are_acknowledged() -> None:
    before = look(778, (400, 792), 792)
    assert commit_range(before, look(778, (400, 792), 792)) == (778, 791)
    # records handled since the last look wait for the next one
    assert commit_range(before, look(778, (400, 800), 800)) == (778, 791)


def test_nothing_is_acknowledged_that_the_worker_did_not_handle_without_a_hole() -> None:
    before = look(778, (785, 792), 792)  # the run since the partition came here starts past the group's offset
    assert commit_range(before, look(778, (785, 792), 792)) is None
    assert commit_range(None, look(778, (400, 792), 792)) is None  # a first look
    assert commit_range(look(778, (400, 792), 792), look(792, (400, 792), 792)) is None  # it committed
    assert commit_range(look(792, (400, 792), 792), look(792, (400, 792), 792)) is None  # all committed
    # the group never committed: from the first record handled here
    assert commit_range(look(None, (0, 50), 50), look(None, (0, 50), 50)) == (0, 49)
