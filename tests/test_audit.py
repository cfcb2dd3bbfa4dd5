"""The CI dependency audit (scripts/audit, .ci/audit.py): a known-vulnerable pin fails it
even where pip-audit's vulnerability services can't be reached."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def audit_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ci_audit", ROOT / ".ci" / "audit.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_known_vulnerable_pin_is_caught_offline(tmp_path: Path) -> None:
    audit = audit_module()
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("PyYAML==5.3\naiohttp==3.14.5\nsetuptools==80.9.0\n")
    found = audit.known_vulnerable(audit.installed(requirements))
    assert len(found) == 1 and "CVE-2020-14343" in found[0]
    requirements.write_text("PyYAML==6.0.2\n")
    assert audit.known_vulnerable(audit.installed(requirements)) == []


def test_the_audit_fails_the_build_on_a_vulnerable_pin(tmp_path: Path) -> None:
    """The whole script, with pip-audit stood in by a command that reports nothing (offline)."""
    fake = tmp_path / "pip-audit"
    fake.write_text(
        "#!/usr/bin/env python3\nimport json, sys\nout = sys.argv[sys.argv.index('-o') + 1]\n"
        "json.dump({'dependencies': [{'name': 'pyyaml', 'skip_reason': 'Dependency not found on PyPI'}],"
        " 'fixes': []}, open(out, 'w'))\n"
    )
    fake.chmod(0o755)
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("PyYAML==5.3\n")
    done = subprocess.run(
        [sys.executable, str(ROOT / ".ci" / "audit.py"), str(fake), str(requirements)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1 and "CVE-2020-14343" in done.stdout
    assert "DEPENDENCY AUDIT DEGRADED" in done.stderr  # said loudly, not silently passed
    requirements.write_text("PyYAML==6.0.2\n")
    done = subprocess.run(
        [sys.executable, str(ROOT / ".ci" / "audit.py"), str(fake), str(requirements)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0 and "DEGRADED" in done.stderr
