"""Our webhook signatures verify with the upstream Standard Webhooks library."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from services.dispatcher.channels._base import Notification
from services.dispatcher.channels.webhook import sign, webhook_body
from tests.support import channel_notification

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


def notification() -> Notification:
    return channel_notification(
        type="application.status_changed",
        title="Interview stage — Café Ltd",
        body="You moved on.",
        created_at=datetime(2026, 11, 23, 10, tzinfo=UTC),
        data={"job_id": "j1"},
    )


def headers(body: bytes, msg_id: str = "msg_1", secret: str = SECRET) -> dict[str, str]:
    now = int(time.time())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(now),
        "webhook-signature": sign(secret, msg_id, now, body),
    }


def test_signature_verifies_with_standardwebhooks() -> None:
    body = webhook_body(notification())
    payload = Webhook(SECRET).verify(body, headers(body))
    assert payload["data"]["title"] == "Interview stage — Café Ltd"
    assert payload["type"] == "application.status_changed"


def test_a_tampered_body_fails_verification() -> None:
    body = webhook_body(notification())
    sent = headers(body)
    tampered = json.dumps({**json.loads(body), "type": "x"}).encode()
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(tampered, sent)


def test_a_different_secret_or_id_fails_verification() -> None:
    body = webhook_body(notification())
    other = "whsec_" + base64.b64encode(b"another-secret-another-secret-32").decode()
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body, headers(body, secret=other))
    sent = headers(body)
    sent["webhook-id"] = "msg_2"
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body, sent)
