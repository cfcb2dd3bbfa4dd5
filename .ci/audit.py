"""Dependency audit for CI (run by scripts/audit with the project's Python).

1. Offline floor: every installed distribution is checked against .ci/known-vulnerable.txt;
   a match fails the build.
2. pip-audit (installed from PyPI into .venv-audit) over the installed distributions. It
   needs a vulnerability service: PyPI's per-release JSON API or OSV. Where neither can be
   reached, pip-audit skips every package and still says "No known vulnerabilities found";
   this script detects that and says so loudly instead (exit 0, or 1 with AUDIT_STRICT=1).

Usage: python .ci/audit.py PIP_AUDIT_EXECUTABLE [REQUIREMENTS]   (REQUIREMENTS: audit those
pins instead of the installed environment, e.g. to prove a vulnerable pin fails)
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

HERE = Path(__file__).resolve().parent


def installed(requirements: Path | None) -> dict[str, str]:
    if requirements is None:
        return {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()}
    pins = {}
    for line in requirements.read_text().splitlines():
        match = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*==\s*([^\s;#]+)", line)
        if match:
            pins[canonicalize_name(match[1])] = match[2]
    return pins


def known_vulnerable(versions: dict[str, str]) -> list[str]:
    found = []
    for line in (HERE / "known-vulnerable.txt").read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, specifier, advisory = line.split()[:3]
        version = versions.get(canonicalize_name(name))
        if version is not None and SpecifierSet(specifier).contains(version, prereleases=True):
            found.append(f"{name} {version} ({advisory}; fixed in versions outside {specifier})")
    return found


def pip_audit(executable: str, versions: dict[str, str]) -> tuple[int, list[str], list[str]]:
    """(vulnerabilities, audited, skipped) from pip-audit over ``versions`` (pins, no deps)."""
    with tempfile.TemporaryDirectory() as directory:
        requirements = Path(directory) / "requirements.txt"
        requirements.write_text("".join(f"{name}=={version}\n" for name, version in sorted(versions.items())))
        report = Path(directory) / "report.json"
        done = subprocess.run(
            [executable, "-r", str(requirements), "--no-deps", "--disable-pip", "--progress-spinner", "off",
             "-f", "json", "-o", str(report)],
            capture_output=True, text=True, timeout=900, check=False,
        )  # fmt: skip
        if not report.exists():
            print(done.stdout[-2000:], done.stderr[-2000:], sep="\n", file=sys.stderr)
            return -1, [], list(versions)
        doc = json.loads(report.read_text())
    vulnerable = [f"{d['name']} {d['version']}: {', '.join(v['id'] for v in d['vulns'])}"
                  for d in doc["dependencies"] if d.get("vulns")]  # fmt: skip
    for line in vulnerable:
        print(f"  pip-audit: {line}")
    audited = [d["name"] for d in doc["dependencies"] if "skip_reason" not in d]
    skipped = [d["name"] for d in doc["dependencies"] if "skip_reason" in d]
    return len(vulnerable), audited, skipped


def main() -> int:
    executable = sys.argv[1]
    requirements = Path(sys.argv[2]) if len(sys.argv) > 2 else None
    versions = installed(requirements)
    versions.pop("frictionwatch", None)  # the project itself is not on PyPI
    failed = False
    floor = known_vulnerable(versions)
    for line in floor:
        print(f"  known vulnerable: {line}")
    failed |= bool(floor)
    print(f"==> offline check: {len(versions)} distributions, {len(floor)} known vulnerable")
    vulnerable, audited, skipped = pip_audit(executable, versions)
    failed |= vulnerable != 0
    if skipped and not audited:
        print(
            "==> WARNING: DEPENDENCY AUDIT DEGRADED: pip-audit could not audit any of "
            f"{len(skipped)} distributions: its vulnerability services (PyPI's per-release JSON API "
            "https://pypi.org/pypi/NAME/VERSION/json, OSV https://api.osv.dev) are not reachable from this "
            "machine. Only the offline list .ci/known-vulnerable.txt was checked.",
            file=sys.stderr,
        )
        if os.environ.get("AUDIT_STRICT") == "1":
            return 1
    else:
        print(f"==> pip-audit: {len(audited)} audited, {len(skipped)} skipped, {vulnerable} vulnerable")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
