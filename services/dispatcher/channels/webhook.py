"""Generic webhooks signed per the Standard Webhooks specification.

The signature is ``v1,`` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")), where
the key is the base64 part of the endpoint's ``whsec_`` secret. ``webhook-id`` is the
delivery id, the same on every retry, so receivers can drop duplicates. The URL is
the user's: the client handed in must be the guarded one (``safe_http.guarded_client``),
which refuses non-public addresses when it connects.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import ClassVar

import aiohttp
import pydantic_core

from shared.endpoints import Endpoint

from ._base import DeliveryResult, Notification, classify_http, sent_as
from ._http import call

SECRET_PREFIX = "whsec_"  # noqa: S105 - a format marker, not a secret


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def webhook_body(notification: Notification) -> bytes:
    """Compact UTF-8 JSON, as ``json.dumps(separators=(",", ":"), ensure_ascii=False)``
    writes it, in a fifth of the time (pydantic's serialiser; a body per delivery)."""
    return pydantic_core.to_json(
        {
            "type": notification.type,
            "timestamp": notification.created_at.isoformat(),
            "data": notification.as_payload(),
        }
    )


class WebhookChannel:
    name: ClassVar[str] = "webhook"

    def __init__(self, http: aiohttp.ClientSession) -> None:
        self._http = http

    async def send(self, notification: Notification, endpoint: Endpoint) -> DeliveryResult:
        if not endpoint.url or not endpoint.secret:
            return DeliveryResult.permanent("webhook endpoint has no url or secret")
        body = webhook_body(notification)
        msg_id = f"msg_{sent_as(notification, endpoint).hex}"
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "user-agent": "Herald-Webhooks/1",
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(endpoint.secret, msg_id, timestamp, body),
        }
        response = await call(self._http, "POST", endpoint.url, content=body, headers=headers)
        if isinstance(response, DeliveryResult):
            return response
        return classify_http(response.status_code, response.headers.get("retry-after"))
