"""The gateway's ``/metrics``, served on ``HERALD_GATEWAY_METRICS_PORT`` and never on
the API's port.

The API port is public (the Ingress sends everyone to it). What a scrape shows —
queue depths, request counts, process figures — is for operators, and each scrape
reads the broker; so, like the workers' metrics ports, this one is left out of the
Ingress and open only to Prometheus.
"""

from __future__ import annotations

import functools

from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from .metrics import read_queues
from .state import GatewayState


def metrics_app(api: FastAPI) -> Starlette:
    """``/metrics`` of the gateway application ``api`` (its registry and broker)."""

    async def metrics(_: Request) -> Response:
        # opened by the API's lifespan: until then there is nothing to show
        state: GatewayState | None = getattr(api.state, "herald", None)
        if state is None:
            return PlainTextResponse("starting", status_code=503)
        # the queue depths are the broker's figures of the moment, read for the scrape
        await state.queue_depths.refresh(functools.partial(read_queues, state.bus, state.settings))
        body, content_type = state.metrics.exposition()
        return Response(body, media_type=content_type)

    return Starlette(routes=[Route("/metrics", metrics)])
