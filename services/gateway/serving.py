"""The gateway's two servers: the API on ``HERALD_GATEWAY_PORT`` (what the Ingress
exposes) and ``/metrics`` on ``HERALD_GATEWAY_METRICS_PORT`` (for Prometheus only).

The API server reads the client's address from ``X-Forwarded-For`` only when the
peer is one of ``HERALD_FORWARDED_ALLOW_IPS`` (the proxy in front), taking the
nearest address that proxy did not vouch for; rate limits by client key on it.
"""

from __future__ import annotations

import asyncio
import signal

import uvicorn
from fastapi import FastAPI

from shared.runner import EmbeddedServer, start_serving
from shared.settings import Settings

from .app import create_app
from .exposition import metrics_app


def api_server(settings: Settings, app: FastAPI) -> EmbeddedServer:
    return EmbeddedServer(
        uvicorn.Config(
            app,
            host=settings.gateway_host,
            port=settings.gateway_port,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=int(settings.drain_timeout),
            proxy_headers=True,
            forwarded_allow_ips=settings.forwarded_allow_ips,
        )
    )


def metrics_server(settings: Settings, app: FastAPI) -> EmbeddedServer:
    return EmbeddedServer(
        uvicorn.Config(
            metrics_app(app),
            host=settings.metrics_host,
            port=settings.metrics_port("gateway"),
            log_config=None,
            access_log=False,
            lifespan="off",
        )
    )


async def serve(settings: Settings) -> None:
    app = create_app(settings)
    api = api_server(settings, app)
    scrape = metrics_server(settings, app)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, api.handle_exit, sig, None)
    scraping = await start_serving(
        scrape, f"metrics on {settings.metrics_host}:{settings.metrics_port('gateway')}"
    )
    try:
        await api.serve()
    finally:
        # scraped until the API has drained, so the drain itself shows
        scrape.should_exit = True
        await scraping
