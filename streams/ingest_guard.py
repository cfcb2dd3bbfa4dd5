"""Workers of one group that read the input topics in two ways at once (no I/O).

A worker with ``ingest = direct`` reads the input topics with its own loop and commits their
offsets in the consumer group ``<group_id>-ingest`` (streams/loop.py); one with
``ingest = faust`` reads them with Faust agents and commits in ``<group_id>``. The two groups
know nothing of each other, so workers of both settings at once each read every input
partition, and every event is counted twice. So each worker looks, every ``LOOK_SECONDS``, at
the committed input offsets of the group it does not use: when they move on between two looks,
a worker with the other setting is reading (the worker logs an error and sets
``frictionwatch_other_ingest_reading``, which alert FrictionwatchMixedIngest pages on).

>>> other_ingest("direct", "frictionwatch")
('faust', 'frictionwatch')
>>> other_ingest("faust", "frictionwatch")
('direct', 'frictionwatch-ingest')
"""

from __future__ import annotations

from collections.abc import Mapping

LOOK_SECONDS = 15.0  # how often a worker looks at the other group's committed input offsets

Partition = tuple[str, int]  # (topic, partition)
Offsets = Mapping[Partition, int | None]  # a group's committed offsets (the next to read), None if none


def loop_group(group_id: str) -> str:
    """The consumer group in which ``ingest = direct`` loops commit the input topics."""
    return f"{group_id}-ingest"


def other_ingest(ingest: str, group_id: str) -> tuple[str, str]:
    """The ingest setting this worker does not use, and the consumer group that setting commits in."""
    if ingest == "direct":
        return "faust", group_id
    return "direct", loop_group(group_id)


def moved_on(before: Offsets, now: Offsets) -> dict[Partition, tuple[int, int]]:
    """The partitions whose committed offset moved forward between two looks: (from, to).

    A partition first committed between the looks moved on from 0. Offsets that went back (an
    operator reset them) or stayed are not reading.

    >>> moved_on({("clicks", 0): 10, ("clicks", 1): None, ("clicks", 2): 7},
    ...          {("clicks", 0): 25, ("clicks", 1): 4, ("clicks", 2): 3})
    {('clicks', 0): (10, 25), ('clicks', 1): (0, 4)}
    >>> moved_on({("clicks", 0): 10}, {("clicks", 0): 10})
    {}
    """
    moved = {}
    for partition, offset in now.items():
        previous = before.get(partition) or 0
        if offset is not None and offset > previous:
            moved[partition] = (previous, offset)
    return moved


def explain(ingest: str, group_id: str, moved: Mapping[Partition, tuple[int, int]], seconds: float) -> str:
    """The error a worker logs when a worker with the other ingest setting reads the input topics.

    >>> error = explain("direct", "fw", {("journey.clicks", 0): (10, 25)}, 30)
    >>> error[:60]
    'another worker reads the input topics with ingest = faust wh'
    >>> "consumer group fw moved on in the last 30 s (journey.clicks[0] 10->25)" in error
    True
    """
    other, group = other_ingest(ingest, group_id)
    shown = ", ".join(f"{topic}[{part}] {start}->{end}" for (topic, part), (start, end) in sorted(moved.items())[:4])
    more = f" and {len(moved) - 4} more" if len(moved) > 4 else ""
    return (
        f"another worker reads the input topics with ingest = {other} while this one has ingest = {ingest}: "
        f"the committed offsets of consumer group {group} moved on in the last {seconds:.0f} s ({shown}{more}). "
        "Both read every input partition, so every event is counted twice. Stop every worker and start "
        "them all with the same ingest setting (docs/operations.md, 'Reading the input')."
    )
