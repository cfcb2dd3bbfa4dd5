"""SASL/SSL settings reach the client objects themselves, not just the option dicts:
the aiokafka producer and consumer the worker's Faust app builds, and a librdkafka
client (its own configuration dump, ``debug=conf``), which also shows it never logs the
password. tests/test_kafka_config.py checks the option dicts."""

from __future__ import annotations

import logging
import ssl
from typing import Any

import pytest
from confluent_kafka import KafkaException, Producer
from prometheus_client import CollectorRegistry

from frictionwatch.journeymap import load_journey_map
from frictionwatch.kafka import producer_config
from frictionwatch.settings import Settings
from frictionwatch.streams.app import build_app

CA = ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt"
PASSWORD = "pw-3c9d-never-logged"


def sasl_ssl_settings(**changes: Any) -> Settings:
    cli = {
        "bootstrap_servers": "k1:9093,k2:9093", "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_username": "fw", "ssl_cafile": CA, **changes,
    }  # fmt: skip
    return Settings.load(env={"FRICTIONWATCH_SASL_PASSWORD": PASSWORD}, cli=cli)


async def test_sasl_ssl_reaches_the_workers_aiokafka_producer_and_consumer() -> None:
    settings = sasl_ssl_settings()
    names = [*settings.topics.values(), settings.topic_windows, settings.topic_touches, settings.topic_deadletter]
    app = build_app(settings, load_journey_map(), CollectorRegistry(), dict.fromkeys(names, 4)).app
    producer = app.producer._new_producer()  # type: ignore[attr-defined]
    consumer = app.consumer._thread._create_client_consumer(app.transport)  # type: ignore[attr-defined]
    try:
        for client in (producer.client, consumer._client):
            assert client._bootstrap_servers == ["k1:9093", "k2:9093"]
            assert client._security_protocol == "SASL_SSL"
            assert client._sasl_mechanism == "SCRAM-SHA-512"
            assert (client._sasl_plain_username, client._sasl_plain_password) == ("fw", PASSWORD)
            assert isinstance(client._ssl_context, ssl.SSLContext)
            assert client._ssl_context.verify_mode == ssl.CERT_REQUIRED
    finally:
        await producer.stop()
        await consumer.stop()


async def test_plain_ssl_reaches_aiokafka_without_sasl() -> None:
    settings = sasl_ssl_settings(security_protocol="SSL", sasl_mechanism="")
    names = [*settings.topics.values(), settings.topic_windows, settings.topic_touches, settings.topic_deadletter]
    app = build_app(settings, load_journey_map(), CollectorRegistry(), dict.fromkeys(names, 4)).app
    producer = app.producer._new_producer()  # type: ignore[attr-defined]
    try:
        assert producer.client._security_protocol == "SSL"
        assert isinstance(producer.client._ssl_context, ssl.SSLContext)
    finally:
        await producer.stop()


def test_sasl_ssl_reaches_librdkafka_and_the_password_is_not_logged() -> None:
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    logger = logging.getLogger("test-librdkafka-conf")
    logger.addHandler(Collect())
    logger.setLevel(logging.DEBUG)
    producer = Producer(producer_config(sasl_ssl_settings(), debug="conf", logger=logger))
    producer.poll(0.5)  # the configuration dump is logged from librdkafka's thread
    dump = "\n".join(lines)
    assert "security.protocol = sasl_ssl" in dump
    assert "sasl.mechanisms = SCRAM-SHA-512" in dump
    assert f"ssl.ca.location = {CA}" in dump
    assert "sasl.password = [redacted]" in dump and PASSWORD not in dump


def test_librdkafka_refuses_a_mechanism_it_does_not_know() -> None:
    """The mechanism is not dropped on the way: librdkafka itself rejects a bad one."""
    with pytest.raises(KafkaException, match=r"(?i)sasl"):
        Producer(producer_config(sasl_ssl_settings(sasl_mechanism="NOT-A-MECHANISM")))
