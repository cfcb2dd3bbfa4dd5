"""Kafka client configuration from :class:`~frictionwatch.settings.Settings`.

The same settings reach both clients: confluent-kafka (librdkafka; the generator, admin
and benchmarks) and Faust (aiokafka; the worker), SASL/SSL included.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterable, Mapping
from typing import Any

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from frictionwatch.settings import Settings


class KafkaUnavailable(RuntimeError):
    """The brokers could not be reached or refused a request."""


def librdkafka_config(settings: Settings, **extra: Any) -> dict[str, Any]:
    """Configuration for confluent-kafka clients (Producer, Consumer, AdminClient)."""
    if not settings.bootstrap_servers:
        raise KafkaUnavailable("no bootstrap address: give --bootstrap-servers or start `frictionwatch broker`")
    config: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap_servers,
        "security.protocol": settings.security_protocol.lower(),
        "log.connection.close": False,  # idle disconnects are routine, not news
    }
    if settings.sasl_mechanism:
        config["sasl.mechanisms"] = settings.sasl_mechanism
        config["sasl.username"] = settings.sasl_username
        config["sasl.password"] = settings.sasl_password
    if settings.ssl_cafile:
        config["ssl.ca.location"] = settings.ssl_cafile
    if settings.ssl_certfile:
        config["ssl.certificate.location"] = settings.ssl_certfile
    if settings.ssl_keyfile:
        config["ssl.key.location"] = settings.ssl_keyfile
    config.update(extra)
    return config


def producer_config(settings: Settings, **extra: Any) -> dict[str, Any]:
    """A producer placing keys like Kafka's Java client and Faust (murmur2)."""
    defaults = {"partitioner": "murmur2_random", "linger.ms": 20}
    return librdkafka_config(settings, **{**defaults, **extra})


def consumer_config(settings: Settings, group_id: str, **extra: Any) -> dict[str, Any]:
    """A group consumer with the session timeout in use (short on the embedded broker: docs/operations.md)."""
    defaults = {
        "group.id": group_id,
        "session.timeout.ms": int(settings.session_timeout * 1000),
        "auto.offset.reset": "earliest",
        "fetch.queue.backoff.ms": 10,
    }
    return librdkafka_config(settings, **{**defaults, **extra})


def committed_offsets(
    settings: Settings, group_id: str, partitions: Iterable[tuple[str, int]], timeout: float = 10.0
) -> dict[tuple[str, int], int | None]:
    """The offsets ``group_id`` committed for (topic, partition)s: the next record to read, None where none.

    Asks the group coordinator without joining the group (nothing is assigned or committed).
    """
    consumer = Consumer(consumer_config(settings, group_id, **{"enable.auto.commit": False}))
    try:
        found = consumer.committed([TopicPartition(topic, partition) for topic, partition in partitions], timeout)
    except Exception as error:  # KafkaException: the coordinator did not answer in time
        raise KafkaUnavailable(f"cannot read the committed offsets of group {group_id}: {error}") from error
    finally:
        consumer.close()
    return {(tp.topic, tp.partition): tp.offset if tp.offset >= 0 else None for tp in found}


def first_offsets(
    settings: Settings, partitions: Iterable[tuple[str, int]], timeout: float = 10.0
) -> dict[tuple[str, int], int]:
    """Each (topic, partition)'s first offset still held (its log start): where a group with no
    committed offset starts reading (the worker's consumers reset to the earliest offset)."""
    partitions = list(partitions)
    consumer = Consumer(consumer_config(settings, "frictionwatch-first-offsets", **{"enable.auto.commit": False}))
    try:
        return {
            (topic, partition): consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout)[0]
            for topic, partition in partitions
        }
    except Exception as error:  # KafkaException: the broker did not answer in time
        topics = ", ".join(sorted({topic for topic, _ in partitions}))
        raise KafkaUnavailable(f"cannot read the first offsets of {topics}: {error}") from error
    finally:
        consumer.close()


def faust_broker_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``faust.App`` that carry the broker address and credentials."""
    import faust

    options: dict[str, Any] = {
        "broker": ";".join(f"kafka://{server.strip()}" for server in settings.bootstrap_servers.split(",")),
        "broker_session_timeout": settings.session_timeout,
        "broker_heartbeat_interval": min(3.0, max(0.5, settings.session_timeout / 6)),
    }
    context = None
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(cafile=settings.ssl_cafile or None)
        if settings.ssl_certfile:
            context.load_cert_chain(settings.ssl_certfile, settings.ssl_keyfile or None)
    if settings.security_protocol.startswith("SASL"):
        options["broker_credentials"] = faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_password,
            mechanism=settings.sasl_mechanism or "PLAIN",
            ssl_context=context,
        )
    elif context is not None:
        options["broker_credentials"] = faust.SSLCredentials(context)
    return options


def ensure_topics(
    settings: Settings, names: list[str], timeout: float = 30.0, *, compacted: Mapping[str, int] | None = None
) -> dict[str, int]:
    """Create the missing topics and return the partition count of each.

    Existing topics keep their partition count (the returned numbers are what the
    brokers report), so a worker computes key placement from the real layout.
    ``compacted`` names compacted topics (Faust's table changelogs) with the partition
    count each must have; they are created too and their counts returned as well.
    Returns once every topic is in the metadata with a leader for each partition: on
    Apache Kafka a new topic shows there a moment after it is created, first without
    partitions (Faust takes such a changelog for one with 0 partitions and crashes).
    """
    admin = AdminClient(librdkafka_config(settings))
    compacted = dict(compacted or {})
    wanted = list(dict.fromkeys([*names, *compacted]))
    try:
        existing = admin.list_topics(timeout=timeout).topics
    except Exception as error:  # librdkafka raises KafkaException with a transport error
        raise KafkaUnavailable(f"cannot reach Kafka at {settings.bootstrap_servers}: {error}") from error
    missing = [
        NewTopic(
            name,
            num_partitions=compacted.get(name, settings.partitions),
            replication_factor=settings.replication_factor,
            config={"cleanup.policy": "compact"} if name in compacted else {},
        )
        for name in wanted
        if name not in existing
    ]
    if missing:
        for name, future in admin.create_topics(missing, operation_timeout=timeout).items():
            try:
                future.result(timeout=timeout)
            except Exception as error:
                if "TOPIC_ALREADY_EXISTS" not in str(error):
                    raise KafkaUnavailable(f"cannot create topic {name}: {error}") from error

    def unready(metadata: Mapping[str, Any]) -> list[str]:
        return [
            name
            for name in wanted
            if name not in metadata
            or not metadata[name].partitions
            or any(partition.leader < 0 for partition in metadata[name].partitions.values())
        ]

    deadline = time.monotonic() + timeout
    metadata = admin.list_topics(timeout=timeout).topics
    while unready(metadata) and time.monotonic() < deadline:
        time.sleep(0.1)
        metadata = admin.list_topics(timeout=timeout).topics
    absent = unready(metadata)
    if absent:
        raise KafkaUnavailable(
            f"topics {', '.join(absent)} were created but have no partitions with leaders in the metadata"
            f" after {timeout:g} s"
        )
    return {name: len(metadata[name].partitions) for name in wanted}
