"""The traffic level arrivals follow: the daily pattern, reshaped by holidays and traffic surges.

:class:`Volume` is what the simulation thins its Poisson arrivals by and what the contact
centre's forecast plans staff for, so a surge or a holiday changes how many people come
but not how they fare (both are controls: they must not alert). Campaign visitors
(``campaign_mix``) arrive on their own actor; :meth:`Volume.contact_multiplier` adds
them to the contact forecast.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from frictionwatch.generator.curves import TrafficPattern
from frictionwatch.generator.scenario import Incident


class Volume:
    """Relative traffic at an epoch time (1 = the mean rate) and an upper bound of it."""

    def __init__(
        self,
        pattern: TrafficPattern,
        incidents: Sequence[Incident] = (),
        journey_shares: Mapping[str, float] | None = None,
    ) -> None:
        self.pattern = pattern
        self.surges = tuple(incident for incident in incidents if incident.kind == "traffic_surge")
        self.holidays = tuple(incident for incident in incidents if incident.kind == "holiday")
        shares = journey_shares or {}
        self.campaigns = tuple(
            (incident, shares.get(incident.journey or "", 0.0))
            for incident in incidents
            if incident.kind == "campaign_mix"
        )
        self.plain = not self.surges and not self.holidays
        surge_peak = math.prod(max(1.0, incident.parameter("factor")) for incident in self.surges)
        holiday_peak = max((incident.parameter("volume") for incident in self.holidays), default=1.0)
        self.peak = pattern.peak * surge_peak * max(1.0, holiday_peak)
        self.level = pattern.level if self.plain else self._level

    def _level(self, t: float) -> float:
        return self.pattern.level(t) * self.multiplier(t)

    def multiplier(self, t: float) -> float:
        """The level at ``t`` over the plain pattern's: surges and holidays."""
        factor = 1.0
        for holiday in self.holidays:
            if holiday.active(t):
                factor *= holiday.parameter("volume") * self._holiday_shape(t, holiday.parameter("shift"))
        for surge in self.surges:
            factor *= surge.scaled("factor", 1.0, t)
        return factor

    def contact_multiplier(self, t: float) -> float:
        """Sessions at ``t`` over the plain pattern's, campaign visitors included (for staffing)."""
        factor = 1.0 if self.plain else self.multiplier(t)
        for campaign, journey_share in self.campaigns:
            factor += factor * journey_share * campaign.scaled("share", 0.0, t)
        return factor

    def _holiday_shape(self, t: float, shift: float) -> float:
        """The daily curve run ``shift`` seconds later, over the usual one at ``t``."""
        if self.pattern.flat:
            return 1.0
        return self.pattern.daily(t - shift) / self.pattern.daily(t)
