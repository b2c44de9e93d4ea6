"""A webhook receiver of the demo's own: it checks each delivery's signature as any
receiver of Herald's webhooks should (Standard Webhooks), and keeps what came."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

TOLERANCE = 300  # seconds: older (or future) timestamps are refused as replays


class BadSignature(ValueError):
    pass


def verify(secret: str, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    """The delivery's JSON if its signature is good and fresh; else ``BadSignature``."""
    msg_id = headers["webhook-id"]
    timestamp = headers["webhook-timestamp"]
    if abs(time.time() - int(timestamp)) > TOLERANCE:
        raise BadSignature("timestamp too old or too new")
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)
    expected = base64.b64encode(mac.digest()).decode()
    for signature in headers["webhook-signature"].split():
        version, _, value = signature.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            return json.loads(body)  # type: ignore[no-any-return]
    raise BadSignature("no valid v1 signature")


@dataclass
class Delivery:
    user_id: str
    webhook_id: str
    verified: bool
    payload: dict[str, Any] | None
    error: str | None = None


@dataclass
class Receiver:
    """``http://127.0.0.1:<port>/herald-demo/<user id>``; secrets are added per user
    once Herald has made them (the answer to creating the channel)."""

    host: str = "127.0.0.1"
    secrets: dict[str, str] = field(default_factory=dict)
    deliveries: list[Delivery] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None

    def url(self, user_id: str) -> str:
        return f"http://{self.host}:{self.port}/herald-demo/{user_id}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/herald-demo/{user_id}", self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((self.host, 0))  # any free port
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _receive(self, request: web.Request) -> web.Response:
        user_id = request.match_info["user_id"]
        body = await request.read()
        webhook_id = request.headers.get("webhook-id", "?")
        secret = self.secrets.get(user_id)
        try:
            if secret is None:
                raise BadSignature("no secret for this user")
            payload = verify(secret, request.headers, body)
        except (BadSignature, KeyError, ValueError) as exc:
            self.deliveries.append(Delivery(user_id, webhook_id, False, None, str(exc)))
            return web.Response(status=401)
        if not any(d.webhook_id == webhook_id for d in self.deliveries):  # a retry
            self.deliveries.append(Delivery(user_id, webhook_id, True, payload))
        return web.Response(status=204)
