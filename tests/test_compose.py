"""docker-compose.yml and the Dockerfile agree with the code (no Docker engine runs here)."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import yaml

from frictionwatch.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[1]


def test_every_frictionwatch_variable_in_compose_is_a_setting() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    names = {ENV_PREFIX + spec.name.upper() for spec in fields(Settings)}
    used = {
        variable
        for service in compose["services"].values()
        for variable in service.get("environment", {})
        if variable.startswith(ENV_PREFIX)
    }
    assert used and used <= names, used - names


def test_the_dockerfile_copies_every_package_directory() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for directory in ("frictionwatch", "streams", "detectors", "alerts"):
        assert f"COPY {directory} ./{directory}" in dockerfile
