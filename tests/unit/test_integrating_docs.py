"""docs/integrating.md: what needs no broker, checked against the code it describes.
(The AMQP and HTTP snippets run in tests/integration/test_integrating_docs.py.)"""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
import uuid
from typing import Any

import pytest

from services.dispatcher.channels.webhook import sign
from shared.events import payload_model
from tests.docs import INTEGRATING, snippet, snippets
from tools.asyncapi import PUBLISHERS, YOU


def signed(body: bytes, secret: str, *, at: float | None = None) -> dict[str, str]:
    """Headers as Herald's webhook channel sends them."""
    msg_id = f"msg_{uuid.uuid4().hex}"
    timestamp = int(at if at is not None else time.time())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
    }


SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
BODY = json.dumps({"type": "job_match", "data": {"title": "New match"}}).encode()


def test_every_marked_snippet_is_found() -> None:
    marked = re.findall(r"<!-- test: ([\w-]+) -->", INTEGRATING.read_text())
    assert sorted(snippets()) == sorted(marked)


def test_hand_written_verification_accepts_herald_signatures_only() -> None:
    scope: dict[str, Any] = {}
    exec(snippet("webhook-by-hand"), scope)
    verify = scope["verify"]
    headers = signed(BODY, SECRET)
    assert verify(SECRET, headers, BODY) == json.loads(BODY)
    with pytest.raises(ValueError, match="bad signature"):
        verify(SECRET, headers, BODY.replace(b"New", b"Old"))
    other = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    with pytest.raises(ValueError, match="bad signature"):
        verify(other, headers, BODY)
    with pytest.raises(ValueError, match="replay"):
        verify(SECRET, signed(BODY, SECRET, at=time.time() - 600), BODY)
    # a receiver must accept any of several signatures (secret rotation)
    rotated = {**headers, "webhook-signature": "v1,bm9wZQ== " + headers["webhook-signature"]}
    assert verify(SECRET, rotated, BODY) == json.loads(BODY)


def test_library_verification_accepts_herald_signatures() -> None:
    from standardwebhooks.webhooks import WebhookVerificationError

    scope: dict[str, Any] = {"secret": SECRET, "body": BODY, "headers": signed(BODY, SECRET)}
    exec(snippet("webhook-library"), scope)
    assert scope["payload"] == json.loads(BODY)
    scope["body"] = BODY + b" "
    with pytest.raises(WebhookVerificationError):
        exec(snippet("webhook-library"), scope)


def _table() -> list[tuple[list[str], set[str]]]:
    text = INTEGRATING.read_text().split("## The events you publish", 1)[1]
    rows = []
    for line in text.split("\n\n", 2)[1].splitlines()[2:]:
        types, _, fields = (cell.strip() for cell in line.strip("|").split("|"))
        rows.append((re.findall(r"`([\w.]+)`", types), set(re.findall(r"`(\w+)`", fields))))
    return rows


def test_the_table_of_events_to_publish_matches_the_models() -> None:
    rows = _table()
    listed = [t for types, _ in rows for t in types]
    assert sorted(listed) == sorted(t for t, who in PUBLISHERS.items() if YOU in who)
    for types, fields in rows:
        required = {
            name
            for t in types
            for name, field in payload_model(t).model_fields.items()
            if field.is_required()
        }
        assert fields == required, (types, fields ^ required)
