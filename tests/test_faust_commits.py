"""streams/faust_commits.py against Faust's own commit book (no broker: nothing is committed).

Each case is a state seen on Apache Kafka after the worker lost its broker connection for
longer than the group session (tests/test_integration_outages.py): without the fix Faust
offers no offset to commit for the partition, ever; with it, everything handled.
"""

from __future__ import annotations

from collections.abc import Iterable

import faust
from faust.transport.consumer import Consumer
from faust.types import TP, Message

from frictionwatch.streams import faust_commits

CLICKS = "journey.clicks"
TP0 = TP(CLICKS, 0)


async def consumer() -> Consumer:
    """The consumer of an app whose agent reads the clicks topic (its records are acknowledged)."""
    app = faust.App("commit-book", broker="kafka://127.0.0.1:9")
    app.topics.add(app.topic(CLICKS))
    await app.topics._update_indices()  # type: ignore[attr-defined]  # what subscribing does: the topic's records are acknowledged
    found: Consumer = app.consumer  # type: ignore[assignment]
    return found


def acknowledge(consumer: Consumer, offsets: Iterable[int]) -> None:
    """Faust's stream acknowledging the records it delivered at ``offsets``."""
    for offset in offsets:
        consumer.ack(Message(CLICKS, 0, offset, 0.0, 0, None, b"key", b"value", None, tp=TP0))


async def book(committed: int | None, delivered: Iterable[int]) -> Consumer:
    """A consumer whose book says Faust committed ``committed``, after its stream delivered ``delivered``."""
    found = await consumer()
    found._committed_offset[TP0] = committed
    acknowledge(found, delivered)
    return found


async def test_faust_does_not_commit_past_records_it_dropped() -> None:
    # the group committed 402; Faust dropped 402-448 and delivered 449-803: the worker read 402-448 itself
    stuck = await book(402, range(449, 804))
    assert stuck._new_offset(TP0) is None  # Faust's defect: if this fails, recheck faust_commits

    fixed = await book(402, range(449, 804))
    await faust_commits.handled(fixed, CLICKS, 0, 402, 448)
    assert fixed._new_offset(TP0) == 804


async def test_a_failed_commit_noted_as_done_is_put_right() -> None:
    # a commit of 351 failed (the member had expired) and Faust noted it after the revocation;
    # the group has no committed offset; Faust delivered from 372 (the worker had handled 0-371)
    stuck = await book(351, range(372, 702))
    assert stuck._new_offset(TP0) is None  # Faust's defect: if this fails, recheck faust_commits

    fixed = await book(351, range(372, 702))
    faust_commits.starts_at(fixed, CLICKS, 0, None)
    assert fixed._new_offset(TP0) == 702


async def test_records_handled_before_a_rebalance_and_dropped_after_it_are_acknowledged() -> None:
    # the group committed 778; the worker had handled up to 789 before the partition came back
    # to it; Faust fetched 778-789 again, dropped them, and delivered 790-803
    stuck = await book(778, range(790, 804))
    assert stuck._new_offset(TP0) is None  # Faust's defect: if this fails, recheck faust_commits

    fixed = await book(778, range(790, 804))
    faust_commits.acknowledge(fixed, CLICKS, 0, 778, 778, 789)
    assert fixed._new_offset(TP0) == 804


async def test_a_book_ahead_of_the_group_with_nothing_left_to_acknowledge_is_put_right() -> None:
    # a commit of 792 failed but Faust noted it; the group stayed at 778 and every record was handled
    stuck = await book(792, range(778, 792))  # Faust ignores offsets below the one it believes committed
    assert stuck._new_offset(TP0) is None

    fixed = await book(792, ())
    faust_commits.acknowledge(fixed, CLICKS, 0, 778, 778, 791)
    assert fixed._new_offset(TP0) == 792
    assert fixed._committed_offset[TP0] == 778  # until Faust commits 792 for real
