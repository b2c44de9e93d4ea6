"""Telegram Bot API ``sendMessage`` in HTML parse mode, split to fit 4,096 characters.

Telegram rejects a message over 4,096 characters (counted after its HTML is parsed)
and has no truncation of its own, so a long notification goes out as several
messages, in order, cut at paragraph, line or word boundaries (a body longer than
eight messages is truncated first, so one notification never floods a chat). Lengths are counted
in UTF-16 units: Telegram measures its entities that way, and it is never less than
the characters it could count instead. Every piece is escaped separately, and the
bold title and the link stay well-formed when a cut falls inside them.

The bot token is part of every request URL; it is taken out of any detail this
channel reports, so it cannot reach delivery history or logs from here.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, ClassVar

import aiohttp

from shared.endpoints import Endpoint

from ._base import (
    DeliveryResult,
    Notification,
    Outcome,
    classify_http,
    parse_retry_after,
    wait_seconds,
)
from ._http import Reply, call, json_object
from ._text import escape_html, split_spans, truncate, utf16_len

MESSAGE_MAX = 4096
# A body longer than this is truncated: a notification is not worth a flood of
# messages (and Telegram lets a bot send about one a second to a chat).
BODY_MAX = 8 * MESSAGE_MAX
# Once part of a long notification is out, a short 429 on a later part is waited out
# here: returning it would make the retry send the earlier parts a second time.
INLINE_WAIT_MAX = 5.0
REDACTED = "[redacted]"

# (start, end, opening tag, closing tag) over the plain text
Style = tuple[int, int, str, str]


def telegram_messages(notification: Notification) -> list[str]:
    """The HTML texts to send, in order: bold title, body, link; each ≤ 4,096.

    Usually one message; a long body makes several, about nine at most.
    """
    plain = ""
    styles: list[Style] = []
    link = notification.link
    parts = [
        (notification.title.strip(), "<b>", "</b>"),
        (truncate(notification.body.strip(), BODY_MAX, utf16_len), "", ""),
        (link or "", f'<a href="{escape_html(link or "", quote=True)}">', "</a>"),
    ]
    for text, opening, closing in parts:
        if not text:
            continue
        if plain:
            plain += "\n\n"
        start = len(plain)
        plain += text
        if opening:
            styles.append((start, len(plain), opening, closing))
    spans = split_spans(plain, MESSAGE_MAX, utf16_len)
    if not spans:
        return [escape_html(notification.type)]
    return [_render(plain, start, end, styles) for start, end in spans]


def _render(plain: str, start: int, end: int, styles: list[Style]) -> str:
    out: list[str] = []
    at = start
    for style_start, style_end, opening, closing in styles:
        lo, hi = max(style_start, start), min(style_end, end)
        if lo >= hi:
            continue
        out.append(escape_html(plain[at:lo]))
        out.append(opening + escape_html(plain[lo:hi]) + closing)
        at = hi
    out.append(escape_html(plain[at:end]))
    return "".join(out)


def telegram_payload(chat_id: str, text: str) -> dict[str, Any]:
    return {
        "chat_id": chat_id,
        "text": text,
        "parse_mode": "HTML",
        "link_preview_options": {"is_disabled": True},
    }


class TelegramChannel:
    name: ClassVar[str] = "telegram"

    def __init__(self, http: aiohttp.ClientSession, bot_token: str, api_url: str) -> None:
        self._http = http
        self._token = bot_token
        self._url = f"{api_url.rstrip('/')}/bot{bot_token}/sendMessage"

    async def send(self, notification: Notification, endpoint: Endpoint) -> DeliveryResult:
        if not endpoint.chat_id:
            return DeliveryResult.permanent("telegram endpoint has no chat_id")
        messages = telegram_messages(notification)
        sent: list[str] = []
        for index, text in enumerate(messages):
            result = await self._send_one(endpoint.chat_id, text)
            wait = result.retry_after
            if sent and result.status_code == 429 and wait is not None and wait <= INLINE_WAIT_MAX:
                await asyncio.sleep(wait)
                result = await self._send_one(endpoint.chat_id, text)
            if result.outcome is not Outcome.DELIVERED:
                if sent:
                    detail = (
                        f"part {index + 1} of {len(messages)}: {result.detail} "
                        f"(parts 1-{index} were sent as {','.join(sent)})"
                    )
                    result = DeliveryResult(
                        outcome=result.outcome,
                        detail=detail,
                        retry_after=result.retry_after,
                        status_code=result.status_code,
                        endpoint_gone=result.endpoint_gone,
                    )
                return result
            sent.append(result.provider_id or "")
        return DeliveryResult.delivered(
            f"{len(messages)} message(s)", 200, ",".join(sent) if any(sent) else None
        )

    async def _send_one(self, chat_id: str, text: str) -> DeliveryResult:
        body = json.dumps(telegram_payload(chat_id, text), ensure_ascii=False).encode()
        answer = await call(
            self._http,
            "POST",
            self._url,
            content=body,
            headers={"content-type": "application/json"},
        )
        result = answer if isinstance(answer, DeliveryResult) else telegram_outcome(answer)
        if self._token and self._token in result.detail:
            return DeliveryResult(
                outcome=result.outcome,
                detail=result.detail.replace(self._token, REDACTED),
                retry_after=result.retry_after,
                status_code=result.status_code,
                provider_id=result.provider_id,
                endpoint_gone=result.endpoint_gone,
            )
        return result


def telegram_outcome(response: Reply) -> DeliveryResult:
    """Telegram's JSON answer as an outcome.

    429 waits ``parameters.retry_after``; 403 (blocked by the user, kicked from the
    group, user deactivated), "chat not found" and a group that became a supergroup
    mean the chat is gone for this bot; other 4xx are permanent, 5xx transient.
    """
    status = response.status_code
    answer = json_object(response)
    if 200 <= status < 300:
        result = answer.get("result")
        message_id = result.get("message_id") if isinstance(result, dict) else None
        return DeliveryResult.delivered(
            f"HTTP {status}", status, str(message_id) if message_id is not None else None
        )
    description = str(answer.get("description", ""))[:200]
    parameters = answer.get("parameters")
    parameters = parameters if isinstance(parameters, dict) else {}
    if status == 429:
        retry_after = wait_seconds(parameters.get("retry_after"))
        if retry_after is None:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
        return DeliveryResult.transient(
            f"HTTP 429: {description or 'too many requests'}",
            retry_after=retry_after,
            status_code=status,
        )
    if status in (401, 404):  # the bot token is wrong or revoked: ours to fix
        return DeliveryResult.misconfigured(
            f"HTTP {status}: the bot token was refused: {description}", status
        )
    migrated = parameters.get("migrate_to_chat_id")
    if migrated is not None:
        description = f"{description} (the chat is now {migrated})"
    if status == 403 or migrated is not None or "chat not found" in description.lower():
        return DeliveryResult(
            outcome=Outcome.PERMANENT,
            detail=f"HTTP {status}: {description}",
            status_code=status,
            endpoint_gone=True,
        )
    result = classify_http(status, response.headers.get("retry-after"))
    if not description:
        return result
    return DeliveryResult(
        outcome=result.outcome,
        detail=f"{result.detail}: {description}",
        retry_after=result.retry_after,
        status_code=status,
        endpoint_gone=result.endpoint_gone,
    )
