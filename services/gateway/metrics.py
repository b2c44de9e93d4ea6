"""The gateway's own series, beside the bus metrics every service has: requests by
route template (never the raw path, whose ids would make a series per user) and
status, their latency, and the live sessions this replica holds."""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.metrics import LATENCY_BUCKETS, ServiceMetrics


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

    def count_sessions(self, sessions: Callable[[], int]) -> None:
        self.live_sessions.labels(self.base.service).set_function(sessions)


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
            method = scope.get("method", "")
            service = self.metrics.base.service
            self.metrics.requests.labels(service, method, route, str(status)).inc()
            self.metrics.latency.labels(service, method, route).observe(
                time.perf_counter() - started
            )
