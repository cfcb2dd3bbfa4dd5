"""Every dashboard, by the file it is written to (its slug: Grafana's URL is /d/<uid>/<slug>)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

from grafana_foundation_sdk.builders.dashboard import Dashboard

from frictionwatch.grafana import contact_centre, detectors, feedback, journeys, pipeline

#: file name (slug.json) -> the function that builds the dashboard.
DASHBOARDS: Final[Mapping[str, Callable[[], Dashboard]]] = {
    "journey-friction-overview.json": journeys.dashboard,
    "contact-centre.json": contact_centre.dashboard,
    "detector-tuning.json": detectors.dashboard,
    "feedback.json": feedback.dashboard,
    "pipeline-health.json": pipeline.dashboard,
}
