"""Liveness and readiness: public, for the orchestrator. (``/metrics`` is not here:
it has a port of its own, ``exposition.py``.)"""

from __future__ import annotations

from fastapi import APIRouter, Response

from shared.runner import readiness

from ..dependencies import State

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok", "service": "gateway"}


@router.get("/readyz")
async def readyz(state: State) -> Response:
    return await readiness(state.bus, state.pool)
