"""``create_app(settings)``: the FastAPI application and its lifespan."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from shared import endpoint_sealing
from shared.bus import catalog
from shared.errors import BusUnavailable
from shared.events import Event
from shared.metrics import ServiceMetrics
from shared.runner import make_bus, open_database
from shared.sealing import Sealer
from shared.settings import Settings
from shared.url_guard import UrlGuard

from . import handlers, ratelimit
from .auth import TokenVerifier
from .live import LiveHub
from .metrics import GatewayMetrics, RecordRequests
from .protection import ContainErrors, LimitBodySize
from .routes import (
    alerts,
    apikeys,
    channels,
    events,
    health,
    inbox,
    operations,
    preferences,
    stream,
    telegram,
    unsubscribe,
    users,
)
from .state import GatewayState

log = structlog.get_logger("herald.gateway")

# idle rate-limit buckets are swept this often (by every replica; the DELETE is cheap)
SWEEP_SECONDS = 600.0


async def _sweep_buckets(pool: asyncpg.Pool) -> None:
    while True:
        await asyncio.sleep(SWEEP_SECONDS)
        try:
            await ratelimit.forget_idle(pool)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("rate_limit_sweep_failed", error=type(exc).__name__)


def create_app(settings: Settings) -> FastAPI:
    metrics = ServiceMetrics("gateway")
    http_metrics = GatewayMetrics(metrics)
    hub = LiveHub()
    http_metrics.count_sessions(lambda: hub.sessions)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await open_database(settings)
        sealer = Sealer.from_settings(settings)
        await endpoint_sealing.prepare(pool, sealer, grace=settings.plaintext_grace_seconds)
        bus = make_bus(settings, "gateway", metrics)
        hub.attach(pool)

        async def user_deleted(event: Event[Any]) -> None:
            await handlers.on_user_deleted(event, pool, bus)

        bus.subscribe(catalog.GATEWAY_USERS, {"user.deleted": user_deleted})
        bus.listen(["notification.delivered"], hub.on_event)
        await bus.start()
        app.state.herald = GatewayState(
            settings,
            pool,
            bus,
            metrics,
            TokenVerifier(settings),
            UrlGuard(settings.allow_private_urls),
            hub,
            http_metrics.queues,
            sealer,
        )
        sweeper = asyncio.create_task(_sweep_buckets(pool))
        try:
            yield
        finally:
            sweeper.cancel()
            await asyncio.gather(sweeper, return_exceptions=True)
            await bus.stop(settings.drain_timeout)
            await pool.close()

    app = FastAPI(
        title="Herald",
        version="0.1.0",
        summary="Notifications for job-search products",
        lifespan=lifespan,
    )
    app.include_router(health.router)
    app.include_router(events.router)
    app.include_router(preferences.router)
    app.include_router(channels.router)
    # the stream's fixed paths before the inbox's /{notification_id}
    app.include_router(stream.router)
    app.include_router(inbox.router)
    app.include_router(alerts.router)
    app.include_router(operations.router)
    app.include_router(apikeys.router)
    app.include_router(users.router)
    app.include_router(unsubscribe.router)
    app.include_router(telegram.router)

    def body_limit(path: str) -> int:
        return events.MAX_BODY_BYTES if path == "/v1/events" else settings.gateway_max_body_bytes

    # the last added runs first: errors are contained around everything else, and
    # what they become is counted
    app.add_middleware(LimitBodySize, limit_for=body_limit)
    app.add_middleware(ContainErrors)
    app.add_middleware(RecordRequests, metrics=http_metrics)

    @app.exception_handler(BusUnavailable)
    async def bus_unavailable(_: Request, exc: BusUnavailable) -> JSONResponse:
        log.warning("bus_unavailable", error=exc.reason)
        return JSONResponse(
            {"detail": "event bus unavailable, retry later"},
            status_code=503,
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(asyncpg.DataError)
    @app.exception_handler(OverflowError)
    async def unstorable_value(_: Request, exc: Exception) -> JSONResponse:
        # what the database refuses of a caller's input (a NUL in a text, a time out
        # of its range) is the caller's error, not an outage
        log.info("unstorable_value", error=type(exc).__name__)
        return JSONResponse(
            {"detail": "a value in the request cannot be stored (out of range or not text)"},
            status_code=422,
        )

    @app.exception_handler(asyncpg.PostgresError)
    @app.exception_handler(asyncpg.InterfaceError)
    @app.exception_handler(OSError)
    async def database_unavailable(_: Request, exc: Exception) -> JSONResponse:
        log.warning("database_unavailable", error=type(exc).__name__)
        return JSONResponse(
            {"detail": "database unavailable, retry later"},
            status_code=503,
            headers={"Retry-After": "5"},
        )

    return app
