"""Dead-letter records: what was rejected, why, and where it came from.

Each rejected element or record becomes one JSON object on the dead-letter topic
(docs/events.md, "Dead-letter records").
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import orjson

from frictionwatch.contract import Reason

DEADLETTER_SCHEMA = 1


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a rejected record was read: topic, partition, offset and key."""

    topic: str
    partition: int
    offset: int
    key: bytes | None


def deadletter_value(
    reason: Reason,
    field: str | None,
    detail: str,
    raw: bytes,
    origin: Origin,
    index: int | None,
    *,
    max_bytes: int,
    rejected_at: float,
) -> bytes:
    """The dead-letter record for one rejection, as JSON bytes.

    The original bytes travel base64-encoded in ``value_b64`` (they may not be UTF-8),
    cut to ``max_bytes`` so a 10 MB record can't clog the dead-letter topic; ``size``
    and ``truncated`` say whether anything was cut.

    >>> import base64, orjson
    >>> origin = Origin("journey.clicks", 2, 41, b"s-9")
    >>> doc = orjson.loads(deadletter_value(Reason.NOT_JSON, None, "not JSON", b'{"a":', origin, None,
    ...                                     max_bytes=4, rejected_at=1.0))
    >>> doc["reason"], doc["offset"], base64.b64decode(doc["value_b64"]), doc["truncated"]
    ('not_json', 41, b'{"a"', True)
    """
    kept = raw[:max_bytes]
    return orjson.dumps(
        {
            "deadletter_schema": DEADLETTER_SCHEMA,
            "reason": reason.value,
            "field": field,
            "detail": detail,
            "topic": origin.topic,
            "partition": origin.partition,
            "offset": origin.offset,
            "index": index,
            "key": origin.key.decode("utf-8", "replace") if origin.key is not None else None,
            "size": len(raw),
            "truncated": len(kept) < len(raw),
            "value_b64": base64.b64encode(kept).decode("ascii"),
            "rejected_at": rejected_at,
        }
    )
