"""The contact centre: staffing per queue and how long each caller waits.

Each queue is treated as an M/M/c system planned the way workforce management does it.
Per 15-minute interval the forecast arrival rate lambda (calibrated contacts per session
x the session rate x the traffic curve) and the mean handle time 1/mu give the offered
load a = lambda/mu; the planner staffs the fewest agents whose Erlang C average speed of
answer is at most ``TARGET_ANSWER_SECONDS`` and whose occupancy stays under
``MAX_OCCUPANCY``, then breaks (lunch) and a thin evening shift take some of them away
(:func:`availability`; not on a flat traffic pattern, whose day has no shape). An
``understaffed`` incident divides the agents by its factor.
The forecast follows :class:`~frictionwatch.generator.volume.Volume`: surges, holidays and
campaign visitors are planned for (they are controls, not friction).

Per caller, with the Erlang C chance of waiting the wait is exponential with mean
1/(c mu - lambda), capped at the channel's mean patience (abandonment keeps real queues
from growing without bound); at or above full load (rho >= 1) every caller waits, for
patience x ln(rho) more (the fluid approximation of Erlang A), so abandonment climbs.
Otherwise the contact is answered after a few seconds of ringing. Patience is
exponential per caller (mean per channel, e.g. 110 s on the phone) and 3% of callers
give up within 5 s; an ``abandonment_spike`` divides the patience (and multiplies the
quick give-ups) by its factor, leaving the waits alone. Email never abandons but waits
for a backlog of about 45 minutes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from random import Random

from frictionwatch.generator.curves import DAY, HOUR
from frictionwatch.generator.model import QueueModel, TrafficModel
from frictionwatch.generator.scenario import Incident
from frictionwatch.generator.volume import Volume

INTERVAL_SECONDS = 900.0
TARGET_ANSWER_SECONDS = 15.0
MAX_OCCUPANCY = 0.85
HANDLE_SIGMA = 0.6
BACKLOG_SIGMA = 0.8
WAIT_CAP_SECONDS = 3600.0
RING_SECONDS = (0.5, 4.0)
SHORT_ABANDON = 0.03
SHORT_ABANDON_SECONDS = (0.5, 5.0)
TRANSFER = 0.07


@dataclass(slots=True)
class ContactPlan:
    """Everything that will happen to one contact, decided when it is queued."""

    contact_id: str
    queue: QueueModel
    topic: str
    customer: str | None
    session: str | None
    queued_at: float
    wait: float
    abandoned: bool
    handle: float
    transferred: bool
    friction: float

    @property
    def ends_at(self) -> float:
        """When the contact leaves the centre: abandoned, resolved or transferred."""
        return self.queued_at + self.wait + (0.0 if self.abandoned else self.handle)


def availability(t: float) -> float:
    """Share of planned agents actually on the phones: lunch breaks and a thin evening shift."""
    hour = (t % DAY) / HOUR
    return 1.0 - 0.08 * math.exp(-(((hour - 13.0) / 0.75) ** 2)) - 0.07 * math.exp(-(((hour - 20.5) / 1.5) ** 2))


def erlang_c(servers: int, load: float) -> float:
    """Chance that a caller waits in an M/M/c queue with ``servers`` and offered ``load`` (Erlangs)."""
    if load <= 0.0:
        return 0.0
    if load >= servers:
        return 1.0
    blocking = 1.0  # Erlang B, by the usual recursion over the number of servers
    for k in range(1, servers + 1):
        blocking = load * blocking / (k + load * blocking)
    rho = load / servers
    return blocking / (1.0 - rho + rho * blocking)


def servers_for(load: float, service_rate: float, target_answer: float) -> int:
    """The fewest servers whose Erlang C average speed of answer is at most ``target_answer`` s."""
    if load <= 0.0:
        return 1
    blocking, servers = 1.0, 0
    while True:
        servers += 1
        blocking = load * blocking / (servers + load * blocking)
        if servers > load:
            rho = load / servers
            waiting = blocking / (1.0 - rho + rho * blocking)
            if waiting / (service_rate * (servers - load)) <= target_answer:
                return servers


class ContactCentre:
    """Plans contacts: which queue, how long the wait, abandoned or answered, handle time."""

    def __init__(
        self,
        model: TrafficModel,
        volume: Volume,
        session_rate: float,
        contacts_per_session: Sequence[float] | None,
        incidents: Sequence[Incident] = (),
    ) -> None:
        self.queues = model.queues
        self.volume = volume
        self.session_rate = session_rate
        self.contacts_per_session = contacts_per_session
        self.incidents = [
            tuple(i for i in incidents if i.kind == "understaffed" and i.channel == q.channel and q.queue in i.queues)
            for q in model.queues
        ]
        self.spikes = [
            tuple(
                i for i in incidents if i.kind == "abandonment_spike" and i.channel == q.channel and q.queue in i.queues
            )
            for q in model.queues
        ]
        self.channel_queues: dict[str, list[QueueModel]] = {}
        for queue in model.queues:
            self.channel_queues.setdefault(queue.channel, []).append(queue)
        self._intervals: dict[tuple[int, int, float, float], tuple[float, float, float]] = {}

    def forecast(self, queue: QueueModel, t: float, multiplier: float = 1.0) -> float:
        """Expected contacts per second arriving at ``queue`` around ``t`` (0 before calibration);
        ``multiplier``: the volume's reshaping (surges, holidays, campaigns) at the time."""
        if self.contacts_per_session is None:
            return 0.0
        level = self.volume.pattern.level(t) * multiplier
        return self.session_rate * level * self.contacts_per_session[queue.uid]

    def agents(self, queue: QueueModel, t: float, multiplier: float = 1.0) -> int:
        """Agents on ``queue`` at ``t``: planned for the interval's forecast, minus breaks and incidents."""
        middle = (math.floor(t / INTERVAL_SECONDS) + 0.5) * INTERVAL_SECONDS
        service_rate = 1.0 / _lognormal_mean(queue.profile.handle_median, HANDLE_SIGMA)
        load = self.forecast(queue, middle, multiplier) / service_rate
        servers = max(servers_for(load, service_rate, TARGET_ANSWER_SECONDS), math.ceil(load / MAX_OCCUPANCY))
        planned = math.ceil(servers / queue.profile.concurrency)
        on_duty = 1.0 if self.volume.pattern.flat else availability(middle)
        agents = max(1, round(planned * on_duty))
        return max(1, round(agents / self._understaffing(queue, t)))

    def choose_queue(
        self, rng: Random, topic: str, *, channel: str | None = None, avoid_channel: str | None = None
    ) -> QueueModel | None:
        """A queue for a contact about ``topic``: channels by popularity, queues that handle the topic first."""
        candidates = [
            queue
            for queue in self.queues
            if (channel is None or queue.channel == channel) and queue.channel != avoid_channel
        ]
        if not candidates:
            return None
        weights = [
            queue.profile.weight / len(self.channel_queues[queue.channel]) * (5.0 if topic in queue.topics else 1.0)
            for queue in candidates
        ]
        return rng.choices(candidates, weights)[0]

    def plan(
        self,
        rng: Random,
        t: float,
        queue: QueueModel,
        *,
        contact_id: str,
        topic: str,
        customer: str | None,
        session: str | None,
        friction: float,
    ) -> ContactPlan:
        """Decide the fate of a contact queued at ``t``."""
        profile = queue.profile
        waiting, mean_wait, extra_wait = self._queue_state(queue, t)
        waits = rng.random() < waiting
        wait = extra_wait + rng.expovariate(1.0 / mean_wait) if waits else rng.uniform(*RING_SECONDS)
        if profile.backlog_median > 0:
            wait += profile.backlog_median * math.exp(BACKLOG_SIGMA * rng.gauss(0.0, 1.0))
        patience = math.inf
        if profile.patience_mean is not None:
            impatience = self._impatience(queue, t)
            if rng.random() < SHORT_ABANDON * impatience:
                patience = rng.uniform(*SHORT_ABANDON_SECONDS)
            else:
                patience = rng.expovariate(impatience / profile.patience_mean)
        abandoned = patience < wait
        handle = profile.handle_median * math.exp(HANDLE_SIGMA * rng.gauss(0.0, 1.0))
        transferred = not abandoned and len(self.channel_queues[queue.channel]) > 1 and rng.random() < TRANSFER
        return ContactPlan(
            contact_id,
            queue,
            topic,
            customer,
            session,
            t,
            min(wait, patience),
            abandoned,
            handle,
            transferred,
            friction,
        )

    def _understaffing(self, queue: QueueModel, t: float) -> float:
        """Agents are divided by this at ``t`` (ramps rounded to 1% so queue states can be cached)."""
        factor = 1.0
        for incident in self.incidents[queue.uid]:
            if incident.start <= t < incident.end:
                factor *= incident.scaled("factor", 1.0, t)
        return round(factor, 2)

    def _impatience(self, queue: QueueModel, t: float) -> float:
        """Callers' patience is divided by this at ``t`` (abandonment spikes)."""
        factor = 1.0
        for incident in self.spikes[queue.uid]:
            if incident.start <= t < incident.end:
                factor *= incident.scaled("factor", 1.0, t)
        return factor

    def _queue_state(self, queue: QueueModel, t: float) -> tuple[float, float, float]:
        """(chance of waiting, mean wait of those who wait, extra wait above full load) at ``t``."""
        volume = self.volume
        multiplier = 1.0 if volume.plain and not volume.campaigns else round(volume.contact_multiplier(t), 2)
        key = (queue.uid, math.floor(t / INTERVAL_SECONDS), self._understaffing(queue, t), multiplier)
        state = self._intervals.get(key)
        if state is None:
            state = self._compute_state(queue, t, multiplier)
            self._intervals[key] = state
        return state

    def _compute_state(self, queue: QueueModel, t: float, multiplier: float) -> tuple[float, float, float]:
        profile = queue.profile
        middle = (math.floor(t / INTERVAL_SECONDS) + 0.5) * INTERVAL_SECONDS
        arrival_rate = self.forecast(queue, middle, multiplier)
        service_rate = 1.0 / _lognormal_mean(profile.handle_median, HANDLE_SIGMA)
        servers = self.agents(queue, t, multiplier) * profile.concurrency
        load = arrival_rate / service_rate
        patience = profile.patience_mean if profile.patience_mean is not None else WAIT_CAP_SECONDS
        if load <= 0.0:
            return 0.0, 1.0, 0.0
        rho = load / servers
        if rho < 1.0:
            return erlang_c(servers, load), min(1.0 / (servers * service_rate - arrival_rate), patience), 0.0
        return 1.0, patience, patience * math.log(rho)


def _lognormal_mean(median: float, sigma: float) -> float:
    return median * math.exp(sigma * sigma / 2.0)
