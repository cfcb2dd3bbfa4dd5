"""The compiled fast path of frictionwatch's click decoding (native/src/lib.rs)."""

from collections.abc import Mapping
from typing import Any

class ClickDecoder:
    def __init__(
        self,
        event_class: type[Any],
        steps: Mapping[str, Mapping[str, tuple[str, str, Mapping[str, str]]]],
        kinds: Mapping[str, str],
        *,
        partitions: int,
        max_record_bytes: int,
        max_batch_events: int,
        max_age: float,
        max_future_skew: float,
        schema_version: int,
        max_id_length: int,
        max_text_length: int,
        sent_ts_slack: float,
    ) -> None: ...
    def decode(self, value: bytes, partition: int, now: float | None = None) -> list[Any] | None: ...

def partition_for(key: bytes, partitions: int) -> int: ...
