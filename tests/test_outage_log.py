"""The digest of aiokafka's errors while the broker is unreachable (streams/outage_log.py)."""

from __future__ import annotations

import doctest
import logging
from collections.abc import Iterator

import pytest

from frictionwatch.streams import outage_log
from frictionwatch.streams.outage_log import BrokerErrorDigest, install

# What aiokafka logs, per logger, while the broker is gone (aiokafka 0.14's message templates).
OUTAGE = [
    ("aiokafka", "Unable connect to node with id %s: %s", (1, "[Errno 111] Connect call failed")),
    ("aiokafka", "Unable to update metadata from %s", ([1],)),
    ("aiokafka.consumer.fetcher", "Failed fetch messages from %s: %s", (1, "NodeNotReadyError")),
    ("aiokafka.consumer.group_coordinator", "Heartbeat send request failed: %s. Will retry.", ("NodeNotReady",)),
    ("aiokafka.consumer.group_coordinator", "Heartbeat session expired - marking coordinator dead", ()),
]


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[tuple[float, str]] = []
        self.now = 0.0

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((self.now, record.getMessage()))


Captured = tuple[Lines, BrokerErrorDigest]


@pytest.fixture()
def captured() -> Iterator[Captured]:
    """aiokafka's real loggers with the digest installed, writing to a list; undone afterwards."""
    lines = Lines()
    root = logging.getLogger("aiokafka")
    level, propagate = root.level, root.propagate
    root.addHandler(lines)
    root.setLevel(logging.DEBUG)
    root.propagate = False
    digest = install("127.0.0.1:9092", every=30.0)
    digest.clock = lambda: lines.now
    try:
        yield lines, digest
    finally:
        for name in list(logging.root.manager.loggerDict):
            if name == "aiokafka" or name.startswith("aiokafka."):
                logging.getLogger(name).removeFilter(digest)
        root.removeHandler(lines)
        root.setLevel(level)
        root.propagate = propagate


def outage(lines: Lines, start: float, seconds: float, per_second: int = 65) -> int:
    logged = 0
    for tick in range(int(seconds * per_second)):
        lines.now = start + tick / per_second
        name, msg, args = OUTAGE[tick % len(OUTAGE)]
        logging.getLogger(name).error(msg, *args)
        logged += 1
    return logged


def test_doctests() -> None:
    assert doctest.testmod(outage_log).failed == 0


def test_an_outage_of_65_errors_a_second_gives_one_line_every_30_seconds(captured: Captured) -> None:
    lines, _ = captured
    logged = outage(lines, 0.0, 300.0)
    assert logged == 19_500
    firsts = [text for at, text in lines.lines if not text.startswith("broker ")]
    summaries = [(at, text) for at, text in lines.lines if text.startswith("broker ")]
    assert len(firsts) == len(OUTAGE)  # each kind of error shown once, as aiokafka wrote it
    assert "Unable connect to node with id 1: [Errno 111] Connect call failed" in firsts
    assert len(summaries) == 9  # at 30, 60, ... 270 s: one line every 30 s
    assert [round(at) for at, _ in summaries] == list(range(30, 300, 30))
    at, text = summaries[-1]
    assert text.startswith("broker 127.0.0.1:9092 unreachable for 270 s (")
    assert f"{round(at * 65) + 1:,} errors from aiokafka: " in text


def test_the_next_outage_shows_its_first_errors_again(captured: Captured) -> None:
    lines, _ = captured
    outage(lines, 0.0, 10.0)
    shown = len(lines.lines)
    outage(lines, 45.0, 10.0)  # 35 s without an error in between: a new outage
    assert len(lines.lines) == 2 * shown == 2 * len(OUTAGE)
    outage(lines, 70.0, 1.0)  # 15 s after: the same outage; repeats stay hidden until 30 s have passed
    assert len(lines.lines) == 2 * len(OUTAGE)


def test_info_and_debug_pass_untouched(captured: Captured) -> None:
    lines, _ = captured
    outage(lines, 0.0, 5.0)
    before = len(lines.lines)
    for _ in range(3):
        logging.getLogger("aiokafka.consumer.group_coordinator").info("Joined group %r", "frictionwatch")
    assert [text for _, text in lines.lines[before:]] == ["Joined group 'frictionwatch'"] * 3


def test_every_must_be_positive() -> None:
    with pytest.raises(ValueError, match="every must be > 0"):
        BrokerErrorDigest("x:9092", every=0)
