"""Delivering alerts to Alertmanager's API v2, buffering and retrying while it is away.

Every Alertmanager URL (two for an HA pair: each gets every alert, as Alertmanager
expects) has its own bounded buffer and delivery loop. A batch leaves the buffer only
once Alertmanager accepted it; connection errors and 5xx answers are retried with
exponential back-off; a 4xx answer (a malformed alert, a bug) drops the batch, logged
and counted. When a buffer is full the oldest alert is dropped and counted: the newest
state of an alert is the one worth delivering.

Counters (``alertmanager`` label = the URL): ``frictionwatch_alerts_sent_total``,
``frictionwatch_alerts_retried_total`` (alerts sent again after a failed attempt),
``frictionwatch_alerts_failed_total`` (alerts in failed attempts),
``frictionwatch_alerts_dropped_total``; gauge ``frictionwatch_alerts_buffered``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Sequence
from typing import Any

import aiohttp
import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge

log = logging.getLogger(__name__)


class AlertSender:
    """Delivers alerts to every Alertmanager of ``urls`` (base URLs, e.g. http://127.0.0.1:9093).

    Args:
        urls: Alertmanager base URLs.
        registry: where the delivery counters go.
        buffer_size: alerts kept per Alertmanager while it can't be reached.
        batch_size: alerts per request.
        timeout: seconds per request.
        backoff: first and longest wait between failed attempts, seconds.
    """

    def __init__(
        self,
        urls: Sequence[str],
        registry: CollectorRegistry,
        *,
        buffer_size: int = 10_000,
        batch_size: int = 200,
        timeout: float = 5.0,
        backoff: tuple[float, float] = (0.5, 30.0),
    ) -> None:
        self.urls = [url.rstrip("/") for url in urls]
        self.buffer_size = buffer_size
        self.batch_size = batch_size
        self.timeout = timeout
        self.backoff = backoff
        self.buffers: dict[str, deque[dict[str, Any]]] = {url: deque() for url in self.urls}
        self.wake: dict[str, asyncio.Event] = {}
        labels = ["alertmanager"]
        self.sent = Counter("frictionwatch_alerts_sent", "Alerts Alertmanager accepted.", labels, registry=registry)
        self.retried = Counter(
            "frictionwatch_alerts_retried", "Alerts sent again after a failed attempt.", labels, registry=registry
        )
        self.failed = Counter(
            "frictionwatch_alerts_failed", "Alerts in delivery attempts that failed.", labels, registry=registry
        )
        self.dropped = Counter(
            "frictionwatch_alerts_dropped", "Alerts dropped: buffer full, or rejected as malformed.", labels,
            registry=registry,
        )  # fmt: skip
        self.buffered = Gauge(
            "frictionwatch_alerts_buffered", "Alerts waiting for delivery.", labels, registry=registry
        )
        for url in self.urls:
            for metric in (self.sent, self.retried, self.failed, self.dropped, self.buffered):
                metric.labels(url)

    def enqueue(self, alerts: Sequence[dict[str, Any]]) -> None:
        """Queue alerts for every Alertmanager; never blocks."""
        for url, buffer in self.buffers.items():
            for alert in alerts:
                if len(buffer) >= self.buffer_size:
                    buffer.popleft()
                    self.dropped.labels(url).inc()
                buffer.append(alert)
            self.buffered.labels(url).set(len(buffer))
            event = self.wake.get(url)
            if event is not None:
                event.set()

    async def run(self) -> None:
        """Deliver until cancelled (one loop per Alertmanager)."""
        if not self.urls:
            return
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            await asyncio.gather(*(self._deliver(session, url) for url in self.urls))

    async def _deliver(self, session: aiohttp.ClientSession, url: str) -> None:
        buffer = self.buffers[url]
        wake = self.wake[url] = asyncio.Event()
        delay, failing = self.backoff[0], False
        while True:
            if not buffer:
                wake.clear()
                await wake.wait()
            batch = [buffer[index] for index in range(min(self.batch_size, len(buffer)))]
            if failing:
                self.retried.labels(url).inc(len(batch))
            outcome = await self._post(session, url, batch)
            if outcome == "retry":
                self.failed.labels(url).inc(len(batch))
                failing = True
                await asyncio.sleep(delay)  # back-off before the next attempt
                delay = min(delay * 2, self.backoff[1])
                continue
            for _ in batch:
                buffer.popleft()
            (self.sent if outcome == "sent" else self.dropped).labels(url).inc(len(batch))
            self.buffered.labels(url).set(len(buffer))
            delay, failing = self.backoff[0], False

    async def _post(self, session: aiohttp.ClientSession, url: str, batch: list[dict[str, Any]]) -> str:
        try:
            async with session.post(
                f"{url}/api/v2/alerts", data=orjson.dumps(batch), headers={"Content-Type": "application/json"}
            ) as response:
                if response.status < 300:
                    return "sent"
                text = (await response.text())[:300]
                if 400 <= response.status < 500:
                    log.error("Alertmanager %s rejected %d alerts (%d): %s", url, len(batch), response.status, text)
                    return "rejected"
                log.warning("Alertmanager %s answered %d: %s; will retry", url, response.status, text)
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            log.warning("Alertmanager %s unreachable (%s); %d alerts buffered", url, error, len(self.buffers[url]))
        return "retry"
