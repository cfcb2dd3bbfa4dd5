"""Survey scores (CSAT, NPS, CES) per event-time window and rated touchpoint (pure math, no I/O).

Each answer adds to the window holding its ``ts``, on the touchpoint it rates together with
its survey: ``Touchpoint(journey, step, channel, queue, survey)`` with "" for what the answer
does not name, so a rated step and a rated queue are different touchpoints.

Window fields:

    ``responses``        +1 per answer
    ``score_sum``        + the answer's score
    ``csat_satisfied``   +1 per CSAT answer of 4 or 5 (on 1-5)
    ``nps_promoters``    +1 per NPS answer of 9 or 10 (on 0-10)
    ``nps_detractors``   +1 per NPS answer of 0 to 6 (7 and 8 are passives: counted in responses only)

Derived by :func:`feedback_scores` (None with no responses):

    CSAT = csat_satisfied / responses                          (a share, 0 to 1)
    NPS  = (nps_promoters - nps_detractors) / responses * 100  (-100 to 100)
    CES  = score_sum / responses                               (the mean on 1-7)

>>> from frictionwatch.contract import FeedbackEvent
>>> from frictionwatch.streams.windows import WindowedCounts
>>> scores, windows = FeedbackScores(), WindowedCounts(size=60)
>>> for n, score in enumerate([10, 9, 8, 3]):
...     _ = scores.add(FeedbackEvent(f"f{n}", 10.0, "nps", score, channel="phone", queue="billing"), windows)
>>> [window] = windows.advance(60.0)
>>> feedback_scores("nps", window.counts[Touchpoint(channel="phone", queue="billing", survey="nps")])
25.0
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from frictionwatch.contract import FeedbackEvent
from frictionwatch.streams.windows import Touchpoint, WindowedCounts

CSAT_SATISFIED_MIN: Final = 4
NPS_PROMOTER_MIN: Final = 9
NPS_DETRACTOR_MAX: Final = 6


class FeedbackScores:
    """Counts survey answers per window and rated touchpoint; it keeps no per-customer state."""

    def add(self, event: FeedbackEvent, windows: WindowedCounts) -> bool:
        """Count ``event`` in the window of its ``ts``; False when that window was already closed."""
        place = Touchpoint(event.journey or "", event.step or "", event.channel or "", event.queue or "", event.survey)
        ts, score = event.ts, event.score
        if not windows.add(ts, place, "responses"):
            return False
        windows.add(ts, place, "score_sum", score)
        if event.survey == "csat":
            if score >= CSAT_SATISFIED_MIN:
                windows.add(ts, place, "csat_satisfied")
        elif event.survey == "nps":
            if score >= NPS_PROMOTER_MIN:
                windows.add(ts, place, "nps_promoters")
            elif score <= NPS_DETRACTOR_MAX:
                windows.add(ts, place, "nps_detractors")
        return True


def feedback_scores(survey: str, fields: Mapping[str, float]) -> float | None:
    """CSAT (0-1), NPS (-100..100) or CES (mean, 1-7) of one window's fields; None with no responses.

    >>> feedback_scores("csat", {"responses": 4, "score_sum": 15, "csat_satisfied": 3})
    0.75
    >>> feedback_scores("ces", {"responses": 4, "score_sum": 10}), feedback_scores("nps", {})
    (2.5, None)
    """
    responses = fields.get("responses", 0.0)
    if survey not in ("csat", "nps", "ces"):
        raise ValueError(f"unknown survey {survey!r}; expected csat, nps or ces")
    if responses <= 0:
        return None
    if survey == "csat":
        return fields.get("csat_satisfied", 0.0) / responses
    if survey == "nps":
        return (fields.get("nps_promoters", 0.0) - fields.get("nps_detractors", 0.0)) / responses * 100
    return fields.get("score_sum", 0.0) / responses
