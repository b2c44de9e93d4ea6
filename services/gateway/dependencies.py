"""Request dependencies: the gateway's state, who is calling, and their rate limit.

``caller`` authenticates whatever credential came (cached for the request, so the
rate limit and the route's own check share it); ``current_user`` and
``require_scope`` then say what kind of caller a route takes. Every ``/v1`` route
declares a ``rate_limit`` (a unit test checks none is forgotten).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request, params, status
from fastapi.requests import HTTPConnection
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from shared.apikeys import ApiKey, verify_api_key

from . import ratelimit
from .auth import AuthError, KeysUnavailable, Principal, looks_like_api_key
from .ratelimit import Policy
from .state import GatewayState


def get_state(connection: HTTPConnection) -> GatewayState:
    state: GatewayState = connection.app.state.herald
    return state


State = Annotated[GatewayState, Depends(get_state)]

# auto_error=False: a missing credential is answered by ``caller`` itself, with one
# wording for both schemes; declared as security schemes so /docs offers them
bearer_scheme = HTTPBearer(auto_error=False, description="a user's JWT or an API key")
api_key_scheme = APIKeyHeader(name="X-API-Key", auto_error=False, description="an API key")
CHALLENGE = {"WWW-Authenticate": "Bearer"}


def unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers=CHALLENGE)


async def authenticate(state: GatewayState, credential: str | None) -> Principal:
    """The principal a credential proves, or ``AuthError``."""
    if not credential:
        raise AuthError("a bearer token or API key is required")
    if looks_like_api_key(credential):
        async with state.pool.acquire() as conn:
            key = await verify_api_key(conn, credential)
        if key is None:
            raise AuthError("unknown, revoked or expired API key")
        return Principal("key", key=key)
    token = await state.tokens.verify(credential)
    return Principal("user", user_id=token.user_id, valid_until=token.valid_until)


async def caller(
    state: State,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    x_api_key: Annotated[str | None, Depends(api_key_scheme)],
) -> Principal:
    credential = (x_api_key or (bearer.credentials if bearer else "")).strip()
    try:
        return await authenticate(state, credential)
    except KeysUnavailable as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, exc.detail, headers={"Retry-After": "5"}
        ) from exc
    except AuthError as exc:
        raise unauthorized(exc.detail) from exc


Caller = Annotated[Principal, Depends(caller)]


async def current_user(principal: Caller) -> str:
    if principal.kind != "user" or principal.user_id is None:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "this route is for end users: send a user's bearer JWT"
        )
    return principal.user_id


CurrentUser = Annotated[str, Depends(current_user)]


def require_scope(scope: str) -> Callable[..., Awaitable[ApiKey]]:
    async def dependency(principal: Caller) -> ApiKey:
        if principal.kind != "key" or principal.key is None:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "this route needs an API key")
        if not principal.key.allows(scope):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"this key lacks the {scope!r} scope")
        return principal.key

    return dependency


def _route(connection: HTTPConnection) -> str:
    route = connection.scope.get("route")
    path = getattr(route, "path", connection.url.path)
    return f"{connection.scope.get('method', 'WS')} {path}"


async def enforce(
    state: GatewayState, caller_key: str, connection: HTTPConnection, policy: Policy
) -> None:
    """Take one request from the caller's bucket for this route, or raise ``429``."""
    limit = ratelimit.per_minute(state.settings, policy)
    key = ratelimit.bucket_key(caller_key, _route(connection))
    verdict = await ratelimit.take(state.pool, key, limit)
    if not verdict.allowed:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"rate limit of {limit} requests per minute reached; retry in {verdict.retry_after}s",
            headers={"Retry-After": str(verdict.retry_after)},
        )


def rate_limit(policy: Policy = Policy.DEFAULT) -> Callable[..., Awaitable[None]]:
    """Per authenticated caller and route."""

    async def dependency(request: Request, state: State, principal: Caller) -> None:
        await enforce(state, principal.rate_key, request, policy)

    dependency.herald_rate_limit = policy  # type: ignore[attr-defined]
    return dependency


def client_address(connection: HTTPConnection) -> str:
    """The caller's address: the peer's, or the one a trusted proxy forwarded
    (uvicorn applies ``HERALD_FORWARDED_ALLOW_IPS`` before the request gets here)."""
    return connection.client.host if connection.client else "unknown"


def rate_limit_by_client(policy: Policy = Policy.SENSITIVE) -> Callable[..., Awaitable[None]]:
    """Per client address and route, for public routes whose caller has no identity
    of its own (Telegram's servers)."""

    async def dependency(request: Request, state: State) -> None:
        await enforce(state, f"ip:{client_address(request)}", request, policy)

    dependency.herald_rate_limit = policy  # type: ignore[attr-defined]
    return dependency


def limited(policy: Policy = Policy.DEFAULT) -> list[params.Depends]:
    """``dependencies=limited(...)`` for a route decorator."""
    return [Depends(rate_limit(policy))]
