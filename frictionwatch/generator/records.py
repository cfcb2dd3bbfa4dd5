"""What the generator yields: one Kafka record's worth of traffic, valid or deliberately broken."""

from __future__ import annotations

from typing import Any, Final, NamedTuple

CLICKS: Final = "clicks"
CONTACTS: Final = "contacts"
FEEDBACK: Final = "feedback"
TOPIC_KINDS: Final = (CLICKS, CONTACTS, FEEDBACK)


class GeneratedRecord(NamedTuple):
    """One generated item, in event-time order.

    ``kind`` is the topic kind (clicks, contacts, feedback) and ``key`` the Kafka key
    (clicks: session_id, contacts: contact_id, feedback: customer_id or event_id).
    A valid event has ``value`` set to its JSON object and ``malformed`` None. A malformed
    item names its :class:`~frictionwatch.generator.malformed.MalformedKind` in
    ``malformed`` and carries either a JSON ``value`` that breaks the contract or, when
    its bytes are not valid JSON at all, ``raw``. ``ts`` is the simulated event time.

    A NamedTuple rather than a dataclass: one is built per event, so it must be cheap.
    """

    kind: str
    key: str | None
    value: Any
    raw: bytes | None
    malformed: str | None
    ts: float
