"""Contact-centre queue metrics per event-time window and queue (pure math, no I/O).

One :class:`ContactCentre` serves one contacts partition (contacts are keyed by
``contact_id``, so all events of a contact arrive there). Each event adds to the window
holding its own ``ts``, on the queue's touchpoint ``Touchpoint(channel=..., queue=...)``.

Window fields (amounts; a field that nothing touched in a window is simply absent, read 0):

    ``offered``                        +1 per ``queued`` event
    ``answered``                       +1 per ``answered`` event
    ``abandoned``                      +1 per ``abandoned`` event whose wait >= ``short_abandon_seconds``
                                       (or whose wait is unknown: it cannot be shown to be short)
    ``short_abandoned``                +1 per ``abandoned`` event whose wait < ``short_abandon_seconds``
                                       (counted apart and left out of every ratio)
    ``resolved``, ``transferred``      +1 per event of that type
    ``answered_wait_seconds_sum``      + wait of each answered contact whose wait is known
    ``answered_within_service_level``  +1 per answered contact with wait <= ``service_level_seconds``
    ``abandoned_wait_seconds_sum``     + wait of each ``abandoned`` (not short) contact whose wait is known
    ``wait_unknown``                   +1 per answered or abandoned contact whose wait is unknown
    ``answered_wait_unknown``          +1 per answered contact whose wait is unknown (part of ``wait_unknown``)

The wait is the event's ``wait_seconds`` when given, else ``ts`` minus the time of the
contact's latest ``queued`` event seen (when that is not later than ``ts``); otherwise it
is unknown. An ``answered`` or ``abandoned`` with no ``queued`` before it still counts;
``offered`` comes from ``queued`` events only.

Derived per window by :func:`contact_ratios` (None when the denominator is 0); contacts
with an unknown wait stay in the counts but out of the wait-based ratios, so with every
wait known (``wait_unknown`` = 0) these are exactly the textbook formulas:

    abandonment_ratio        = abandoned / (answered + abandoned)
    average_speed_of_answer  = answered_wait_seconds_sum / (answered - answered_wait_unknown)
    service_level            = answered_within_service_level / (answered + abandoned - wait_unknown)
    average_time_to_abandon  = abandoned_wait_seconds_sum / (abandoned - (wait_unknown - answered_wait_unknown))

>>> from frictionwatch.contract import ContactEvent
>>> from frictionwatch.streams.windows import WindowedCounts
>>> centre, windows = ContactCentre(), WindowedCounts(size=60)
>>> centre.add(ContactEvent("e1", 100.0, "k1", "phone", "billing", "queued"), windows)
True
>>> centre.add(ContactEvent("e2", 112.0, "k1", "phone", "billing", "answered"), windows)
True
>>> centre.last_wait                       # derived from the queued event: 112 - 100
12.0
>>> [window] = windows.advance(120.0)          # closes [60, 120)
>>> fields = window.counts[Touchpoint(channel="phone", queue="billing")]
>>> contact_ratios(fields)["average_speed_of_answer"], contact_ratios(fields)["service_level"]
(12.0, 1.0)
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass

from frictionwatch.contract import ContactEvent
from frictionwatch.streams.windows import Touchpoint, WindowedCounts


@dataclass(slots=True)
class _Contact:
    """What is remembered of one contact: when it was last queued, and when it was last seen."""

    last_seen: float
    queued_at: float | None = None


class ContactCentre:
    """Per-queue contact metrics for one partition, with per-contact state expired by event time.

    Args:
        short_abandon_seconds: abandons with a shorter wait are ``short_abandoned`` (5.0 is not short).
        service_level_seconds: answers with a wait up to and including this are within the service level.
        contact_timeout: a contact's state is forgotten this long (event time) after its latest event.

    After each :meth:`add`, :attr:`last_wait` is the wait that event observed: a float for an
    ``answered`` or ``abandoned`` (short ones too) whose wait is known, None otherwise. It is set
    even when the window was late, so a Prometheus histogram of waits can be fed from it.
    """

    def __init__(
        self,
        short_abandon_seconds: float = 5.0,
        service_level_seconds: float = 20.0,
        contact_timeout: float = 4 * 3600,
    ) -> None:
        if not short_abandon_seconds >= 0:
            raise ValueError(f"short_abandon_seconds must be >= 0, got {short_abandon_seconds!r}")
        if not service_level_seconds >= 0:
            raise ValueError(f"service_level_seconds must be >= 0, got {service_level_seconds!r}")
        if not contact_timeout > 0:
            raise ValueError(f"contact_timeout must be > 0 seconds, got {contact_timeout!r}")
        self.short_abandon_seconds = float(short_abandon_seconds)
        self.service_level_seconds = float(service_level_seconds)
        self.contact_timeout = float(contact_timeout)
        self.last_wait: float | None = None
        self._contacts: dict[str, _Contact] = {}
        # Expiry index: one (deadline, contact_id) entry per held contact. The deadline may be
        # stale (earlier than the real one, as later events arrive); expire() re-files those.
        self._expiry: list[tuple[float, str]] = []
        self._touchpoints: dict[str, dict[str, Touchpoint]] = {}

    def __len__(self) -> int:
        """Contacts whose state is held."""
        return len(self._contacts)

    def add(self, event: ContactEvent, windows: WindowedCounts) -> bool:
        """Count ``event`` in the window of its ``ts``; False when that window was closed (state is still kept)."""
        contact = self._remember(event.contact_id, event.ts)
        place = self._touchpoint(event.channel, event.queue)
        kind = event.type
        self.last_wait = None
        if kind == "queued":
            if contact.queued_at is None or event.ts > contact.queued_at:
                contact.queued_at = event.ts
            return windows.add(event.ts, place, "offered")
        if kind == "answered":
            self.last_wait = self._wait(event, contact)
            return self._count_answered(event.ts, place, self.last_wait, windows, event.contact_id)
        if kind == "abandoned":
            self.last_wait = self._wait(event, contact)
            return self._count_abandoned(event.ts, place, self.last_wait, windows, event.contact_id)
        if kind == "resolved" or kind == "transferred":
            return windows.add(event.ts, place, kind)
        raise ValueError(f"unknown contact event type {kind!r}")

    def expire(self, watermark: float) -> int:
        """Forget contacts with no event in the last ``contact_timeout`` seconds before ``watermark``.

        A contact whose latest event is at ``t`` is dropped once ``watermark >= t + contact_timeout``.
        Returns how many were dropped. Only due index entries are visited, never all contacts.
        """
        dropped = 0
        expiry = self._expiry
        while expiry and expiry[0][0] <= watermark:
            _, contact_id = heapq.heappop(expiry)
            deadline = self._contacts[contact_id].last_seen + self.contact_timeout
            if deadline <= watermark:
                del self._contacts[contact_id]
                dropped += 1
            else:
                heapq.heappush(expiry, (deadline, contact_id))  # seen again since it was filed
        return dropped

    def _remember(self, contact_id: str, ts: float) -> _Contact:
        contact = self._contacts.get(contact_id)
        if contact is None:
            contact = self._contacts[contact_id] = _Contact(ts)
            heapq.heappush(self._expiry, (ts + self.contact_timeout, contact_id))
        elif ts > contact.last_seen:
            contact.last_seen = ts
        return contact

    @staticmethod
    def _wait(event: ContactEvent, contact: _Contact) -> float | None:
        if event.wait_seconds is not None:
            return event.wait_seconds
        if contact.queued_at is not None and contact.queued_at <= event.ts:
            return event.ts - contact.queued_at
        return None

    def _count_answered(
        self, ts: float, place: Touchpoint, wait: float | None, windows: WindowedCounts, contact_id: str
    ) -> bool:
        slow = wait is not None and wait > self.service_level_seconds  # an example for wait alerts
        if not windows.add(ts, place, "answered", 1.0, contact_id if slow else None):
            return False
        if wait is None:
            windows.add(ts, place, "wait_unknown")
            windows.add(ts, place, "answered_wait_unknown")
        else:
            windows.add(ts, place, "answered_wait_seconds_sum", wait)
            if wait <= self.service_level_seconds:
                windows.add(ts, place, "answered_within_service_level")
        return True

    def _count_abandoned(
        self, ts: float, place: Touchpoint, wait: float | None, windows: WindowedCounts, contact_id: str
    ) -> bool:
        if wait is not None and wait < self.short_abandon_seconds:
            return windows.add(ts, place, "short_abandoned")
        if not windows.add(ts, place, "abandoned", 1.0, contact_id):
            return False
        if wait is None:
            windows.add(ts, place, "wait_unknown")
        else:
            windows.add(ts, place, "abandoned_wait_seconds_sum", wait)
        return True

    def _touchpoint(self, channel: str, queue: str) -> Touchpoint:
        """The queue's Touchpoint, built once per (channel, queue) and reused."""
        queues = self._touchpoints.get(channel)
        if queues is None:
            queues = self._touchpoints[channel] = {}
        place = queues.get(queue)
        if place is None:
            place = queues[queue] = Touchpoint(channel=channel, queue=queue)
        return place


def contact_ratios(fields: Mapping[str, float]) -> dict[str, float | None]:
    """The derived queue metrics of one window's fields (see the module docstring); None when undefined.

    >>> contact_ratios({"answered": 3, "abandoned": 1, "answered_wait_seconds_sum": 30,
    ...                 "answered_within_service_level": 2, "abandoned_wait_seconds_sum": 50})
    {'abandonment_ratio': 0.25, 'average_speed_of_answer': 10.0, 'service_level': 0.5, 'average_time_to_abandon': 50.0}
    """
    answered = fields.get("answered", 0.0)
    abandoned = fields.get("abandoned", 0.0)
    wait_unknown = fields.get("wait_unknown", 0.0)
    answered_wait_unknown = fields.get("answered_wait_unknown", 0.0)
    abandoned_wait_unknown = wait_unknown - answered_wait_unknown
    return {
        "abandonment_ratio": _ratio(abandoned, answered + abandoned),
        "average_speed_of_answer": _ratio(
            fields.get("answered_wait_seconds_sum", 0.0), answered - answered_wait_unknown
        ),
        "service_level": _ratio(fields.get("answered_within_service_level", 0.0), answered + abandoned - wait_unknown),
        "average_time_to_abandon": _ratio(
            fields.get("abandoned_wait_seconds_sum", 0.0), abandoned - abandoned_wait_unknown
        ),
    }


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator > 0 else None
