"""ASGI middleware that guards every route: bounded request bodies, and no internal
error ever shown to a caller (or written with its stack trace to the log)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger("herald.gateway")


async def _send_json(send: Send, status: int, body: dict[str, str]) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class BodyTooLarge(Exception):
    pass


class LimitBodySize:
    """Refuse a body over ``limit_for(path)`` bytes with ``413``: by its declared
    length before it is read, or as soon as a chunked body passes the limit."""

    def __init__(self, app: ASGIApp, limit_for: Callable[[str], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        too_large = {"detail": f"the request body exceeds {limit} bytes"}
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit():
                    await _send_json(send, 400, {"detail": "bad Content-Length"})
                    return
                if int(value) > limit:
                    await _send_json(send, 413, too_large)
                    return
        seen = 0
        started = refused = False

        async def counting_receive() -> Message:
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit and not refused:
                    # answered here and now: the app may turn the exception into an
                    # answer of its own (FastAPI's "error parsing the body"), which
                    # tracking_send then drops
                    refused = True
                    if not started:
                        await _send_json(send, 413, too_large)
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if refused:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        with contextlib.suppress(BodyTooLarge):
            await self.app(scope, counting_receive, tracking_send)


class ContainErrors:
    """The last line: an exception no handler took becomes a bare ``500`` and one log
    line naming its type, never a traceback (which can carry request data)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            log.error(
                "request_failed",
                method=scope.get("method"),
                path=scope.get("path"),
                error=type(exc).__name__,
            )
            if not started:
                await _send_json(send, 500, {"detail": "internal error"})
