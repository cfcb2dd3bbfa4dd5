"""The compiled fast path of frictionwatch's click decoding (native/src/lib.rs)."""

from collections.abc import Mapping
from typing import Any

class ClickDecoder:
    def __init__(
        self,
        event_class: type[Any],
        steps: Mapping[str, Mapping[str, tuple[str, str, Mapping[str, str]]]],
        kinds: Mapping[str, str],
        limits: Mapping[str, float],
    ) -> None: ...
    def decode(self, value: bytes, partition: int, now: float | None = None) -> list[Any] | None: ...

def partition_for(key: bytes, partitions: int) -> int: ...
