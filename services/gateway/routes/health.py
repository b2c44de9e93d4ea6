"""Liveness, readiness and metrics: public, for the orchestrator and Prometheus."""

from __future__ import annotations

import functools

from fastapi import APIRouter, Response

from shared.runner import readiness

from ..dependencies import State
from ..metrics import read_queues

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok", "service": "gateway"}


@router.get("/readyz")
async def readyz(state: State) -> Response:
    return await readiness(state.bus, state.pool)


@router.get("/metrics", include_in_schema=False)
async def metrics(state: State) -> Response:
    # the queue depths are the broker's figures of the moment, read for the scrape
    await state.queue_depths.refresh(functools.partial(read_queues, state.bus, state.settings))
    body, content_type = state.metrics.exposition()
    return Response(body, media_type=content_type)
