"""The traffic simulation: sessions walking journeys, contacts queueing, customers rating.

A discrete-event simulation. Every actor (a session, a contact, a survey answer, the
arrival process) is a Python generator yielding ``(time, event or None)``; a heap holds
each actor's next event, so events come out in event-time order however many sessions
overlap. One seeded :class:`random.Random` drives everything, so the same seed and
arguments give the same events.

* Arrivals: a Poisson process (thinned to follow :class:`TrafficPattern`) starts sessions
  and, 2% as often, contacts that no session caused.
* Sessions pick a journey (by weight), an entry step (mostly the first), a channel and
  device, maybe a known customer (60%, from a pool so customers come back), then walk:
  a ``step`` event, ``click`` events while on the step, sometimes an ``error`` and a rage
  burst (3-6 clicks on one target within a second), then move on, go back, or leave
  (30% with an explicit ``exit``, the rest go silent). A goal step ends the session.
* Sessions leaving in trouble (an error, a contact-options step) may open a contact;
  steps on a contact-centre channel (the support journey's chat) open one and wait for
  it: an abandoned contact ends the session there, an answered one goes on as usual.
* Contacts are ``queued``, then ``answered`` or ``abandoned`` (with ``wait_seconds``),
  then ``resolved`` or ``transferred``; see :mod:`~frictionwatch.generator.contacts`.
  Abandoned and frustrated customers contact again within 24 h, often on another channel.
* Surveys listed on goal steps and contact channels are answered now and then, with
  scores lowered by the friction met on the way (:mod:`~frictionwatch.generator.feedback`);
  the answers arrive the baseline's ``feedback_delay`` later (lognormal around 2 min).
* Incidents change the conditions of the visits and contacts they touch, in proportion to
  their :meth:`~frictionwatch.generator.scenario.Incident.strength` at the time (ramps);
  controls reshape the volume (:mod:`~frictionwatch.generator.volume`) or, for
  ``campaign_mix``, add sessions entering at a step on an arrival process of their own.

:func:`calibrate` measures the events a session brings (including its contacts and
answers) so the arrival rate can be set from the requested events per second.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from operator import itemgetter
from random import Random
from typing import Any, Final, TypeAlias

from frictionwatch.generator import feedback
from frictionwatch.generator.contacts import ContactCentre, ContactPlan
from frictionwatch.generator.curves import HOUR, TrafficPattern
from frictionwatch.generator.devices import DEVICES
from frictionwatch.generator.model import (
    CLICK_GAP_SECONDS,
    DWELL_SIGMA,
    JourneyModel,
    StepModel,
    TrafficModel,
    pick,
)
from frictionwatch.generator.records import CLICKS, CONTACTS, FEEDBACK
from frictionwatch.generator.scenario import FeedbackDelay, Incident
from frictionwatch.generator.volume import Volume

Event: TypeAlias = dict[str, Any]
Actor: TypeAlias = Iterator[tuple[float, Event | None]]
# An actor on the heap: its generator, the topic kind of its events and their key (None: the event_id).
_Running: TypeAlias = tuple[Actor, str, str | None]

INDEPENDENT_CONTACTS: Final = 0.02  # contacts per session that no session caused
KNOWN_CUSTOMER: Final = 0.6
IDENTIFIED_BY_CONTACT_CENTRE: Final = 0.8
VISITS_PER_SESSION: Final = 40
EXPLICIT_EXIT: Final = 0.3
MIN_DWELL: Final = 2.0
RAGE_RATE: Final = 0.02
RAGE_AFTER_ERROR: Final = 0.35
CONTINUATION_AFTER_ERROR: Final = 0.5
CONTACT_AFTER_ERROR: Final = 0.3
CONTACT_DELAY_MEDIAN: Final = 90.0
REPEAT_AFTER_ABANDON: Final = 0.45
REPEAT_AFTER_RESOLVE: Final = 0.06
SWITCH_CHANNEL: Final = 0.6
INDEPENDENT_TOPICS: Final = ("orders", "billing", "technical")
INDEPENDENT_TOPIC_WEIGHTS: Final = (0.5, 0.8, 1.0)  # cumulative
BASELINE_DELAY: Final = FeedbackDelay()
_CLICK_RATE: Final = 1.0 / CLICK_GAP_SECONDS
CALIBRATION_SEED: Final = 20_261_124
CALIBRATION_SECONDS: Final = 3000.0


@dataclass(slots=True)
class Session:
    """A customer's visit: where they are and the friction they met so far."""

    id: str
    journey: JourneyModel
    customer: str | None
    channel: str
    device: str | None
    friction: float = 0.0


@dataclass(frozen=True, slots=True)
class Calibration:
    """Measured per started session: events it brings (with its contacts, answers and its
    share of independent contacts) and contacts it sends to each queue (by queue uid)."""

    events_per_session: float
    contacts_per_session: tuple[float, ...]


class Simulation:
    """The event heap and the actors that fill it; :meth:`run` yields events in time order."""

    def __init__(
        self,
        model: TrafficModel,
        *,
        rng: Random,
        start: float,
        session_rate: float,
        pattern: TrafficPattern,
        incidents: Sequence[Incident] = (),
        calibration: Calibration | None = None,
        id_prefix: str = "g",
        arrivals_until: float = math.inf,
        feedback_delay: FeedbackDelay = BASELINE_DELAY,
    ) -> None:
        self.model = model
        self.rng = rng
        self.start = start
        self.session_rate = session_rate
        self.pattern = pattern
        self.id_prefix = id_prefix
        self.arrivals_until = arrivals_until
        self.feedback_delay = feedback_delay
        total_weight = sum(journey.weight for journey in model.journeys) or 1.0
        shares = {journey.name: journey.weight / total_weight for journey in model.journeys}
        self.volume = Volume(pattern, incidents, shares)
        self.contact_centre = ContactCentre(
            model, self.volume, session_rate, calibration.contacts_per_session if calibration else None, incidents
        )
        self.step_incidents = [
            tuple(i for i in incidents if (i.journey, i.step) == (step.journey, step.name)) for step in model.steps
        ]
        collapses = [incident for incident in incidents if incident.kind == "feedback_collapse"]
        self.queue_incidents = [
            tuple(i for i in collapses if i.channel == queue.channel and queue.queue in i.queues)
            for queue in model.queues
        ]
        self.customers = max(1000, int(session_rate * 86400 * KNOWN_CUSTOMER / 3))
        self.sessions_started = 0
        self.contacts_started = [0] * len(model.queues)
        self._journey_weights = list(itertools.accumulate(journey.weight for journey in model.journeys))
        self._heap: list[tuple[float, int, Event | None, _Running]] = []
        self._sequence = itertools.count().__next__
        self._serial = itertools.count(1).__next__
        self.spawn(self._arrivals(), "", None)
        for campaign, share in self.volume.campaigns:
            self.spawn(self._campaign_arrivals(campaign, share), "", None)

    # -- the event loop -------------------------------------------------------------

    def spawn(self, actor: Actor, kind: str, key: str | None) -> None:
        """Start ``actor``: run it to its first event and put that on the heap."""
        first = next(actor, None)
        if first is not None:
            heapq.heappush(self._heap, (first[0], self._sequence(), first[1], (actor, kind, key)))

    def run(self, end: float = math.inf) -> Iterator[tuple[str, str | None, Event]]:
        """(topic kind, key, event) in event-time order, until event time reaches ``end``."""
        heap, sequence = self._heap, self._sequence
        pop, push = heapq.heappop, heapq.heappush
        while heap:
            ts, _, event, running = pop(heap)
            if ts >= end:
                return
            following = next(running[0], None)
            if following is not None:
                push(heap, (following[0], sequence(), following[1], running))
            if event is not None:
                yield running[1], running[2], event

    # -- arrivals -------------------------------------------------------------------

    def _arrivals(self) -> Actor:
        """Sessions and independent contacts as a Poisson process following the traffic pattern."""
        rng, level, peak = self.rng, self.volume.level, self.volume.peak
        total_rate = self.session_rate * (1.0 + INDEPENDENT_CONTACTS) * peak
        session_share = 1.0 / (1.0 + INDEPENDENT_CONTACTS)
        t = self.start
        while True:
            t += rng.expovariate(total_rate)
            if t >= self.arrivals_until:
                return
            if rng.random() * peak >= level(t):
                continue  # thinning: keep arrivals in proportion to the traffic level
            yield t, None
            if rng.random() < session_share:
                self.sessions_started += 1
                session, entry = self._new_session()
                self.spawn(self._session(session, entry, t), CLICKS, session.id)
            else:
                topic = pick(rng, INDEPENDENT_TOPICS, INDEPENDENT_TOPIC_WEIGHTS)
                self._open_contact(t, topic, customer=self._identified(), session=None, friction=0.0)

    def _campaign_arrivals(self, campaign: Incident, journey_share: float) -> Actor:
        """Extra sessions of a ``campaign_mix``: share x the journey's sessions, entering at its step."""
        rng, level = self.rng, self.volume.level
        journey = next(journey for journey in self.model.journeys if journey.name == campaign.journey)
        entry = next(step for step in journey.steps if step.name == campaign.step)
        share = campaign.parameter("share")
        peak = self.volume.peak * share
        if peak <= 0.0:
            return
        rate = self.session_rate * journey_share * peak
        t = max(self.start, campaign.start)
        while True:
            t += rng.expovariate(rate)
            if t >= min(campaign.end, self.arrivals_until):
                return
            if rng.random() * peak >= level(t) * campaign.scaled("share", 0.0, t):
                continue
            yield t, None
            self.sessions_started += 1
            channel = campaign.channel or pick(rng, entry.channels, entry.channel_weights)
            session_id = f"s-{self.id_prefix}-{self._serial():x}"
            session = Session(session_id, journey, self._customer(), channel, self._device(channel))
            self.spawn(self._session(session, entry, t), CLICKS, session.id)

    def _new_session(self) -> tuple[Session, StepModel]:
        """A new session and the step it enters the journey at."""
        rng = self.rng
        journey = pick(rng, self.model.journeys, self._journey_weights)
        entry = pick(rng, journey.steps, journey.entry_weights)
        channel = pick(rng, entry.channels, entry.channel_weights)
        session_id = f"s-{self.id_prefix}-{self._serial():x}"
        return Session(session_id, journey, self._customer(), channel, self._device(channel)), entry

    def _customer(self) -> str | None:
        if self.rng.random() >= KNOWN_CUSTOMER:
            return None
        return f"cust-{self.rng.randrange(self.customers):07d}"

    def _device(self, channel: str) -> str | None:
        devices = DEVICES.get(channel)
        if devices is None:
            return None
        return pick(self.rng, *devices)

    # -- sessions -------------------------------------------------------------------

    def _session(self, session: Session, step: StepModel, t: float) -> Actor:
        """Walk the journey from the entry ``step`` until the session converts or leaves."""
        rng = self.rng
        steps = session.journey.steps
        for _ in range(VISITS_PER_SESSION):
            if session.channel not in step.channels:
                self._switch_channel(session, step)
            continuation, error_rate, harmless, dwell_factor = self._conditions(step, session, t)
            dwell = max(MIN_DWELL, step.dwell_median * math.exp(DWELL_SIGMA * rng.gauss(0.0, 1.0)) * dwell_factor)
            dwell = min(dwell, 0.9 * session.journey.session_timeout)
            if dwell_factor > 1.5:
                session.friction += feedback.SLOW_PAGE_FRICTION
            contact_step = session.channel in step.contact_channels
            if contact_step:
                plan = self._open_contact(
                    t + 1.0,
                    step.contact_topic,
                    channel=session.channel,
                    customer=session.customer,
                    session=session.id,
                    friction=session.friction,
                )
                if plan is not None:
                    dwell = plan.ends_at - t + 1.0
                    continuation = 0.0 if plan.abandoned else continuation
            events, had_error = self._visit(session, step, t, dwell, error_rate, harmless)
            yield from events
            t += dwell
            if had_error:
                continuation *= CONTINUATION_AFTER_ERROR
            choice = rng.random()
            moving_on = choice < continuation and step.index + 1 < len(steps)
            if step.goal:
                self._ask_surveys(session, step, t, passing=False)
                if not moving_on:
                    return
            if moving_on:
                if step.surveys and not step.goal:
                    self._ask_surveys(session, step, t, passing=True)
                step = steps[step.index + 1]
            elif choice < continuation + step.backtrack:
                session.friction += feedback.BACKTRACK_FRICTION
                step = steps[step.index - 1] if rng.random() < 0.8 else steps[rng.randrange(step.index)]
            else:
                yield from self._leave(session, step, t, had_error, contact_step)
                return

    def _conditions(self, step: StepModel, session: Session, t: float) -> tuple[float, float, float, float]:
        """(continuation, error rate, harmless error rate, dwell factor) of ``step`` for
        ``session`` at ``t``, incidents included (each in proportion to its strength then)."""
        continuation, error_rate, harmless, dwell_factor = step.continuation, step.error_rate, 0.0, 1.0
        for incident in self.step_incidents[step.uid]:
            if not incident.touches(session.channel, session.device):
                continue
            strength = incident.strength(t)
            if strength == 0.0:
                continue
            kind, value = incident.kind, incident.parameter
            if kind == "step_outage":
                continuation += strength * (min(continuation, value("continuation")) - continuation)
                error_rate += strength * (max(error_rate, value("error_rate")) - error_rate)
            elif kind in ("dropoff", "slow_drift"):
                continuation = min(1.0, continuation * (1.0 + strength * (value("factor") - 1.0)))
            elif kind == "error_burst":
                wanted = error_rate + strength * (max(error_rate, value("error_rate")) - error_rate)
                harmless = (wanted - error_rate) / (1.0 - error_rate) if error_rate < 1.0 else 0.0
            elif kind == "slow_page":
                dwell_factor *= 1.0 + strength * (value("factor") - 1.0)
        return continuation, error_rate, harmless, dwell_factor

    def _visit(
        self, session: Session, step: StepModel, t: float, dwell: float, error_rate: float, harmless: float = 0.0
    ) -> tuple[list[tuple[float, Event]], bool]:
        """The events of one visit of ``step`` from ``t`` for ``dwell`` seconds, in time order.
        ``harmless``: the chance of an extra error that changes nothing else (an error burst)."""
        rng, click, random, log = self.rng, self._click, self.rng.random, math.log
        leave = t + dwell
        arrived = click(session, step, t, "step")
        events = [(t, arrived)]
        targets, count = step.targets, len(step.targets)
        # rng.expovariate(1 / CLICK_GAP_SECONDS) inlined (the same draws), and each click a copy of the
        # step event with its own time, type and target (the same keys in the same order): the hot loop.
        at = t - log(1.0 - random()) / _CLICK_RATE
        while at < leave:
            event = arrived.copy()
            event["ts"], event["type"], event["target"] = round(at, 3), "click", targets[int(random() * count)]
            events.append((at, event))
            at -= log(1.0 - random()) / _CLICK_RATE
        had_error = rng.random() < error_rate
        rage_at: float | None = None
        if had_error:
            at = t + rng.random() * (dwell - 1.0)
            events.append((at, click(session, step, at, "error", code=rng.choice(step.error_codes))))
            session.friction += feedback.ERROR_FRICTION
            if rng.random() < RAGE_AFTER_ERROR:
                rage_at = min(at + 0.3, leave - 1.0)
        elif rng.random() < RAGE_RATE:
            rage_at = t + 0.01 + rng.random() * (dwell - 1.1)
        if rage_at is not None:
            session.friction += feedback.RAGE_FRICTION
            for _ in range(rng.randint(3, 6)):  # a burst on one target, all within a second
                events.append((rage_at, click(session, step, rage_at, "click", target=targets[0])))
                rage_at += rng.uniform(0.06, 0.18)
        unordered = had_error or rage_at is not None
        if harmless and not had_error and rng.random() < harmless:
            at = t + rng.random() * (dwell - 1.0)
            events.append((at, click(session, step, at, "error", code=rng.choice(step.error_codes))))
            unordered = True
        if len(events) > 1 and unordered:
            events.sort(key=itemgetter(0))
        return events, had_error

    def _click(
        self, session: Session, step: StepModel, t: float, kind: str, target: str | None = None, code: str | None = None
    ) -> Event:
        event: Event = {
            "schema": 1,
            "event_id": "",
            "ts": round(t, 3),
            "session_id": session.id,
            "journey": step.journey,
            "step": step.name,
            "channel": session.channel,
            "type": kind,
        }
        if session.customer is not None:
            event["customer_id"] = session.customer
        if session.device is not None:
            event["device"] = session.device
        if target is not None:
            event["target"] = target
        if code is not None:
            event["code"] = code
        return event

    def _switch_channel(self, session: Session, step: StepModel) -> None:
        """Move to a channel the step has (store -> web for the cart, web -> chat for a chat step)."""
        channel = pick(self.rng, step.channels, step.channel_weights)
        if channel in DEVICES:
            session.device = self._device(channel)
        session.channel = channel

    def _leave(self, session: Session, step: StepModel, t: float, had_error: bool, contact_step: bool) -> Actor:
        """The session leaves without converting: maybe an explicit exit, maybe a contact later
        (not after a contact step: that contact's own repeat contacts stand for it)."""
        rng = self.rng
        if rng.random() < EXPLICIT_EXIT:
            yield t, self._click(session, step, t, "exit")
        chance = step.contact_on_exit + (CONTACT_AFTER_ERROR if had_error else 0.0)
        if contact_step or rng.random() >= chance:
            return
        topic = "technical" if had_error and step.contact_topic != "billing" else step.contact_topic
        at = t + CONTACT_DELAY_MEDIAN * math.exp(rng.gauss(0.0, 1.0))
        customer = session.customer or self._identified()
        self._open_contact(at, topic, customer=customer, session=session.id, friction=session.friction)

    # -- contacts -------------------------------------------------------------------

    def _identified(self) -> str | None:
        """The contact centre knows most callers even when the web session was anonymous."""
        return self._customer_from_pool() if self.rng.random() < IDENTIFIED_BY_CONTACT_CENTRE else None

    def _customer_from_pool(self) -> str:
        return f"cust-{self.rng.randrange(self.customers):07d}"

    def _open_contact(
        self,
        t: float,
        topic: str,
        *,
        customer: str | None,
        session: str | None,
        friction: float,
        channel: str | None = None,
        avoid_channel: str | None = None,
    ) -> ContactPlan | None:
        """Queue a contact at ``t`` (None when the map has no fitting queue)."""
        queue = self.contact_centre.choose_queue(self.rng, topic, channel=channel, avoid_channel=avoid_channel)
        if queue is None:
            return None
        self.contacts_started[queue.uid] += 1
        contact_id = f"k-{self.id_prefix}-{self._serial():x}"
        plan = self.contact_centre.plan(
            self.rng,
            t,
            queue,
            contact_id=contact_id,
            topic=topic,
            customer=customer,
            session=session,
            friction=friction,
        )
        self.spawn(self._contact(plan), CONTACTS, contact_id)
        return plan

    def _contact(self, plan: ContactPlan) -> Actor:
        """A contact's lifecycle, then what it leads to: a transfer, a survey, a repeat contact."""
        yield plan.queued_at, self._contact_event(plan, plan.queued_at, "queued")
        left_queue = plan.queued_at + plan.wait
        friction = plan.friction + feedback.wait_friction(plan.wait)
        if plan.abandoned:
            yield left_queue, self._contact_event(plan, left_queue, "abandoned", plan.wait)
            self._maybe_repeat(plan, left_queue, friction + feedback.ABANDON_FRICTION, REPEAT_AFTER_ABANDON, 600.0)
            return
        yield left_queue, self._contact_event(plan, left_queue, "answered", plan.wait)
        ended = plan.ends_at
        if plan.transferred:
            yield ended, self._contact_event(plan, ended, "transferred")
            self._open_contact(
                ended,
                plan.topic,
                customer=plan.customer,
                session=plan.session,
                friction=friction + feedback.TRANSFER_FRICTION,
                channel=plan.queue.channel,
            )
            return
        yield ended, self._contact_event(plan, ended, "resolved")
        place = {"channel": plan.queue.channel, "queue": plan.queue.queue}
        collapses = self.queue_incidents[plan.queue.uid]
        self._answer_surveys(plan.queue.surveys, ended, friction, plan.customer, place, collapses, 1.0)
        chance = REPEAT_AFTER_RESOLVE + 0.25 * min(friction, 1.0)
        self._maybe_repeat(plan, ended, friction, chance, 3 * HOUR)

    def _contact_event(self, plan: ContactPlan, t: float, kind: str, wait: float | None = None) -> Event:
        event: Event = {
            "schema": 1,
            "event_id": "",
            "ts": round(t, 3),
            "contact_id": plan.contact_id,
            "channel": plan.queue.channel,
            "queue": plan.queue.queue,
            "type": kind,
        }
        if plan.customer is not None:
            event["customer_id"] = plan.customer
        if plan.session is not None:
            event["session_id"] = plan.session
        if wait is not None:
            event["wait_seconds"] = round(wait, 3)
        return event

    def _maybe_repeat(self, plan: ContactPlan, t: float, friction: float, chance: float, delay_median: float) -> None:
        """The customer contacts us again within a day, often on another channel."""
        rng = self.rng
        if rng.random() >= chance:
            return
        delay = min(23.5 * HOUR, delay_median * math.exp(rng.gauss(0.0, 1.0)))
        avoid = plan.queue.channel if rng.random() < SWITCH_CHANNEL else None
        customer = plan.customer or self._customer_from_pool()
        self._open_contact(
            t + delay,
            plan.topic,
            customer=customer,
            session=plan.session,
            friction=friction + feedback.REPEAT_FRICTION,
            avoid_channel=avoid,
        )

    # -- feedback -------------------------------------------------------------------

    def _ask_surveys(self, session: Session, step: StepModel, t: float, *, passing: bool) -> None:
        place = {"journey": step.journey, "step": step.name, "channel": session.channel}
        collapses = [
            incident
            for incident in self.step_incidents[step.uid]
            if incident.kind == "feedback_collapse" and incident.touches(session.channel, session.device)
        ]
        factor = feedback.PASSING_RESPONSE_FACTOR if passing else 1.0
        self._answer_surveys(step.surveys, t, session.friction, session.customer, place, collapses, factor)

    def _answer_surveys(
        self,
        surveys: Sequence[str],
        t: float,
        friction: float,
        customer: str | None,
        place: dict[str, str],
        collapses: Sequence[Incident],
        response_factor: float,
    ) -> None:
        rng = self.rng
        for survey in surveys:
            if rng.random() >= feedback.RESPONSE_RATES.get(survey, 0.2) * response_factor:
                continue
            severity, delay = 0.0, self.feedback_delay
            for incident in collapses:  # the visit or contact at t is in the window; the answer comes later
                strength = incident.strength(t) if survey in incident.metrics else 0.0
                if strength > 0.0:
                    severity += strength * incident.parameter("severity")
                    delay = incident.feedback_delay or delay
            at = t + delay.sample(rng)
            event: Event = {
                "schema": 1,
                "event_id": "",
                "ts": round(at, 3),
                "survey": survey,
                "score": feedback.score(rng, survey, friction, severity),
            }
            if customer is not None:
                event["customer_id"] = customer
            event.update(place)
            self.spawn(_once(at, event), FEEDBACK, customer)


def _once(t: float, event: Event) -> Actor:
    yield t, event


@lru_cache(maxsize=32)
def calibrate(model: TrafficModel) -> Calibration:
    """Events and contacts per session of ``model``, measured on a fixed-seed simulation.

    About 3000 sessions at one per second on a flat pattern, run until every contact,
    repeat contact and survey they cause is over. Cached per model.
    """
    simulation = Simulation(
        model,
        rng=Random(CALIBRATION_SEED),
        start=0.0,
        session_rate=1.0,
        pattern=TrafficPattern(flat=True),
        arrivals_until=CALIBRATION_SECONDS,
    )
    events = sum(1 for _ in simulation.run())
    sessions = max(1, simulation.sessions_started)
    return Calibration(events / sessions, tuple(count / sessions for count in simulation.contacts_started))
