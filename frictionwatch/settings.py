"""One settings object for every command.

Each setting comes from, in order of precedence: a command-line flag, a
``FRICTIONWATCH_<NAME>`` environment variable, the config file (TOML, given by
``--config`` or ``FRICTIONWATCH_CONFIG``; keys are the setting names), then the default.

Secrets (the SASL password, the pseudonym key) are read only from the environment or from a
file named by ``sasl_password_file`` / ``pseudonym_key_file``: never from flags (visible in
``ps``) or the config file, and never printed.

>>> settings = Settings.load(env={"FRICTIONWATCH_PARTITIONS": "8"}, cli={"metrics_port": 9500})
>>> settings.partitions, settings.metrics_port, settings.metrics_host
(8, 9500, '127.0.0.1')
"""

from __future__ import annotations

import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

ENV_PREFIX = "FRICTIONWATCH_"


def _setting(default: Any, help: str, *, secret: bool = False) -> Any:
    return field(default=default, metadata={"help": help, "secret": secret}, repr=not secret)


@dataclass(frozen=True)
class Settings:
    """Everything a frictionwatch process can be configured with (see docs/configuration.md)."""

    # Kafka
    bootstrap_servers: str = _setting("", "Kafka bootstrap address host:port[,host:port]; empty = embedded broker")
    security_protocol: str = _setting("PLAINTEXT", "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL")
    sasl_mechanism: str = _setting("", "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (with SASL_*)")
    sasl_username: str = _setting("", "SASL user name")
    sasl_password: str = _setting("", "SASL password: env FRICTIONWATCH_SASL_PASSWORD only", secret=True)
    sasl_password_file: str = _setting("", "file holding the SASL password (e.g. a mounted secret)")
    ssl_cafile: str = _setting("", "CA certificate file (PEM) to verify the brokers")
    ssl_certfile: str = _setting("", "client certificate file (PEM) for mutual TLS")
    ssl_keyfile: str = _setting("", "client private key file (PEM) for mutual TLS")
    group_id: str = _setting("frictionwatch", "consumer group (and Faust app id) shared by all workers")
    kafka_session_timeout: float = _setting(
        0.0, "consumer group session timeout, seconds; 0 = 6 with broker_quirks tansu, else 45 (Kafka's default)"
    )
    broker_quirks: str = _setting(
        "", "defects of the broker to work around: tansu (the embedded broker), or empty for Apache Kafka"
    )
    # Topics
    topic_clicks: str = _setting("journey.clicks", "clickstream topic, keyed by session_id")
    topic_contacts: str = _setting("journey.contacts", "contact-centre topic, keyed by contact_id")
    topic_feedback: str = _setting("journey.feedback", "survey feedback topic")
    topic_deadletter: str = _setting("journey.deadletter", "where rejected records go, with a reason")
    topic_windows: str = _setting("frictionwatch.windows", "internal: closed windows of each partition, by group")
    topic_touches: str = _setting("frictionwatch.customer-touches", "internal: sessions and contacts by customer")
    partitions: int = _setting(4, "partitions for topics frictionwatch creates (the unit of scale-out)")
    replication_factor: int = _setting(1, "replication factor for topics frictionwatch creates")
    # Input limits
    max_record_bytes: int = _setting(1_048_576, "records larger than this are dead-lettered")
    max_batch_events: int = _setting(1000, "array records with more events are dead-lettered")
    max_future_skew: float = _setting(300.0, "events with ts further ahead of the clock are rejected, seconds")
    max_event_age: float = _setting(7 * 86400.0, "events older than this are rejected, seconds")
    clock_tolerance: float = _setting(
        5.0, "a ts this far ahead of its record's arrival, or a sent_ts this far off it, is not a wrong clock, seconds"
    )
    deadletter_max_bytes: int = _setting(65536, "original bytes kept in a dead-letter record (rest cut)")
    # Friction metrics
    window_size: float = _setting(60.0, "event-time tumbling window length, seconds (10 works)")
    allowed_lateness: float = _setting(5.0, "how long a window stays open after its end for late events, seconds")
    window_wait: float = _setting(30.0, "seconds a window waits for partitions that have not closed it yet")
    touch_lateness: float = _setting(300.0, "allowed lateness of customer touches, which arrive from several topics")
    rage_clicks: int = _setting(3, "clicks on one target that make a rage click")
    rage_seconds: float = _setting(1.0, "... within this many seconds")
    progress_timeout: float = _setting(120.0, "a step's progress timeout before its p95 dwell is learned, seconds")
    early_flow_age: float = _setting(60.0, "age at which a step visit is judged for the early flow signal, seconds")
    flow_cold_start: float = _setting(
        300.0, "sessions under way this soon after a partition starts aren't judged (flow, session ends); 0 = all"
    )
    dedup_horizon: float = _setting(600.0, "event ids are remembered this long (event time) to skip re-deliveries")
    dedup_max_ids: int = _setting(200_000, "at most this many event ids remembered per partition (memory bound)")
    replay_horizon: float = _setting(
        3900.0, "a partition new to a worker replays this much event time to rebuild its state; > session timeouts"
    )
    short_abandon_seconds: float = _setting(5.0, "abandons after a shorter wait are short: left out of the ratio")
    service_level_seconds: float = _setting(20.0, "answered within this wait counts toward the service level")
    repeat_contact_horizon: float = _setting(86400.0, "a contact within this long of the last is a repeat, seconds")
    contact_timeout: float = _setting(
        4 * 3600.0, "a contact's state is forgotten this long (event time) after its latest event, seconds"
    )
    # Alerts (the immediate path)
    alertmanager_urls: str = _setting("", "Alertmanager base URLs, comma-separated (an HA pair: both); empty = off")
    alert_resend_seconds: float = _setting(60.0, "how often a firing alert is sent again to Alertmanager")
    alert_expiry_seconds: float = _setting(300.0, "endsAt of a firing alert: Alertmanager resolves it if not re-sent")
    alert_hold_seconds: float = _setting(
        300.0, "an incident's alerts resolve once its touchpoint's evidence has been normal this long, seconds"
    )
    alert_echo_seconds: float = _setting(
        2400.0, "late evidence (session ends, surveys) this soon after an incident resolved is an echo: info, no page"
    )
    alert_buffer_size: int = _setting(10000, "alerts kept per Alertmanager while it can't be reached")
    runbook_base_url: str = _setting(
        "https://github.com/frictionwatch/frictionwatch/blob/main/docs/runbooks", "where alerts' runbook_url points"
    )
    dashboard_base_url: str = _setting("http://127.0.0.1:3000", "Grafana's address, for alerts' dashboard_url")
    pseudonym_key: str = _setting(
        "",
        "key of the HMAC pseudonyms of ids in alerts: env FRICTIONWATCH_PSEUDONYM_KEY only; empty = ids as-is",
        secret=True,
    )
    pseudonym_key_file: str = _setting("", "file holding the pseudonym key (e.g. a mounted secret)")
    # Journey map and worker
    journey_map: str = _setting("", "journey map YAML file; empty = the shipped example")
    metrics_host: str = _setting("127.0.0.1", "address the /metrics endpoint binds to")
    metrics_port: int = _setting(9477, "port of the /metrics endpoint (0 = any free port)")
    web_port: int = _setting(0, "Faust's own web server port on metrics_host; 0 = off")
    store: str = _setting("memory://", "Faust table store: memory:// or rocksdb://")
    ingest: str = _setting(
        "direct",
        "how a worker reads the input topics: direct (a consumer loop of its own, several times faster per record;"
        " stage 2 stays on Faust: streams/loop.py) or faust (an agent per topic, as before 2026-12)",
    )
    click_decoder: str = _setting(
        "auto",
        "how clicks records are decoded: auto (compiled where frictionwatch-native is installed, else Python),"
        " compiled (refuse to start without it) or python (the reference, slower: native/README.md)",
    )
    producer_max_batch_size: int = _setting(
        16384, "Faust producer batch size, bytes (with broker_quirks tansu always 1: exact table recovery there)"
    )
    # Broker on this machine (frictionwatch broker, demo)
    broker_engine: str = _setting("tansu", "tansu (embedded, in memory, no Java) or kafka (Apache Kafka, Java 17+)")
    broker_host: str = _setting("127.0.0.1", "address the local broker listens on")
    broker_port: int = _setting(0, "port of the local broker (0 = a free port)")
    kafka_jars: str = _setting("", "folder of Apache Kafka's jars; empty = deploy/kafka/lib (scripts/fetch-kafka)")
    log_level: str = _setting("info", "debug, info, warning or error")

    def __post_init__(self) -> None:
        problems = [problem for problem in self._problems() if problem]
        if problems:
            raise SettingsError("; ".join(problems))

    def _problems(self) -> list[str]:
        return [
            "partitions must be at least 1" if self.partitions < 1 else "",
            "replication_factor must be at least 1" if self.replication_factor < 1 else "",
            "max_batch_events must be at least 1" if self.max_batch_events < 1 else "",
            "max_record_bytes must be at least 1024" if self.max_record_bytes < 1024 else "",
            "metrics_port must be 0 to 65535" if not 0 <= self.metrics_port <= 65535 else "",
            "broker_port must be 0 to 65535" if not 0 <= self.broker_port <= 65535 else "",
            (
                "kafka_session_timeout must be 0 (automatic) or 1 to 300 seconds"
                if self.kafka_session_timeout != 0 and not 1 <= self.kafka_session_timeout <= 300
                else ""
            ),
            (
                f"broker_quirks {self.broker_quirks!r} is not one of: tansu, or empty"
                if self.broker_quirks not in ("", "tansu")
                else ""
            ),
            (
                f"broker_engine {self.broker_engine!r} is not one of tansu, kafka"
                if self.broker_engine not in ("tansu", "kafka")
                else ""
            ),
            f"ingest {self.ingest!r} is not one of direct, faust" if self.ingest not in ("direct", "faust") else "",
            (
                f"click_decoder {self.click_decoder!r} is not one of auto, compiled, python"
                if self.click_decoder not in ("auto", "compiled", "python")
                else ""
            ),
            "window_size must be at least 1 second" if self.window_size < 1 else "",
            "alert_hold_seconds must be >= 0" if self.alert_hold_seconds < 0 else "",
            "alert_echo_seconds must be >= 0" if self.alert_echo_seconds < 0 else "",
            "allowed_lateness must be >= 0" if self.allowed_lateness < 0 else "",
            "clock_tolerance must be >= 0" if not self.clock_tolerance >= 0 else "",
            "window_wait must be > 0" if self.window_wait <= 0 else "",
            "contact_timeout must be > 0" if not self.contact_timeout > 0 else "",
            "rage_clicks must be at least 2" if self.rage_clicks < 2 else "",
            "rage_seconds must be > 0" if self.rage_seconds <= 0 else "",
            (
                "alert_expiry_seconds must exceed alert_resend_seconds"
                if self.alert_expiry_seconds <= self.alert_resend_seconds
                else ""
            ),
            (
                f"security_protocol {self.security_protocol!r} is not one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"
                if self.security_protocol not in ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
                else ""
            ),
            (
                f"log_level {self.log_level!r} is not one of debug, info, warning, error"
                if self.log_level not in ("debug", "info", "warning", "error")
                else ""
            ),
        ]

    @property
    def session_timeout(self) -> float:
        """The consumer group session timeout in use, seconds (see kafka_session_timeout)."""
        if self.kafka_session_timeout:
            return self.kafka_session_timeout
        return 6.0 if self.broker_quirks == "tansu" else 45.0

    @property
    def batch_size(self) -> int:
        """Faust's producer batch size in use: 1 on the embedded broker (docs/operations.md)."""
        return 1 if self.broker_quirks == "tansu" else self.producer_max_batch_size

    @property
    def topics(self) -> dict[str, str]:
        """Input topic name by kind: clicks, contacts, feedback."""
        return {"clicks": self.topic_clicks, "contacts": self.topic_contacts, "feedback": self.topic_feedback}

    def with_bootstrap(self, bootstrap_servers: str) -> Settings:
        return replace(self, bootstrap_servers=bootstrap_servers)

    @classmethod
    def load(
        cls,
        cli: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        config_file: str | Path | None = None,
    ) -> Settings:
        """Merge flags (``cli``, None values ignored), environment, config file and defaults."""
        cli = {key: value for key, value in (cli or {}).items() if value is not None}
        env = os.environ if env is None else env
        path = config_file or cli.pop("config", None) or env.get(ENV_PREFIX + "CONFIG")
        values: dict[str, Any] = _read_config_file(Path(path)) if path else {}
        for spec in fields(cls):
            raw = env.get(ENV_PREFIX + spec.name.upper())
            if raw is not None:
                values[spec.name] = _convert(spec.name, raw, _field_type(spec.name), f"{ENV_PREFIX}{spec.name.upper()}")
        for name, value in cli.items():
            if name not in _FIELD_NAMES:
                raise SettingsError(f"--{name.replace('_', '-')} is not a setting")
            if _is_secret(name):
                raise SettingsError(f"{name} can't be given as a flag; set {ENV_PREFIX}{name.upper()} instead")
            values[name] = value
        for secret in ("sasl_password", "pseudonym_key"):
            secret_file = values.get(f"{secret}_file")
            if secret_file and not values.get(secret):
                try:
                    values[secret] = Path(secret_file).read_text(encoding="utf-8").strip()
                except OSError as error:
                    raise SettingsError(f"{secret}_file {secret_file}: {error.strerror}") from None
        return cls(**values)

    def describe(self) -> list[tuple[str, str, str]]:
        """(name, value shown, help) for every setting; secrets are masked."""
        rows = []
        for spec in fields(self):
            value = getattr(self, spec.name)
            shown = ("***" if value else "") if spec.metadata.get("secret") else repr(value)
            rows.append((spec.name, shown, str(spec.metadata.get("help", ""))))
        return rows


class SettingsError(ValueError):
    """A setting is missing, mistyped or out of range; the message names it."""


_FIELD_NAMES = frozenset(spec.name for spec in fields(Settings))


def setting_help(name: str) -> str:
    """The help text of setting ``name`` with its default and environment variable, for --help output.

    >>> setting_help("ingest").endswith("[default direct; env FRICTIONWATCH_INGEST]")
    True
    >>> setting_help("sasl_password").endswith("only [env FRICTIONWATCH_SASL_PASSWORD]")
    True
    """
    spec = next(spec for spec in fields(Settings) if spec.name == name)
    default = spec.default
    shown = "" if spec.metadata.get("secret") or default in ("", None) else f"default {default}; "
    return f"{spec.metadata['help']} [{shown}env {ENV_PREFIX}{name.upper()}]"


def setting_type(name: str) -> type:
    """The Python type of setting ``name`` (str, int or float)."""
    return _field_type(name)


def _is_secret(name: str) -> bool:
    return any(spec.metadata.get("secret") for spec in fields(Settings) if spec.name == name)


def _field_type(name: str) -> type:
    hints = typing.get_type_hints(Settings)
    hint = hints[name]
    if isinstance(hint, types.UnionType):
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    return typing.cast(type, hint)


def _convert(name: str, raw: Any, wanted: type, where: str) -> Any:
    if wanted is str:
        if not isinstance(raw, str):
            raise SettingsError(f"{where}: expected a string for {name}, got {raw!r}")
        return raw
    try:
        if wanted is int and not isinstance(raw, bool):
            return int(raw)
        if wanted is float and not isinstance(raw, bool):
            return float(raw)
    except (TypeError, ValueError):
        pass
    kind = "a whole number" if wanted is int else "a number"
    raise SettingsError(f"{where}: expected {kind} for {name}, got {raw!r}")


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except OSError as error:
        raise SettingsError(f"config file {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"config file {path}: {error}") from None
    data = data.get("frictionwatch", data)
    values = {}
    for name, raw in data.items():
        if name not in _FIELD_NAMES:
            raise SettingsError(f"config file {path}: unknown setting {name!r}")
        if _is_secret(name):
            raise SettingsError(f"config file {path}: {name} must come from {ENV_PREFIX}{name.upper()}, not a file")
        values[name] = _convert(name, raw, _field_type(name), f"config file {path}")
    return values
