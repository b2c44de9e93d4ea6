"""Request dependencies: the gateway's state and who is calling."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request, status

from shared.apikeys import ApiKey, verify_api_key

from .state import GatewayState


def get_state(request: Request) -> GatewayState:
    state: GatewayState = request.app.state.herald
    return state


State = Annotated[GatewayState, Depends(get_state)]


def _presented_key(authorization: str | None, x_api_key: str | None) -> str | None:
    if x_api_key:
        return x_api_key.strip()
    if authorization and authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    return None


def require_scope(scope: str) -> Callable[..., Awaitable[ApiKey]]:
    async def dependency(
        state: State,
        authorization: Annotated[str | None, Header()] = None,
        x_api_key: Annotated[str | None, Header()] = None,
    ) -> ApiKey:
        key = _presented_key(authorization, x_api_key)
        challenge = {"WWW-Authenticate": "Bearer"}
        if key is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED, "an API key is required", headers=challenge
            )
        async with state.pool.acquire() as conn:
            api_key = await verify_api_key(conn, key)
        if api_key is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED, "unknown or revoked API key", headers=challenge
            )
        if not api_key.allows(scope):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"this key lacks the {scope!r} scope")
        return api_key

    return dependency
