"""Faust's book of the offsets it may commit, put right where faust-streaming 0.15 gets it wrong.

Faust commits a partition's offset only over a run of acknowledged records with no hole,
starting at the offset it believes committed. Two of its slips stop a partition's commits
until its next rebalance (a restart would then handle everything since again), and both
follow the rebalance that a lost broker connection causes on Apache Kafka, where the
commits of a group member that expired fail:

* it notes a commit that failed as done; when the failure lands after the revocation that
  cleared its book, the partition comes back believing in offsets the group never
  committed: the records before them are never acknowledged, and those after them lie a
  hole away;
* it drops records it fetched while the rebalance ran (faust-streaming issue 596: they are
  discarded when the flow resumes, and the fetcher has moved past them). The worker reads
  them itself (streams/app.py), but Faust never sees them acknowledged.

The worker puts both right at a partition's first record after an assignment:
:func:`starts_at` sets Faust's committed offset to the group's (read from the broker), and
:func:`handled` tells it that the records the worker read itself are done.

Faust's book can still fall out with the group's later: a failed commit noted as done
after the partition came back, or records the worker had handled before a rebalance that
Faust fetched again and dropped. The group's offset then stays put while the worker goes
on. So the worker compares the two every 30 s, and when the group has not moved although
records past its offset were handled 30 s ago, :func:`acknowledge` writes those records
into Faust's book, which then commits them as usual.

All three use Faust's private state (there is no public way): check them when
faust-streaming is upgraded (tests/test_faust_commits.py does).
"""

from __future__ import annotations

from typing import Any

from faust.types import TP


def starts_at(consumer: Any, topic: str, partition: int, committed: int | None) -> None:
    """Faust's committed offset of a partition is the group's ``committed`` (None: the group has none)."""
    consumer._committed_offset[TP(topic, partition)] = committed


async def handled(consumer: Any, topic: str, partition: int, first: int, last: int) -> None:
    """Offsets ``first`` to ``last`` are done: Faust commits past them as past offsets holding no record."""
    await consumer._add_gap(TP(topic, partition), first, last)


def acknowledge(consumer: Any, topic: str, partition: int, committed: int | None, first: int, last: int) -> None:
    """The group committed ``committed``; offsets ``first`` to ``last`` were handled: Faust may commit past them.

    Faust's committed offset becomes the group's, and the offsets are acknowledged in its
    book as if its stream had delivered them.
    """
    tp = TP(topic, partition)
    consumer._committed_offset[tp] = committed
    acked, index = consumer._acked[tp], consumer._acked_index[tp]
    new = [offset for offset in range(first, last + 1) if offset not in index]
    acked.extend(new)
    acked.sort()
    index.update(new)
