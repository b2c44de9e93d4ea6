"""``create_app(settings)``: the FastAPI application and its lifespan."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from shared.errors import BusUnavailable
from shared.metrics import ServiceMetrics
from shared.runner import make_bus, open_database
from shared.settings import Settings

from .routes import events, health, unsubscribe
from .state import GatewayState


def create_app(settings: Settings) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        metrics = ServiceMetrics("gateway")
        pool = await open_database(settings)
        bus = make_bus(settings, "gateway", metrics)
        await bus.start()
        app.state.herald = GatewayState(settings, pool, bus, metrics)
        try:
            yield
        finally:
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
    app.include_router(unsubscribe.router)

    @app.exception_handler(BusUnavailable)
    async def bus_unavailable(_: Request, exc: BusUnavailable) -> JSONResponse:
        return JSONResponse(
            {"detail": f"event bus unavailable, retry later: {exc.reason}"},
            status_code=503,
            headers={"Retry-After": "5"},
        )

    return app
