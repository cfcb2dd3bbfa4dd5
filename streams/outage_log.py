"""aiokafka's errors while the broker is unreachable, collapsed to one line every ``every`` seconds.

With the broker gone, aiokafka logs about 65 ERROR lines a second (``Unable connect to node``,
``Failed fetch messages``, heartbeat failures, ...) until it comes back. :class:`BrokerErrorDigest`,
a logging filter on aiokafka's loggers, lets the first line of each kind through (the cause
stays visible), counts the repeats, and turns one repeat every ``every`` seconds into

    broker 127.0.0.1:9092 unreachable for 30 s (1,950 errors from aiokafka: Unable connect to node x600, ...)

The outage ends after ``every`` seconds without an error (then the next error shows again).
Records below WARNING pass untouched.

>>> now = [0.0]
>>> digest = BrokerErrorDigest("kafka:9092", every=30.0, clock=lambda: now[0])
>>> def error(msg: str, *args: object) -> logging.LogRecord:
...     return logging.LogRecord("aiokafka", logging.ERROR, __file__, 1, msg, args, None)
>>> shown = []
>>> for tick in range(650):  # 65 errors a second for 10 s
...     now[0] = tick / 65
...     record = error("Unable connect to node with id %s: %s", 1, "refused")
...     if digest.filter(record):
...         shown.append(record.getMessage())
>>> shown
['Unable connect to node with id 1: refused']
>>> now[0] = 31.0
>>> record = error("Failed fetch messages from %s: %s", 1, "NodeNotReadyError")
>>> digest.filter(record), record.getMessage()  # a new kind of error shows once
(True, 'Failed fetch messages from 1: NodeNotReadyError')
>>> record = error("Unable connect to node with id %s: %s", 1, "refused")
>>> digest.filter(record), record.getMessage()
(True, 'broker kafka:9092 unreachable for 31 s (652 errors from aiokafka: Unable connect to node with id x651, \
Failed fetch messages from x1, latest: Unable connect to node with id 1: refused)')
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable

# aiokafka's loggers (module names); the digest sits on each, as a filter on a parent logger
# does not see its children's records.
AIOKAFKA_LOGGERS = (
    "aiokafka",
    "aiokafka.conn",
    "aiokafka.cluster",
    "aiokafka.consumer.consumer",
    "aiokafka.consumer.fetcher",
    "aiokafka.consumer.group_coordinator",
    "aiokafka.producer.producer",
    "aiokafka.producer.sender",
)


class BrokerErrorDigest(logging.Filter):
    """Collapses repeated aiokafka warnings and errors into one summary line every ``every`` seconds.

    Args:
        bootstrap: the broker address named in the summary line.
        every: seconds between summary lines during an outage; also how long without an error
            ends an outage.
        clock: monotonic seconds (injected by tests).
    """

    def __init__(self, bootstrap: str, every: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        if not every > 0:
            raise ValueError(f"every must be > 0 seconds, got {every!r}")
        self.bootstrap = bootstrap
        self.every = float(every)
        self.clock = clock
        self.began: float | None = None  # the outage's first error
        self.last_error = 0.0
        self.last_summary = 0.0
        self.kinds: Counter[str] = Counter()  # errors of the outage by message template

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        now = self.clock()
        if self.began is None or now - self.last_error > self.every:
            self.began, self.last_summary = now, now
            self.kinds.clear()
        self.last_error = now
        kind = _template(record)
        self.kinds[kind] += 1
        if self.kinds[kind] == 1:
            return True  # the first of its kind: as aiokafka wrote it
        if now - self.last_summary < self.every:
            return False
        self.last_summary = now
        kinds = ", ".join(f"{text} x{count}" for text, count in self.kinds.most_common(3))
        latest = record.getMessage()
        record.msg = "broker %s unreachable for %.0f s (%s errors from aiokafka: %s, latest: %s)"
        record.args = (self.bootstrap, now - self.began, f"{self.kinds.total():,}", kinds, latest)
        return True


def _template(record: logging.LogRecord) -> str:
    """The message without its arguments, cut at the first placeholder: what kind of error it is."""
    text = str(record.msg)
    return text.split("%", 1)[0].rstrip(" :\"'") or text[:60]


def install(bootstrap: str, every: float = 30.0) -> BrokerErrorDigest:
    """Put one digest on every aiokafka logger (the known ones and any already created)."""
    digest = BrokerErrorDigest(bootstrap, every)
    names = {*AIOKAFKA_LOGGERS, *(n for n in logging.root.manager.loggerDict if n.startswith("aiokafka."))}
    for name in sorted(names):
        logging.getLogger(name).addFilter(digest)
    return digest
