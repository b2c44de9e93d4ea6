"""The gateway's own series, beside the bus metrics every service has: requests by
method, route template and status, their latency, the live sessions this replica holds, and the depth of every
work queue Herald declares (read from the broker when Prometheus scrapes).

Every label a request could choose is bounded, or each caller could add series
until the gateway runs out of memory: the route is its template (never the raw
path, whose ids would make a series per user) or ``unmatched``, the method one of
``KNOWN_METHODS`` or ``OTHER`` (HTTP allows any token as a method).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable

import structlog
from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.bus import Bus, WorkQueueState, catalog, work_queue_states
from shared.errors import BusUnavailable
from shared.metrics import LATENCY_BUCKETS, ServiceMetrics
from shared.settings import Settings

log = structlog.get_logger("herald.gateway")

KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def method_label(method: str) -> str:
    return method if method in KNOWN_METHODS else "OTHER"


def status_label(status: int) -> str:
    # the application's own answer, but a label is bounded here, not by convention
    return str(status) if 100 <= status <= 599 else "other"


class GatewayMetrics:
    def __init__(self, base: ServiceMetrics) -> None:
        self.base = base
        r = base.registry
        self.requests = Counter(
            "herald_http_requests_total",
            "HTTP requests answered, by method, route template and status",
            ["service", "method", "route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "herald_http_request_duration_seconds",
            "Time to answer an HTTP request (a stream: how long it stayed open)",
            ["service", "method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.live_sessions = Gauge(
            "herald_live_sessions",
            "Live inbox streams (SSE and WebSocket) open on this replica",
            ["service"],
            registry=r,
        )

        self.queues = QueueDepths(base.service)
        r.register(self.queues)

    def count_sessions(self, sessions: Callable[[], int]) -> None:
        self.live_sessions.labels(self.base.service).set_function(sessions)


def queue_delays(settings: Settings) -> list[float]:
    """Every delay a work queue may have a delay queue for: the bus's retries, the
    deliveries' retries and their rate-limit deferrals."""
    return sorted(
        set(settings.retry_delays)
        | set(settings.delivery_retry_delays)
        | set(catalog.DELIVERY_DEFER_STEPS)
    )


async def read_queues(bus: Bus, settings: Settings) -> list[WorkQueueState]:
    """The broker's figures for every work queue of this deployment that exists."""
    names = [q.names(settings.namespace) for q in catalog.ALL_QUEUES]
    return await work_queue_states(bus.connection, names, queue_delays(settings))


QueueReader = Callable[[], Awaitable[list[WorkQueueState]]]


class QueueDepths(Collector):
    """``herald_queue_messages{queue, state}`` (ready, retrying, parked) and
    ``herald_queue_consumers{queue}`` for each work queue.

    The figures are the broker's own (passive declares, no plugin needed), read by
    ``refresh`` when ``/metrics`` is asked for and at most every ``max_age`` seconds
    however many scrapers there are. They do not depend on any consumer being up, so
    a backlog behind a dead service still shows. When the broker cannot be read the
    series are left out (never stale figures): the bus alerts say why.
    """

    def __init__(self, service: str, *, max_age: float = 5.0, timeout: float = 5.0) -> None:
        self.service = service
        self.max_age = max_age
        self.timeout = timeout
        self._states: list[WorkQueueState] | None = None
        self._read_at = -float("inf")
        self._lock = asyncio.Lock()

    async def refresh(self, read: QueueReader) -> None:
        async with self._lock:
            if time.monotonic() - self._read_at < self.max_age:
                return
            try:
                async with asyncio.timeout(self.timeout):
                    self._states = await read()
            except (BusUnavailable, OSError, TimeoutError) as exc:
                self._states = None
                log.warning("queue_depths_unavailable", error=f"{type(exc).__name__}: {exc}")
            self._read_at = time.monotonic()

    def describe(self) -> Iterable[Metric]:
        return self._families([])

    def collect(self) -> Iterable[Metric]:
        return self._families(self._states or [])

    def _families(self, states: list[WorkQueueState]) -> list[Metric]:
        messages = GaugeMetricFamily(
            "herald_queue_messages",
            "Messages in a work queue: ready to consume, waiting in its delay queues "
            "(retrying), or parked; read from the broker at scrape time",
            labels=["service", "queue", "state"],
        )
        consumers = GaugeMetricFamily(
            "herald_queue_consumers",
            "Consumers attached to a work queue, as the broker counts them",
            labels=["service", "queue"],
        )
        for s in states:
            messages.add_metric([self.service, s.queue, "ready"], s.messages)
            messages.add_metric([self.service, s.queue, "retrying"], s.retrying)
            messages.add_metric([self.service, s.queue, "parked"], s.parked)
            consumers.add_metric([self.service, s.queue], s.consumers)
        return [messages, consumers]


class RecordRequests:
    """ASGI middleware feeding ``GatewayMetrics``."""

    def __init__(self, app: ASGIApp, metrics: GatewayMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            method = method_label(scope.get("method", ""))
            service = self.metrics.base.service
            self.metrics.requests.labels(service, method, route, status_label(status)).inc()
            self.metrics.latency.labels(service, method, route).observe(
                time.perf_counter() - started
            )
