"""Write the dashboards as JSON: ``python -m frictionwatch.grafana [--check] [--out DIR]``.

Without options it (re)writes ``grafana/dashboards/*.json`` next to this code. ``--check``
writes nothing and exits 1 if a committed file differs from what the code makes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from frictionwatch.grafana.catalogue import DASHBOARDS
from frictionwatch.grafana.render import as_json

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m frictionwatch.grafana", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "dashboards", help="directory for the JSON files")
    parser.add_argument("--check", action="store_true", help="compare with the files there instead of writing")
    options = parser.parse_args(argv)
    stale = []
    for name, build in DASHBOARDS.items():
        path = options.out / name
        text = as_json(build())
        if options.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(path)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    for path in stale:
        print(f"{path} differs from the code: run python -m frictionwatch.grafana", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
