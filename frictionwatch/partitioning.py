"""Kafka's default partitioner (murmur2, as the Java client and Faust use it).

Session and contact state lives on the worker that owns the key's partition. Producers
that pack several events into one array record must pack them per partition by this
function, and the worker uses it to spot events that landed on the wrong partition.
confluent-kafka producers get the same placement with ``partitioner=murmur2_random``.

``partition_for`` is the compiled one of frictionwatch-native (native/) where it is installed,
else ``python_partition_for``, the reference (tests/test_native.py compares them). A worker
computes it for every customer whose session or contact it packs into a customer-touches
record: in Python that cost stage 1 about 8% of its instructions in arrays (bench/README.md).

>>> partition_for(b"session-42", 4), python_partition_for(b"session-42", 4)
(2, 2)
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

from aiokafka.partitioner import murmur2


@lru_cache(maxsize=65536)
def python_partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner assigns to ``key`` among ``partitions``."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


partition_for: Callable[[bytes, int], int]
try:
    from frictionwatch_native import partition_for
except ImportError:  # no Rust toolchain when it was set up (scripts/setup): the reference
    partition_for = python_partition_for
