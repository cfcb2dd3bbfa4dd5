"""Kafka settings reach both clients: librdkafka (generator, admin) and Faust/aiokafka (worker)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from frictionwatch.kafka import KafkaUnavailable, consumer_config, faust_broker_options, producer_config
from frictionwatch.settings import Settings, SettingsError


def test_sasl_ssl_settings_reach_librdkafka() -> None:
    settings = Settings.load(
        env={"FRICTIONWATCH_SASL_PASSWORD": "pw"},
        cli={
            "bootstrap_servers": "k1:9093,k2:9093", "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512", "sasl_username": "fw", "ssl_cafile": "/etc/ca.pem",
        },
    )  # fmt: skip
    config = producer_config(settings)
    assert config["bootstrap.servers"] == "k1:9093,k2:9093"
    assert config["security.protocol"] == "sasl_ssl"
    assert (config["sasl.mechanisms"], config["sasl.username"], config["sasl.password"]) == (
        "SCRAM-SHA-512",
        "fw",
        "pw",
    )
    assert config["ssl.ca.location"] == "/etc/ca.pem"
    assert config["partitioner"] == "murmur2_random"
    consumer = consumer_config(settings, "g")
    assert consumer["session.timeout.ms"] == 45000 and consumer["sasl.password"] == "pw"


def test_sasl_settings_reach_faust() -> None:
    settings = Settings.load(
        env={"FRICTIONWATCH_SASL_PASSWORD": "pw"},
        cli={"bootstrap_servers": "k1:9092,k2:9092", "security_protocol": "SASL_PLAINTEXT",
             "sasl_mechanism": "PLAIN", "sasl_username": "fw"},
    )  # fmt: skip
    options = faust_broker_options(settings)
    assert options["broker"] == "kafka://k1:9092;kafka://k2:9092"
    credentials = options["broker_credentials"]
    assert (credentials.username, credentials.password, credentials.mechanism.value) == ("fw", "pw", "PLAIN")
    assert options["broker_session_timeout"] == 45.0


def test_only_the_embedded_broker_gets_its_workarounds() -> None:
    kafka = Settings.load(env={}, cli={"bootstrap_servers": "k:9092", "producer_max_batch_size": 32768})
    tansu = Settings.load(env={"FRICTIONWATCH_BROKER_QUIRKS": "tansu"}, cli={"bootstrap_servers": "k:9092"})
    assert (kafka.session_timeout, kafka.batch_size) == (45.0, 32768)
    assert (tansu.session_timeout, tansu.batch_size) == (6.0, 1)
    assert consumer_config(tansu, "g")["session.timeout.ms"] == 6000
    assert Settings.load(env={}, cli={"kafka_session_timeout": 10.0, "broker_quirks": "tansu"}).session_timeout == 10
    with pytest.raises(SettingsError, match="broker_quirks 'redpanda'"):
        Settings.load(env={"FRICTIONWATCH_BROKER_QUIRKS": "redpanda"})


def test_ssl_settings_reach_faust(tmp_path: Path) -> None:
    ca = Path(ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt")
    settings = Settings.load(
        env={}, cli={"bootstrap_servers": "k:9093", "security_protocol": "SSL", "ssl_cafile": str(ca)}
    )
    credentials = faust_broker_options(settings)["broker_credentials"]
    assert isinstance(credentials.context, ssl.SSLContext)


def test_no_bootstrap_is_a_clear_error() -> None:
    with pytest.raises(KafkaUnavailable, match="--bootstrap-servers"):
        producer_config(Settings.load(env={}))
