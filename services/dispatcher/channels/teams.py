"""Microsoft Teams webhooks: one Adaptive Card (1.4), kept under Teams' 28 KB limit.

Teams limits a message by its size in bytes, not by characters, so ``teams_payload``
measures the JSON exactly as it is sent and shortens the body until the whole
payload fits (facts go first only if they alone leave no room).

Legacy Office 365 connectors answer HTTP 200 even when delivery failed, with the
real status in the text ("Webhook message delivery failed with error: Microsoft
Teams endpoint returned HTTP error 429 ..."); that text is read as the status it
names. It is found by two literal searches, one after the other, linear in the text:
one pattern ``delivery failed.*?HTTP error`` would scan the rest of the text again
from every "delivery failed" in it, quadratic in what the receiver chose to send.
Workflows (Power Automate) webhooks answer 202 with an empty body.

Only the hosts ``HERALD_TEAMS_WEBHOOK_HOSTS`` lists are sent to.
"""

from __future__ import annotations

import json
import re
from typing import Any, ClassVar

import aiohttp

from shared.endpoints import Endpoint
from shared.webhook_hosts import WebhookHosts

from ._base import DeliveryResult, Notification, Outcome, classify_http
from ._http import Reply, call
from ._text import Field, notification_fields, truncate

# Teams refuses more than 28 KB; the margin leaves room for what Teams wraps around it
PAYLOAD_MAX_BYTES = 27_000
TITLE_MAX = 1024
FACTS_MAX = 25
FACT_TITLE_MAX = 256
FACT_VALUE_MAX = 1024
ACTION_TITLE_MAX = 75
CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
_DELIVERY_FAILED = re.compile("delivery failed", re.IGNORECASE)
_HTTP_ERROR = re.compile("HTTP error ([0-9]{3})", re.IGNORECASE)


def encode(payload: dict[str, Any]) -> bytes:
    """The bytes sent, and so the bytes measured."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def json_bytes(text: str) -> int:
    """What ``text`` adds to an encoded payload as a JSON string's content."""
    return len(encode({"": text})) - len(encode({"": ""}))


def teams_payload(notification: Notification) -> dict[str, Any]:
    title = truncate(notification.title.strip(), TITLE_MAX)
    facts = [_fact(f) for f in notification_fields(notification.data)[:FACTS_MAX]]
    while True:
        empty = _message(notification, title, "", facts)
        room = PAYLOAD_MAX_BYTES - len(encode(empty))
        # facts give way when they leave less room than a short body needs
        if room >= min(json_bytes(notification.body), 1024) or not facts:
            break
        facts.pop()
    return _message(notification, title, truncate(notification.body, room, json_bytes), facts)


def _fact(field: Field) -> dict[str, str]:
    return {
        "title": truncate(field.name, FACT_TITLE_MAX),
        "value": truncate(field.value, FACT_VALUE_MAX),
    }


def _message(
    notification: Notification, title: str, body: str, facts: list[dict[str, str]]
) -> dict[str, Any]:
    elements: list[dict[str, Any]] = []
    if title:
        elements.append(
            {"type": "TextBlock", "text": title, "weight": "Bolder", "size": "Medium", "wrap": True}
        )
    if notification.body.strip():  # present even while measured empty
        elements.append({"type": "TextBlock", "text": body, "wrap": True})
    if facts:
        elements.append({"type": "FactSet", "facts": facts})
    card: dict[str, Any] = {
        "$schema": CARD_SCHEMA,
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": elements,
    }
    if notification.link:
        label = notification.data.get("link_text")
        card["actions"] = [
            {
                "type": "Action.OpenUrl",
                "title": truncate(
                    label if isinstance(label, str) and label.strip() else "Open", ACTION_TITLE_MAX
                ),
                "url": notification.link,
            }
        ]
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": card,
            }
        ],
    }


class TeamsChannel:
    name: ClassVar[str] = "teams"

    def __init__(self, http: aiohttp.ClientSession, hosts: WebhookHosts) -> None:
        self._http = http
        self._hosts = hosts

    async def send(self, notification: Notification, endpoint: Endpoint) -> DeliveryResult:
        if not endpoint.url:
            return DeliveryResult.permanent("teams endpoint has no url")
        refused = self._hosts.refusal(endpoint.url)
        if refused is not None:
            return DeliveryResult.permanent(refused)
        answer = await call(
            self._http,
            "POST",
            endpoint.url,
            content=encode(teams_payload(notification)),
            headers={"content-type": "application/json"},
        )
        if isinstance(answer, DeliveryResult):
            return answer
        return teams_outcome(answer)


def teams_outcome(response: Reply) -> DeliveryResult:
    """By status; a 2xx whose text says delivery failed counts as the status inside."""
    text = response.text.strip()
    status = response.status_code
    named = failed_delivery_status(text) if 200 <= status < 300 else None
    if named is not None:
        status = named
    result = classify_http(status, response.headers.get("retry-after"))
    if result.outcome is Outcome.DELIVERED or not text:
        return result
    return DeliveryResult(
        outcome=result.outcome,
        detail=f"{result.detail}: {text[:200]}",
        retry_after=result.retry_after,
        status_code=status,
        endpoint_gone=result.endpoint_gone,
    )


def failed_delivery_status(text: str) -> int | None:
    """The status in "... delivery failed ... HTTP error 429 ...", else None: the
    first "HTTP error" after the first "delivery failed"."""
    failed = _DELIVERY_FAILED.search(text)
    if failed is None:
        return None
    named = _HTTP_ERROR.search(text, failed.end())
    return None if named is None else int(named.group(1))
