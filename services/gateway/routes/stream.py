"""The live inbox: new notifications pushed as they reach the calling user's inbox.

Two transports carry the same items: Server-Sent Events
(``GET /v1/me/notifications/stream``) and a WebSocket (``/v1/me/notifications/ws``).
Both take the user's JWT as ``Authorization: Bearer`` or, because browsers cannot
set headers on ``EventSource`` and ``WebSocket``, as ``?access_token=`` (the gateway
writes no access log, so it lands nowhere). The first message is ``ready`` with the
unread count; then one ``notification`` per new item (the inbox item's fields).
A client that reconnects catches up with ``GET /v1/me/notifications?since=``.

A session lasts no longer than the token that opened it (until its ``exp``, plus
the leeway auth allows): then the SSE stream sends ``expired`` and ends, the
WebSocket closes with 1008 (policy violation) and ``token expired``. The client
reconnects with a fresh token; a revoked or stolen one stops working by then.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, WebSocket, status
from fastapi.security import HTTPAuthorizationCredentials
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.websockets import WebSocketDisconnect

from .. import inbox
from ..auth import AuthError, KeysUnavailable, Principal
from ..dependencies import State, authenticate, bearer_scheme, enforce, get_state, unauthorized
from ..ratelimit import Policy
from ..state import GatewayState

router = APIRouter(prefix="/v1/me/notifications", tags=["inbox"])

# open sessions per user on one replica: more is a leak or an abuse
MAX_SESSIONS_PER_USER = 10
PING_SECONDS = 15
# WebSocket close codes (private range 4000-4999, mirroring HTTP)
CLOSE_UNAUTHORIZED = 4401
CLOSE_TOO_MANY = 4429
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_POLICY_VIOLATION = 1008
EXPIRED = "token expired"


async def _stream_user(state: GatewayState, credential: str | None) -> tuple[str, float | None]:
    """The user, and until when their token holds (``None``: no end)."""
    principal: Principal = await authenticate(state, credential)
    if principal.kind != "user" or principal.user_id is None:
        raise AuthError("the live stream is for end users: send a user's bearer JWT")
    return principal.user_id, principal.valid_until


def _seconds_left(valid_until: float | None) -> float | None:
    return None if valid_until is None else max(valid_until - time.time(), 0.0)


def _too_many(state: GatewayState, user_id: str) -> bool:
    return state.hub.sessions_of(user_id) >= MAX_SESSIONS_PER_USER


@router.get(
    "/stream",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "the live inbox"}},
)
async def stream(
    request: Request,
    state: State,
    access_token: Annotated[str | None, Query(max_length=4096)] = None,
) -> EventSourceResponse:
    bearer: HTTPAuthorizationCredentials | None = await bearer_scheme(request)
    try:
        user_id, valid_until = await _stream_user(
            state, access_token or (bearer.credentials if bearer else None)
        )
    except KeysUnavailable as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, exc.detail) from exc
    except AuthError as exc:
        raise unauthorized(exc.detail) from exc
    await enforce(state, f"u:{user_id}", request, Policy.DEFAULT)
    if _too_many(state, user_id):
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"at most {MAX_SESSIONS_PER_USER} live sessions per user",
            headers={"Retry-After": "30"},
        )

    async def events() -> AsyncIterator[ServerSentEvent]:
        async with state.hub.session(user_id) as queue:
            async with state.pool.acquire() as conn:
                unread = await inbox.unread_count(conn, user_id)
            yield ServerSentEvent(data=f'{{"unread": {unread}}}', event="ready")
            while True:
                try:
                    # not around the yield: a timeout there would cancel the sender
                    item = await asyncio.wait_for(queue.get(), _seconds_left(valid_until))
                except TimeoutError:
                    yield ServerSentEvent(data=f'{{"reason": "{EXPIRED}"}}', event="expired")
                    return
                yield ServerSentEvent(
                    data=item.model_dump_json(), event="notification", id=str(item.id)
                )

    return EventSourceResponse(events(), ping=PING_SECONDS, headers={"Cache-Control": "no-store"})


@router.websocket("/ws")
async def websocket_stream(websocket: WebSocket, access_token: str | None = None) -> None:
    state = get_state(websocket)
    header = websocket.headers.get("authorization", "")
    credential = access_token or (header[7:].strip() if header[:7].lower() == "bearer " else None)
    try:
        user_id, valid_until = await _stream_user(state, credential)
        await enforce(state, f"u:{user_id}", websocket, Policy.DEFAULT)
    except KeysUnavailable as exc:
        await websocket.close(CLOSE_TRY_AGAIN_LATER, exc.detail[:120])
        return
    except AuthError as exc:
        await websocket.close(CLOSE_UNAUTHORIZED, exc.detail[:120])
        return
    except HTTPException as exc:  # the rate limit
        await websocket.close(CLOSE_TOO_MANY, str(exc.detail)[:120])
        return
    if _too_many(state, user_id):
        await websocket.close(CLOSE_TOO_MANY, "too many live sessions")
        return
    await websocket.accept()
    async with state.hub.session(user_id) as queue:
        async with state.pool.acquire() as conn:
            unread = await inbox.unread_count(conn, user_id)
        await websocket.send_json({"type": "ready", "unread": unread})
        # the client says nothing we need, but reading is how its leaving is noticed
        reader = asyncio.create_task(_drain(websocket))
        try:
            while not reader.done():
                getter = asyncio.create_task(queue.get())
                done, _ = await asyncio.wait(
                    {getter, reader},
                    timeout=_seconds_left(valid_until),
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if not done:
                    getter.cancel()
                    await websocket.close(CLOSE_POLICY_VIOLATION, EXPIRED)
                    break
                if not getter.done():
                    getter.cancel()
                    break
                item = getter.result()
                await websocket.send_json(
                    {"type": "notification", "notification": item.model_dump(mode="json")}
                )
        except (WebSocketDisconnect, RuntimeError):
            pass  # gone while we were sending
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect):
                await reader


async def _drain(websocket: WebSocket) -> None:
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
