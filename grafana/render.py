"""A dashboard builder as the JSON Grafana loads: panel ids and query refIds filled in, keys
sorted, so the same code always gives the same bytes."""

from __future__ import annotations

import json
import string
from typing import Any

from grafana_foundation_sdk.builders.dashboard import Dashboard
from grafana_foundation_sdk.cog.encoder import JSONEncoder


def as_dict(dashboard: Dashboard) -> dict[str, Any]:
    """The dashboard's JSON model, with unique panel ids (1, 2, ... in layout order) and refIds A, B, ..."""
    model: dict[str, Any] = json.loads(json.dumps(dashboard.build(), cls=JSONEncoder))
    panels = [panel for top in model.get("panels", []) for panel in (top, *top.get("panels", []))]
    for number, panel in enumerate(panels, start=1):
        panel["id"] = number
        for target, ref_id in zip(panel.get("targets", []), string.ascii_uppercase, strict=False):
            target["refId"] = ref_id
    return model


def as_json(dashboard: Dashboard) -> str:
    return json.dumps(as_dict(dashboard), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
