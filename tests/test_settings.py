"""Settings precedence: flag > FRICTIONWATCH_* env > config file > default; secrets stay secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from frictionwatch.settings import Settings, SettingsError


def test_precedence(tmp_path: Path) -> None:
    config = tmp_path / "fw.toml"
    config.write_text('partitions = 6\nmetrics_port = 9600\ntopic_clicks = "file.clicks"\ngroup_id = "from-file"\n')
    env = {"FRICTIONWATCH_METRICS_PORT": "9700", "FRICTIONWATCH_TOPIC_CLICKS": "env.clicks"}
    settings = Settings.load(cli={"topic_clicks": "flag.clicks", "group_id": None}, env=env, config_file=config)
    assert settings.topic_clicks == "flag.clicks"  # flag wins
    assert settings.metrics_port == 9700  # env beats file
    assert settings.partitions == 6  # file beats default
    assert settings.group_id == "from-file"  # a flag left unset (None) does not override
    assert settings.topic_feedback == "journey.feedback"  # default


def test_config_file_from_env_and_frictionwatch_table(tmp_path: Path) -> None:
    config = tmp_path / "fw.toml"
    config.write_text("[frictionwatch]\npartitions = 3\n")
    assert Settings.load(env={"FRICTIONWATCH_CONFIG": str(config)}).partitions == 3


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"FRICTIONWATCH_PARTITIONS": "four"}, "FRICTIONWATCH_PARTITIONS: expected a whole number for partitions"),
        ({"FRICTIONWATCH_PARTITIONS": "0"}, "partitions must be at least 1"),
        ({"FRICTIONWATCH_SECURITY_PROTOCOL": "TLS"}, "security_protocol 'TLS'"),
        ({"FRICTIONWATCH_METRICS_PORT": "70000"}, "metrics_port must be 0 to 65535"),
        ({"FRICTIONWATCH_INGEST": "loop"}, "ingest 'loop' is not one of direct, faust"),
    ],
)
def test_errors_name_the_setting(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.load(env=env)


def test_config_file_errors(tmp_path: Path) -> None:
    config = tmp_path / "fw.toml"
    config.write_text("partitons = 3\n")
    with pytest.raises(SettingsError, match="unknown setting 'partitons'"):
        Settings.load(env={}, config_file=config)
    config.write_text("partitions = \n")
    with pytest.raises(SettingsError, match=r"fw\.toml"):
        Settings.load(env={}, config_file=config)
    with pytest.raises(SettingsError, match="No such file"):
        Settings.load(env={}, config_file=tmp_path / "nope.toml")


def test_the_sasl_password_comes_only_from_env_or_a_file(tmp_path: Path) -> None:
    settings = Settings.load(env={"FRICTIONWATCH_SASL_PASSWORD": "s3cret"})
    assert settings.sasl_password == "s3cret"
    assert "s3cret" not in repr(settings)
    assert ("sasl_password", "***", "SASL password: env FRICTIONWATCH_SASL_PASSWORD only") in settings.describe()
    secret_file = tmp_path / "password"
    secret_file.write_text("from-file\n")
    assert Settings.load(env={"FRICTIONWATCH_SASL_PASSWORD_FILE": str(secret_file)}).sasl_password == "from-file"
    with pytest.raises(SettingsError, match="can't be given as a flag"):
        Settings.load(cli={"sasl_password": "x"}, env={})
    config = tmp_path / "fw.toml"
    config.write_text('sasl_password = "x"\n')
    with pytest.raises(SettingsError, match="not a file"):
        Settings.load(env={}, config_file=config)


def test_defaults_bind_to_loopback() -> None:
    settings = Settings.load(env={})
    assert settings.metrics_host == "127.0.0.1" and settings.broker_host == "127.0.0.1"
    assert settings.web_port == 0


def test_contact_timeout_is_a_setting_that_reaches_the_contact_centre(tmp_path: Path) -> None:
    from frictionwatch.streams.stage import ContactState, StageSettings

    config = tmp_path / "fw.toml"
    config.write_text("contact_timeout = 900\n")
    assert Settings.load(env={}, config_file=config).contact_timeout == 900.0
    assert Settings.load(env={"FRICTIONWATCH_CONTACT_TIMEOUT": "600"}, config_file=config).contact_timeout == 600.0
    settings = Settings.load(cli={"contact_timeout": 300.0}, env={"FRICTIONWATCH_CONTACT_TIMEOUT": "600"})
    assert ContactState(StageSettings.from_settings(settings)).centre.contact_timeout == 300.0
    assert ContactState(StageSettings.from_settings(Settings())).centre.contact_timeout == 4 * 3600.0
    with pytest.raises(SettingsError, match="contact_timeout must be > 0"):
        Settings.load(env={"FRICTIONWATCH_CONTACT_TIMEOUT": "0"})
