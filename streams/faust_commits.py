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
:func:`handled` tells it that the records the worker read itself are done. Both use Faust's
private state (there is no public way): check them when faust-streaming is upgraded
(tests/test_faust_commits.py does).
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
