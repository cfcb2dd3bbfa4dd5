"""Customer continuity: repeat contacts and channel switches per window and queue (pure math, no I/O).

One :class:`CustomerContinuity` serves one partition of a stream keyed by ``customer_id``,
so every touch of a customer arrives at the same instance. A *touch* is either

* ``"session"``: a web/app session started (its channel is that of its first step), or
* ``"contact"``: a contact was queued on a contact channel (``queued`` events).

Window fields, added on the contact's touchpoint ``Touchpoint(channel=..., queue=...)`` in
the window of the contact's ``ts``:

    ``repeat_contacts``   +1 when a contact follows an earlier contact of the same customer, on any
                          channel, less than ``repeat_horizon`` seconds before it (first-contact
                          resolution proxy: repeat contact rate = repeat_contacts / offered)
    ``channel_switches``  +1 when a contact follows an earlier touch (session or contact) of the
                          same customer on a different channel, less than ``repeat_horizon`` before it;
                          web -> chat -> phone gives 2 switches

"Earlier" is by event time: the touch compared with is the latest one kept with ``ts`` at or
before the new touch's ``ts`` (ties: the one that arrived first is earlier). Touches may arrive
slightly out of order: each is placed by its ``ts`` among the customer's last ``max_touches``
touches (and, separately, last ``max_touches`` contacts) and judged once, on arrival, against
what is kept then; a touch arriving later but older does not revise earlier judgments.

>>> from frictionwatch.streams.windows import WindowedCounts
>>> continuity, windows = CustomerContinuity(), WindowedCounts(size=3600)
>>> chat, phone = Touchpoint(channel="chat", queue="orders"), Touchpoint(channel="phone", queue="billing")
>>> continuity.touch("c1", 0.0, "web", "session", Touchpoint("purchase", "cart", "web"), windows)
True
>>> continuity.touch("c1", 60.0, "chat", "contact", chat, windows)
True
>>> continuity.touch("c1", 600.0, "phone", "contact", phone, windows)
True
>>> [window] = windows.advance(3600.0)
>>> dict(window.counts[chat]), dict(window.counts[phone])
({'channel_switches': 1.0}, {'repeat_contacts': 1.0, 'channel_switches': 1.0})
"""

from __future__ import annotations

import heapq
from bisect import bisect_right
from dataclasses import dataclass, field
from operator import itemgetter

from frictionwatch.streams.windows import Touchpoint, WindowedCounts

SESSION = "session"
CONTACT = "contact"

_ts_of = itemgetter(0)


@dataclass(slots=True)
class _Customer:
    """A customer's latest touches, oldest first: (ts, channel) of all touches, ts of contacts."""

    last_seen: float
    touches: list[tuple[float, str]] = field(default_factory=list)
    contacts: list[float] = field(default_factory=list)


class CustomerContinuity:
    """Repeat contacts and channel switches of the customers of one partition.

    Args:
        repeat_horizon: how far back (seconds, event time) an earlier touch still counts; a touch
            exactly ``repeat_horizon`` earlier does not. A customer's state is dropped once the
            watermark is ``repeat_horizon`` past their latest touch.
        max_touches: how many touches (and, separately, contacts) are kept per customer to place
            out-of-order arrivals; only the latest earlier one is ever compared with.
    """

    def __init__(self, repeat_horizon: float = 24 * 3600, max_touches: int = 4) -> None:
        if not repeat_horizon > 0:
            raise ValueError(f"repeat_horizon must be > 0 seconds, got {repeat_horizon!r}")
        if max_touches < 1:
            raise ValueError(f"max_touches must be >= 1, got {max_touches!r}")
        self.repeat_horizon = float(repeat_horizon)
        self.max_touches = max_touches
        self._customers: dict[str, _Customer] = {}
        # Expiry index: one (deadline, customer_id) entry per held customer. The deadline may be
        # stale (earlier than the real one, as later touches arrive); expire() re-files those.
        self._expiry: list[tuple[float, str]] = []

    def __len__(self) -> int:
        """Customers whose touches are held."""
        return len(self._customers)

    def touch(
        self, customer_id: str, ts: float, channel: str, kind: str, touchpoint: Touchpoint, windows: WindowedCounts
    ) -> bool:
        """Record a touch; for a contact, count a repeat and/or a switch on ``touchpoint``.

        Returns False when a count was refused because the window of ``ts`` had closed (the
        touch is still remembered); True otherwise, including when there was nothing to count.
        """
        if kind != SESSION and kind != CONTACT:
            raise ValueError(f"kind must be {SESSION!r} or {CONTACT!r}, got {kind!r}")
        customer = self._remember(customer_id, ts)
        previous = self._keep_touch(customer.touches, ts, channel)
        if kind == SESSION:
            return True
        previous_contact = self._keep_contact(customer.contacts, ts)
        repeat = previous_contact is not None and ts - previous_contact < self.repeat_horizon
        switch = previous is not None and previous[1] != channel and ts - previous[0] < self.repeat_horizon
        if not (repeat or switch):
            return True
        if windows.is_late(ts):
            return False
        if repeat:
            windows.add(ts, touchpoint, "repeat_contacts")
        if switch:
            windows.add(ts, touchpoint, "channel_switches")
        return True

    def expire(self, watermark: float) -> int:
        """Forget customers whose latest touch is ``repeat_horizon`` or more before ``watermark``.

        Returns how many were dropped. Only due index entries are visited, never all customers.
        To keep state for touches arriving out of order, pass the watermark minus the lateness
        you accept (e.g. ``windows.watermark - windows.allowed_lateness``).
        """
        dropped = 0
        expiry = self._expiry
        while expiry and expiry[0][0] <= watermark:
            _, customer_id = heapq.heappop(expiry)
            deadline = self._customers[customer_id].last_seen + self.repeat_horizon
            if deadline <= watermark:
                del self._customers[customer_id]
                dropped += 1
            else:
                heapq.heappush(expiry, (deadline, customer_id))  # touched again since it was filed
        return dropped

    def _remember(self, customer_id: str, ts: float) -> _Customer:
        customer = self._customers.get(customer_id)
        if customer is None:
            customer = self._customers[customer_id] = _Customer(ts)
            heapq.heappush(self._expiry, (ts + self.repeat_horizon, customer_id))
        elif ts > customer.last_seen:
            customer.last_seen = ts
        return customer

    def _keep_touch(self, touches: list[tuple[float, str]], ts: float, channel: str) -> tuple[float, str] | None:
        """Insert (ts, channel) in time order, keep the latest ``max_touches``; return the touch before it."""
        at = bisect_right(touches, ts, key=_ts_of)
        previous = touches[at - 1] if at else None
        touches.insert(at, (ts, channel))
        if len(touches) > self.max_touches:
            del touches[0]
        return previous

    def _keep_contact(self, contacts: list[float], ts: float) -> float | None:
        """Insert ``ts`` in time order, keep the latest ``max_touches``; return the contact time before it."""
        at = bisect_right(contacts, ts)
        previous = contacts[at - 1] if at else None
        contacts.insert(at, ts)
        if len(contacts) > self.max_touches:
            del contacts[0]
        return previous
