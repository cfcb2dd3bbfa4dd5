"""Kafka's default partitioner (murmur2, as the Java client and Faust use it).

Session and contact state lives on the worker that owns the key's partition. Producers
that pack several events into one array record must pack them per partition by this
function, and the worker uses it to spot events that landed on the wrong partition.
confluent-kafka producers get the same placement with ``partitioner=murmur2_random``.

>>> partition_for(b"session-42", 4)
2
"""

from __future__ import annotations

from functools import lru_cache

from aiokafka.partitioner import murmur2


@lru_cache(maxsize=65536)
def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner assigns to ``key`` among ``partitions``."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions
