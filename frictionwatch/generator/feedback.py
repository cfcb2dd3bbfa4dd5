"""Survey answers: who answers, and how friction turns into worse scores.

Every score comes from a latent satisfaction between 0 and 1: about 0.82 for a smooth
experience, minus the friction the customer met (errors, rage clicks, back-tracking, long
waits, abandoned or transferred contacts, repeat contacts) and minus the severity of a
``feedback_collapse`` incident on the touchpoint, plus noise. It maps linearly onto the
survey's range (csat 1-5, nps 0-10, ces 1-7; higher is better for all three).

>>> from random import Random
>>> rng = Random(1)
>>> happy = sum(score(rng, "csat", 0.0, 0.0) for _ in range(1000)) / 1000
>>> upset = sum(score(rng, "csat", 0.6, 0.0) for _ in range(1000)) / 1000
>>> happy > 4.0 > 2.5 > upset
True
"""

from __future__ import annotations

from random import Random
from typing import Final

from frictionwatch.contract import SURVEY_RANGES

# Chance that a customer answers a survey offered after reaching a goal or a resolved contact.
RESPONSE_RATES: Final = {"csat": 0.25, "nps": 0.15, "ces": 0.2}
# Surveys on steps the customer merely passes (such as ces on checkout) are answered less often.
PASSING_RESPONSE_FACTOR: Final = 0.3
SATISFIED: Final = 0.82
NOISE: Final = 0.15
MAX_FRICTION: Final = 0.75

# How much each kind of friction lowers satisfaction.
ERROR_FRICTION: Final = 0.25
RAGE_FRICTION: Final = 0.2
BACKTRACK_FRICTION: Final = 0.05
SLOW_PAGE_FRICTION: Final = 0.1
ABANDON_FRICTION: Final = 0.3
TRANSFER_FRICTION: Final = 0.15
REPEAT_FRICTION: Final = 0.15


def wait_friction(wait_seconds: float) -> float:
    """Friction of waiting in a queue: nothing for a few seconds, 0.4 from ten minutes on."""
    return min(0.4, max(0.0, wait_seconds - 10.0) / 1500.0)


def score(rng: Random, survey: str, friction: float, severity: float) -> int:
    """A ``survey`` score given after ``friction``, with a feedback collapse of ``severity``."""
    satisfaction = SATISFIED - min(friction, MAX_FRICTION) - severity + rng.gauss(0.0, NOISE)
    satisfaction = min(1.0, max(0.0, satisfaction))
    low, high = SURVEY_RANGES[survey]
    return low + round(satisfaction * (high - low))
