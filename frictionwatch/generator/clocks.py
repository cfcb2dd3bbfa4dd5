"""Producers whose clocks are off: a share of the devices sends ``ts`` from a wrong clock.

A :class:`ClockSkew` picks devices (a session's, a contact's or a survey answer's key) by a
stable hash, so the same devices are off for the whole span, on one channel or all, and
moves their events' ``ts`` by ``offset`` seconds (positive: the clock is fast) between
``start`` and ``end`` seconds into the run. With ``sent_ts`` the events also carry the
device's clock when it sent them (the true send time plus the offset), which is what lets
the worker correct them (docs/events.md). The records stay in true-time order, as they
would reach Kafka.

>>> skew = parse_clock_skew("share=0.5,offset=-1h,channel=app,from=10m,until=20m,sent_ts")
>>> skew.share, skew.offset, skew.channel, skew.start, skew.end, skew.sent_ts
(0.5, -3600.0, 'app', 600.0, 1200.0, True)
>>> parse_clock_skew("share=2,offset=90s")
Traceback (most recent call last):
...
ValueError: --clock-skew: share must be > 0 and <= 1, got 2.0
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from frictionwatch.generator.records import GeneratedRecord
from frictionwatch.journeymap import parse_duration

HELP = (
    "devices whose clocks are off: share=S,offset=DURATION[,channel=C][,from=DURATION][,until=DURATION]"
    "[,sent_ts], e.g. share=0.2,offset=90s,channel=app,from=10m,until=20m (offset negative: behind; "
    "sent_ts: their events carry sent_ts; beyond max_future_skew, 300 s, ahead they need it or are "
    "dead-lettered ts_in_future); repeatable"
)


@dataclass(frozen=True, slots=True)
class ClockSkew:
    """``share`` (0-1) of the devices on ``channel`` (None: every channel) whose clocks are
    ``offset`` seconds off (positive: fast) from ``start`` to ``end`` seconds into the run."""

    share: float
    offset: float
    channel: str | None = None
    start: float = 0.0
    end: float = math.inf
    sent_ts: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.share <= 1:
            raise ValueError(f"--clock-skew: share must be > 0 and <= 1, got {self.share!r}")
        if not math.isfinite(self.offset) or self.offset == 0:
            raise ValueError(f"--clock-skew: offset must be a non-zero duration, got {self.offset!r}")
        if not 0 <= self.start < self.end:
            raise ValueError(f"--clock-skew: from ({self.start:g} s) must come before until ({self.end:g} s)")

    def applies(self, key: str, channel: str | None, into_run: float) -> bool:
        """Whether the device ``key`` on ``channel`` is off ``into_run`` seconds into the run."""
        if not self.start <= into_run < self.end or (self.channel is not None and channel != self.channel):
            return False
        return zlib.crc32(key.encode()) / 2**32 < self.share


def parse_clock_skew(text: str) -> ClockSkew:
    """A :class:`ClockSkew` from ``share=S,offset=D[,channel=C][,from=D][,until=D][,sent_ts]``."""
    fields: dict[str, str] = {}
    for part in (part.strip() for part in text.split(",")):
        name, equals, value = part.partition("=")
        if name == "sent_ts" and not equals:
            value = "true"
        elif name not in ("share", "offset", "channel", "from", "until") or not equals:
            raise ValueError(
                f"--clock-skew: expected name=value (share, offset, channel, from, until) or sent_ts, got {part!r}"
            )
        fields[name] = value
    for required in ("share", "offset"):
        if required not in fields:
            raise ValueError(f"--clock-skew: {required}= is missing in {text!r} ({HELP})")
    try:
        share = float(fields["share"])
    except ValueError:
        raise ValueError(f"--clock-skew: share must be a number from 0 to 1, got {fields['share']!r}") from None
    offset = fields["offset"]
    sign = -1.0 if offset.startswith("-") else 1.0
    return ClockSkew(
        share=share,
        offset=sign * parse_duration(offset.lstrip("+-")),
        channel=fields.get("channel") or None,
        start=parse_duration(fields["from"]) if fields.get("from") not in (None, "0") else 0.0,
        end=parse_duration(fields["until"]) if "until" in fields else math.inf,
        sent_ts="sent_ts" in fields,
    )


def skewed(records: Iterable[GeneratedRecord], skews: Iterable[ClockSkew], start: float) -> Iterator[GeneratedRecord]:
    """``records`` with the events of devices whose clocks are off moved (the first skew that
    applies to an event wins); ``start`` is the run's start (epoch seconds)."""
    skews = tuple(skews)
    if not skews:
        yield from records
        return
    for record in records:
        value = record.value
        if record.malformed is None and record.key is not None and isinstance(value, dict):
            skew = next((s for s in skews if s.applies(record.key, value.get("channel"), record.ts - start)), None)
            if skew is not None:
                value = {**value, "ts": round(value["ts"] + skew.offset, 3)}
                if skew.sent_ts:
                    value["sent_ts"] = round(record.ts + skew.offset, 3)
                record = record._replace(value=value)
        yield record
