"""Real local HTTP servers that stand in for Discord, Slack, Telegram, Teams, SendGrid
and webhook receivers in tests, or for any HTTP server (``plain``: 200, no body).

A ``Receiver`` listens on a free port of 127.0.0.1, records every request it gets
and answers the way the service it impersonates answers a good request. A test
scripts anything else per path, one behaviour per request, in order::

    async with Receiver("discord") as discord:
        discord.script("/hook", Reply(429, {"retry_after": 1.5}), Drop(), Reply(500))
        ...  # the 4th request to /hook and later get Discord's usual answer
        assert discord.requests[0].json()["embeds"]

It is a small HTTP/1.1 server on raw asyncio streams rather than an ASGI app, so it
can do what real services and networks do and frameworks do not: answer late,
or drop the connection without answering. Given an ``ssl_context`` it serves HTTPS.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import ssl
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

ANY_PATH = "*"
SERVICES = ("discord", "slack", "telegram", "teams", "sendgrid", "webhook", "plain")


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names in lower case
    body: bytes
    at: float  # the event loop's clock when the request was complete

    @property
    def text(self) -> str:
        return self.body.decode()

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Reply:
    """Answer with ``status``, after ``delay`` seconds. A dict or list body is sent as
    JSON, a str as text."""

    status: int = 200
    body: bytes | str | dict[str, Any] | list[Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass(frozen=True)
class Drop:
    """Close the connection without answering, after ``delay`` seconds."""

    delay: float = 0.0


Behaviour = Reply | Drop


class Receiver:
    def __init__(
        self, impersonate: str = "webhook", *, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        if impersonate not in SERVICES:
            raise ValueError(f"impersonate one of {SERVICES}, not {impersonate!r}")
        self.impersonate = impersonate
        self.ssl_context = ssl_context
        self.requests: list[Request] = []
        self._scripts: defaultdict[str, deque[Behaviour]] = defaultdict(deque)
        self._ids = itertools.count(1)
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def url(self) -> str:
        scheme = "http" if self.ssl_context is None else "https"
        return f"{scheme}://127.0.0.1:{self.port}"

    def script(self, path: str, *behaviours: Behaviour) -> None:
        """Queue how the next requests to ``path`` (query ignored; ``ANY_PATH`` for
        every path without a script of its own) are answered."""
        self._scripts[path].extend(behaviours)

    def to(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]

    async def __aenter__(self) -> Receiver:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ssl_context)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._connections:
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            while (request := await _read_request(reader)) is not None:
                self.requests.append(request)
                behaviour = self._next(request)
                if behaviour.delay:
                    await asyncio.sleep(behaviour.delay)
                if isinstance(behaviour, Drop):
                    writer.transport.abort()
                    return
                writer.write(_encode(behaviour))
                await writer.drain()
                if request.headers.get("connection", "").lower() == "close":
                    return
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            writer.transport.abort()
        except asyncio.CancelledError:
            # the receiver is closing: end quietly (asyncio logs a cancelled
            # connection handler as an error otherwise)
            writer.transport.abort()
            return
        finally:
            self._connections.discard(task)
            writer.close()

    def _next(self, request: Request) -> Behaviour:
        for path in (request.path, ANY_PATH):
            if self._scripts[path]:
                return self._scripts[path].popleft()
        return self._usual_answer(request)

    def _usual_answer(self, request: Request) -> Reply:
        """What the real service answers a request it accepts."""
        n = next(self._ids)
        match self.impersonate:
            case "discord" if request.query.get("wait") == "true":
                return Reply(200, {"id": str(1_300_000_000_000_000_000 + n), "type": 0})
            case "discord" | "webhook":
                return Reply(204)
            case "slack":
                return Reply(200, "ok")
            case "telegram":
                chat_id = _json_or_empty(request.body).get("chat_id")
                return Reply(
                    200,
                    {
                        "ok": True,
                        "result": {
                            "message_id": n,
                            "date": int(time.time()),
                            "chat": {"id": chat_id},
                        },
                    },
                )
            case "teams":
                return Reply(200, "1")
            case "plain":
                return Reply(200)
            case _:  # sendgrid
                return Reply(202, headers={"x-message-id": f"sg{n:08d}"})


@contextlib.asynccontextmanager
async def receivers() -> AsyncIterator[Callable[[str], Awaitable[Receiver]]]:
    """A factory for a test fixture: every receiver it starts is stopped at the end.

    ``async with receivers() as start: discord = await start("discord")``
    """
    async with contextlib.AsyncExitStack() as stack:

        async def start(impersonate: str = "webhook") -> Receiver:
            return await stack.enter_async_context(Receiver(impersonate))

        yield start


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    """One HTTP/1.1 request, or None when the client closed the connection."""
    line = await reader.readline()
    if not line.strip():
        return None
    method, target, _version = line.decode("latin-1").split(" ", 2)
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while size := int((await reader.readline()).split(b";")[0], 16):
            body += await reader.readexactly(size)
            await reader.readline()
        while (await reader.readline()) not in (b"\r\n", b"\n", b""):
            pass  # trailers
    else:
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    parts = urlsplit(target)
    return Request(
        method,
        parts.path,
        dict(parse_qsl(parts.query)),
        headers,
        body,
        asyncio.get_running_loop().time(),
    )


def _encode(reply: Reply) -> bytes:
    headers = {k.lower(): v for k, v in reply.headers.items()}
    body = reply.body
    if isinstance(body, dict | list):
        payload = json.dumps(body).encode()
        headers.setdefault("content-type", "application/json")
    elif isinstance(body, str):
        payload = body.encode()
        headers.setdefault("content-type", "text/plain; charset=utf-8")
    else:
        payload = body or b""
    headers["content-length"] = str(len(payload))
    try:
        reason = HTTPStatus(reply.status).phrase
    except ValueError:
        reason = ""
    head = f"HTTP/1.1 {reply.status} {reason}\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in headers.items()
    )
    return head.encode("latin-1") + b"\r\n" + payload


def _json_or_empty(body: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(body)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}
