"""Discord webhooks: one embed per notification, cut to Discord's limits.

Discord answers 400 to an embed one character over any limit, so ``discord_payload``
truncates every part by rule (lengths in code points, as Discord counts them) and
keeps the sum of an embed's text within 6,000. The webhook is called with
``?wait=true`` so the answer is the created message and its id can be recorded.
``allowed_mentions`` is empty: text from a job posting must not ping ``@everyone``.
Only the hosts ``HERALD_DISCORD_WEBHOOK_HOSTS`` lists are sent to.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import aiohttp

from shared.endpoints import Endpoint
from shared.webhook_hosts import WebhookHosts

from ._base import (
    DeliveryResult,
    Notification,
    Outcome,
    classify_http,
    parse_retry_after,
    wait_seconds,
)
from ._http import Reply, call, json_object
from ._text import Field, notification_fields, truncate

TITLE_MAX = 256
DESCRIPTION_MAX = 4096
FIELDS_MAX = 25
FIELD_NAME_MAX = 256
FIELD_VALUE_MAX = 1024
FOOTER_MAX = 2048
EMBED_TOTAL_MAX = 6000

COLOURS = {"low": 0x95A5A6, "normal": 0x5865F2, "high": 0xE67E22, "urgent": 0xE74C3C}
# Discord refuses empty field names and values; a zero-width space shows nothing
BLANK = "\u200b"
# JSON error codes that mean the webhook itself no longer exists
UNKNOWN_WEBHOOK = 10015
INVALID_WEBHOOK_TOKEN = 50027
GONE_CODES = frozenset({UNKNOWN_WEBHOOK, INVALID_WEBHOOK_TOKEN})


def discord_payload(notification: Notification) -> dict[str, Any]:
    """The webhook body: one embed within every Discord limit.

    The description gets what the title and footer leave of the 6,000 total; fields
    share what is left after that, in order, and the ones that no longer fit are
    left out.
    """
    title = truncate(notification.title.strip(), TITLE_MAX)
    footer = truncate(
        str(notification.data.get("footer") or f"Herald · {notification.type}"), FOOTER_MAX
    )
    room = EMBED_TOTAL_MAX - len(title) - len(footer)
    description = truncate(notification.body.strip(), min(DESCRIPTION_MAX, room))
    room -= len(description)
    embed: dict[str, Any] = {
        "color": COLOURS.get(notification.priority, COLOURS["normal"]),
        "timestamp": notification.created_at.isoformat(),
        "footer": {"text": footer},
    }
    if title:
        embed["title"] = title
    if description:
        embed["description"] = description
    if notification.link:
        embed["url"] = notification.link
    fields = []
    for field in notification_fields(notification.data)[:FIELDS_MAX]:
        shaped = _embed_field(field, room)
        if shaped is None:
            break
        room -= len(shaped["name"]) + len(shaped["value"])
        fields.append(shaped)
    if fields:
        embed["fields"] = fields
    return {"embeds": [embed], "allowed_mentions": {"parse": []}}


def _embed_field(field: Field, room: int) -> dict[str, Any] | None:
    name = truncate(field.name, min(FIELD_NAME_MAX, room - 1)) or BLANK
    value = truncate(field.value, min(FIELD_VALUE_MAX, room - len(name))) or BLANK
    if len(name) + len(value) > room:
        return None
    return {"name": name, "value": value, "inline": field.inline}


def embed_text_length(embed: dict[str, Any]) -> int:
    """What Discord adds up against ``EMBED_TOTAL_MAX``."""
    fields = embed.get("fields", [])
    return (
        len(embed.get("title", ""))
        + len(embed.get("description", ""))
        + len(embed.get("footer", {}).get("text", ""))
        + len(embed.get("author", {}).get("name", ""))
        + sum(len(f["name"]) + len(f["value"]) for f in fields)
    )


class DiscordChannel:
    name: ClassVar[str] = "discord"

    def __init__(self, http: aiohttp.ClientSession, hosts: WebhookHosts) -> None:
        self._http = http
        self._hosts = hosts

    async def send(self, notification: Notification, endpoint: Endpoint) -> DeliveryResult:
        if not endpoint.url:
            return DeliveryResult.permanent("discord endpoint has no url")
        refused = self._hosts.refusal(endpoint.url)
        if refused is not None:
            return DeliveryResult.permanent(refused)
        body = json.dumps(discord_payload(notification), ensure_ascii=False).encode()
        answer = await call(
            self._http,
            "POST",
            endpoint.url,
            params={"wait": "true"},
            content=body,
            headers={"content-type": "application/json"},
        )
        if isinstance(answer, DeliveryResult):
            return answer
        return discord_outcome(answer)


def discord_outcome(response: Reply) -> DeliveryResult:
    """Delivered with the message id; 429 waits as long as Discord says (header or
    body); "Unknown Webhook" and "Invalid Webhook Token" mean the endpoint is gone."""
    status = response.status_code
    answer = json_object(response)
    if 200 <= status < 300:
        message_id = answer.get("id")
        return DeliveryResult.delivered(
            f"HTTP {status}", status, str(message_id) if message_id is not None else None
        )
    message = str(answer.get("message", ""))[:200]
    if status == 429:
        return DeliveryResult.transient(
            f"HTTP 429: {message or 'rate limited'}",
            retry_after=_retry_after(response.headers.get("retry-after"), answer),
            status_code=status,
        )
    code = answer.get("code")
    if code in GONE_CODES:
        return DeliveryResult(
            outcome=Outcome.PERMANENT,
            detail=f"HTTP {status}: Discord error {code}: {message}",
            status_code=status,
            endpoint_gone=True,
        )
    result = classify_http(status, response.headers.get("retry-after"))
    if message:
        return DeliveryResult(
            outcome=result.outcome,
            detail=f"{result.detail}: {message}",
            retry_after=result.retry_after,
            status_code=status,
            endpoint_gone=result.endpoint_gone,
        )
    return result


def _retry_after(header: str | None, answer: dict[str, Any]) -> float | None:
    """The longer of the header and the body's ``retry_after`` (seconds, may be
    fractional), so a retry never comes early."""
    waits = [_header_wait(header), wait_seconds(answer.get("retry_after"))]
    known = [w for w in waits if w is not None]
    return max(known) if known else None


def _header_wait(header: str | None) -> float | None:
    """Discord's header may be fractional ("1.5"), which a standard Retry-After is not."""
    if not header:
        return None
    try:
        return wait_seconds(float(header))
    except ValueError:
        return parse_retry_after(header)
