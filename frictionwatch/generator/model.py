"""How customers behave on a journey map: the traffic model the simulation walks.

:func:`build_model` derives a :class:`TrafficModel` for ANY valid journey map. Steps and
queues with well-known names (landing, search, payment, billing, chat, ...) get hand-made
click targets, error codes and timings; every other name gets defaults derived from its
position in the journey and its stage, so a new map produces plausible traffic too.

Defaults, per journey of n steps (a scenario's ``baseline`` overrides weights and continuation):

* journey weight: 4 for purchase-like names (purchase, buy, order, checkout, shop), else 1;
* entry: 85% of sessions start at the first step, the rest land deeper (ads, links, in
  store), halving with each step; the channel is drawn by popularity (web 55%, app 38%, ...);
* continuation (chance to move on from step i to i+1): 0.7 at the first step rising
  linearly to 0.9 at the step before the last (landing->search 0.7 ... payment->
  confirmation 0.9 in the example), except where people are known to stop: product->cart
  0.6, article->contact_options 0.35 (self-service works), contact_options->chat 0.6;
  a goal step that is not the last continues with 0.3;
* back-tracking to an earlier step: 5% of visits after the first step;
* dwell: lognormal, median by step name or stage (15 s landing ... 90 s checkout), sigma 0.8;
  a click every 20 s on average while on the step;
* errors: 1% of visits (2% on payment-like steps); rage clicks: 2% of visits, 35% after an error.

The model is immutable and hashable, so its calibration (events per session) is cached.
"""

from __future__ import annotations

import itertools
from bisect import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from random import Random
from typing import TypeVar

from frictionwatch.generator.scenario import Baseline
from frictionwatch.journeymap import ContactChannel, Journey, JourneyMap, Step

ENTRY_AT_FIRST_STEP = 0.85
BACKTRACK = 0.05
BASE_ERROR_RATE = 0.01
DWELL_SIGMA = 0.8
CLICK_GAP_SECONDS = 20.0


@dataclass(frozen=True, slots=True)
class _Habits:
    """What people do on a well-known step: median dwell (s), click targets (the first is the one
    they rage at), error codes, and a continuation that differs from the positional default."""

    dwell: float
    targets: tuple[str, ...]
    error_codes: tuple[str, ...]
    continuation: float | None = None


_KNOWN_STEPS = {
    "landing": _Habits(15.0, ("#hero-cta", "#nav-search", "#promo-banner", "#menu"), ("HTTP_503", "CDN_TIMEOUT")),
    "search": _Habits(
        40.0,
        ("#search-button", "#search-input", "#filter-price", "#sort", ".result-item"),
        ("SEARCH_TIMEOUT", "HTTP_500"),
    ),
    "product": _Habits(
        60.0,
        ("#add-to-cart", "#size-select", "#gallery-next", "#reviews-tab"),
        ("STOCK_503", "HTTP_500"),
        continuation=0.6,
    ),
    "cart": _Habits(
        30.0, ("#checkout-button", "#qty-plus", "#remove-item", "#promo-code"), ("CART_409", "PROMO_INVALID")
    ),
    "checkout": _Habits(
        90.0, ("#continue-to-payment", "#address-form", "#delivery-option"), ("ADDR_INVALID", "SHIP_503")
    ),
    "payment": _Habits(
        60.0, ("#pay-now", "#card-number", "#paypal", "#3ds-confirm"), ("PAY_502", "PAY_DECLINED", "3DS_TIMEOUT")
    ),
    "confirmation": _Habits(20.0, ("#order-details", "#continue-shopping"), ("HTTP_500",)),
    "help_centre": _Habits(30.0, ("#help-search", ".topic-link", "#faq-toggle"), ("HTTP_500",)),
    # Most people find their answer in the article and leave: self-service works.
    "article": _Habits(75.0, ("#helpful-no", "#helpful-yes", ".related-article"), ("HTTP_404",), continuation=0.35),
    "contact_options": _Habits(
        25.0, ("#start-chat", "#call-us", "#email-us"), ("CHAT_UNAVAILABLE", "HTTP_500"), continuation=0.6
    ),
    "chat": _Habits(240.0, ("#chat-send", "#chat-attach", "#chat-end"), ("CHAT_DISCONNECTED", "WS_1006")),
    "resolved": _Habits(15.0, ("#rate-us", "#close"), ("HTTP_500",)),
}
_STAGE_DWELL = {"awareness": 20.0, "consideration": 45.0, "purchase": 50.0, "retention": 60.0, "advocacy": 30.0}

# Contact-centre channels: (median handle s, mean patience s or None = never abandons,
# concurrent contacts per agent, median extra backlog wait s, how often customers pick it).
_KNOWN_CHANNELS: dict[str, tuple[float, float | None, int, float, float]] = {
    "phone": (300.0, 110.0, 1, 0.0, 0.45),
    "chat": (420.0, 150.0, 2, 0.0, 0.30),
    "email": (600.0, None, 1, 2700.0, 0.15),
    "callback": (300.0, 1200.0, 1, 0.0, 0.10),
    "messenger": (480.0, 600.0, 3, 0.0, 0.15),  # asynchronous: agents juggle chats, customers wait longer
    "store": (600.0, 900.0, 1, 0.0, 0.10),  # a walk-in desk
}
_DEFAULT_CHANNEL = (300.0, 120.0, 1, 0.0, 0.2)

# Why customers contact us -> words in queue names that handle it.
CONTACT_TOPICS: dict[str, frozenset[str]] = {
    "billing": frozenset({"billing", "payment", "payments", "finance", "invoice", "refunds"}),
    "technical": frozenset({"technical", "tech", "it", "helpdesk", "support"}),
    "orders": frozenset({"orders", "order", "sales", "delivery", "general", "service"}),
}
_BILLING_WORDS = ("pay", "bill", "checkout", "invoice")
_CONTACT_WORDS = ("contact", "support")
_PURCHASE_WORDS = ("purchase", "buy", "order", "checkout", "shop")

# Session entry channels and their devices.
_ENTRY_CHANNEL_WEIGHTS = {"web": 0.55, "app": 0.38, "kiosk": 0.04, "store": 0.03}


@dataclass(frozen=True, slots=True)
class StepModel:
    """Behaviour on one journey step. ``uid`` numbers the steps of the whole map."""

    uid: int
    journey: str
    name: str
    index: int
    channels: tuple[str, ...]
    goal: bool
    surveys: tuple[str, ...]
    continuation: float
    backtrack: float
    dwell_median: float
    error_rate: float
    targets: tuple[str, ...]
    error_codes: tuple[str, ...]
    contact_on_exit: float
    contact_topic: str
    contact_channels: tuple[str, ...]
    channel_weights: tuple[float, ...]  # cumulative, for :func:`pick`


@dataclass(frozen=True, slots=True)
class JourneyModel:
    """A journey's steps and how sessions enter it."""

    name: str
    weight: float
    steps: tuple[StepModel, ...]
    entry_weights: tuple[float, ...]  # cumulative, for :func:`pick`
    session_timeout: float


@dataclass(frozen=True, slots=True)
class ChannelProfile:
    """How a contact-centre channel works (see ``_KNOWN_CHANNELS``)."""

    handle_median: float
    patience_mean: float | None
    concurrency: int
    backlog_median: float
    weight: float


@dataclass(frozen=True, slots=True)
class QueueModel:
    """One contact-centre queue. ``uid`` numbers the queues of the map."""

    uid: int
    channel: str
    queue: str
    surveys: tuple[str, ...]
    profile: ChannelProfile
    topics: frozenset[str]


@dataclass(frozen=True, slots=True)
class TrafficModel:
    """Everything the simulation needs to know about the map, as plain immutable data."""

    journeys: tuple[JourneyModel, ...]
    queues: tuple[QueueModel, ...]

    @property
    def steps(self) -> tuple[StepModel, ...]:
        return tuple(step for journey in self.journeys for step in journey.steps)


def build_model(journey_map: JourneyMap, baseline: Baseline | None = None) -> TrafficModel:
    """The traffic model of ``journey_map``, with the scenario's ``baseline`` tuning applied."""
    baseline = baseline or Baseline()
    uids = itertools.count()
    journeys = tuple(_journey_model(journey, journey_map, baseline, uids) for journey in journey_map.journeys.values())
    queues = tuple(
        _queue_model(uid, channel, queue)
        for uid, (channel, queue) in enumerate(
            (channel, queue) for channel in journey_map.contact_channels.values() for queue in channel.queues
        )
    )
    return TrafficModel(journeys, queues)


_T = TypeVar("_T")


def pick(rng: Random, items: Sequence[_T], cumulative: Sequence[float]) -> _T:
    """One of ``items`` by cumulative weights: ``random.choices`` without its overhead."""
    return items[bisect(cumulative, rng.random() * cumulative[-1])]


def default_continuation(index: int, length: int) -> float:
    """Chance of moving on from step ``index`` of a journey of ``length`` steps (0.7 rising to 0.9)."""
    if length <= 2:
        return 0.8
    return 0.7 + 0.2 * min(index, length - 2) / (length - 2)


def _journey_model(
    journey: Journey, journey_map: JourneyMap, baseline: Baseline, uids: itertools.count[int]
) -> JourneyModel:
    steps = tuple(_step_model(next(uids), journey, step, journey_map, baseline) for step in journey.steps)
    weight = baseline.weight(journey.name)
    if weight is None:
        weight = 4.0 if any(word in journey.name for word in _PURCHASE_WORDS) else 1.0
    # Most sessions start at the first step; the rest land deeper (ads, links, in store), fewer the deeper.
    deeper = [index for index, step in enumerate(steps) if index > 0 and not step.goal]
    entry = [0.0] * len(steps)
    entry[0] = ENTRY_AT_FIRST_STEP if deeper else 1.0
    for rank, index in enumerate(deeper):
        entry[index] = (1.0 - ENTRY_AT_FIRST_STEP) * 0.5 ** (rank + 1) / (1.0 - 0.5 ** len(deeper))
    return JourneyModel(journey.name, weight, steps, tuple(itertools.accumulate(entry)), journey.session_timeout)


def _step_model(uid: int, journey: Journey, step: Step, journey_map: JourneyMap, baseline: Baseline) -> StepModel:
    habits = _KNOWN_STEPS.get(step.name) or _Habits(
        _STAGE_DWELL.get(step.stage, 45.0),
        (f"#{step.name}-primary", f"#{step.name}-secondary", "#menu", "#back"),
        (f"{step.name.upper()}_500", "HTTP_503"),
    )
    last = step.index == len(journey.steps) - 1
    continuation = baseline.continuation_for(journey.name, step.name)
    if continuation is None and not last:
        continuation = habits.continuation
    if continuation is None:
        continuation = 0.0 if last else 0.3 if step.goal else default_continuation(step.index, len(journey.steps))
    billing = any(word in step.name for word in _BILLING_WORDS)
    contact_step = any(word in step.name for word in _CONTACT_WORDS)
    return StepModel(
        uid=uid,
        journey=journey.name,
        name=step.name,
        index=step.index,
        channels=step.channels,
        goal=step.goal,
        surveys=step.surveys,
        continuation=continuation,
        backtrack=BACKTRACK if step.index > 0 and not step.goal else 0.0,
        dwell_median=habits.dwell,
        error_rate=BASE_ERROR_RATE * (2.0 if billing else 1.0),
        targets=habits.targets,
        error_codes=habits.error_codes,
        contact_on_exit=0.5 if contact_step else 0.02,
        contact_topic="billing" if billing else "orders",
        contact_channels=tuple(channel for channel in step.channels if channel in journey_map.contact_channels),
        channel_weights=tuple(
            itertools.accumulate(_ENTRY_CHANNEL_WEIGHTS.get(channel, 0.05) for channel in step.channels)
        ),
    )


def _queue_model(uid: int, channel: ContactChannel, queue: str) -> QueueModel:
    profile = ChannelProfile(*_KNOWN_CHANNELS.get(channel.name, _DEFAULT_CHANNEL))
    words = set(queue.split("_"))
    topics = frozenset(topic for topic, topic_words in CONTACT_TOPICS.items() if words & topic_words)
    return QueueModel(uid, channel.name, queue, channel.surveys, profile, topics)
