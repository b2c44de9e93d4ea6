"""Slack incoming webhooks: Block Kit with a plain ``text`` fallback.

Slack refuses a whole message (``invalid_blocks``, ``msg_blocks_too_long``) when one
block is over its limit, so ``slack_payload`` cuts by rule: a ``plain_text`` header
of at most 150 characters, the body in ``mrkdwn`` sections of at most 3,000 each
(split at paragraphs, lines, words), at most 50 blocks, and all block text within
12,000 characters, under the total at which Slack starts refusing. Slack does not
say how it counts, so lengths are UTF-16 units of the escaped text, never less than
what it could count. Incoming webhooks answer a bare word: "ok", or the error.

Only the hosts ``HERALD_SLACK_WEBHOOK_HOSTS`` lists are sent to (Slack's own, unless
the operator adds a Slack-compatible server such as Mattermost or Rocket.Chat).
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import aiohttp

from shared.endpoints import Endpoint
from shared.webhook_hosts import WebhookHosts

from ._base import DeliveryResult, Notification, Outcome, classify_http
from ._http import Reply, call
from ._text import Field, escape_mrkdwn, notification_fields, split_text, truncate, utf16_len

HEADER_MAX = 150
SECTION_MAX = 3000
FIELDS_MAX = 10
FIELD_MAX = 300  # Slack allows 2,000; kept short so fields leave the body room
FIELD_NAME_MAX = 100
BUTTON_TEXT_MAX = 75
BUTTON_URL_MAX = 3000
BLOCKS_MAX = 50
TEXT_TOTAL_MAX = 12_000
FALLBACK_MAX = 3000
# answers that mean this webhook will never work again
GONE_ERRORS = frozenset(
    {
        "no_service",
        "no_service_id",
        "no_team",
        "team_disabled",
        "channel_is_archived",
        "invalid_token",
    }
)


def mrkdwn_len(text: str) -> int:
    """Length of ``text`` as sent in a mrkdwn object: escaped, in UTF-16 units."""
    return utf16_len(escape_mrkdwn(text))


def slack_payload(notification: Notification) -> dict[str, Any]:
    """Header, body sections, a section of fields, a link button; ``text`` as fallback.

    The body gets what the header and fields leave of the 12,000 total.
    """
    blocks: list[dict[str, Any]] = []
    room = TEXT_TOTAL_MAX
    header = truncate(notification.title.strip(), HEADER_MAX, utf16_len)
    if header:
        blocks.append({"type": "header", "text": {"type": "plain_text", "text": header}})
        room -= utf16_len(header)
    fields = [_field_text(f) for f in notification_fields(notification.data)[:FIELDS_MAX]]
    room -= sum(utf16_len(f) for f in fields)
    action = _button(notification)
    room_for_blocks = BLOCKS_MAX - len(blocks) - (1 if fields else 0) - (1 if action else 0)
    body = truncate(notification.body, room, mrkdwn_len)
    # a guard only: 12,000 characters cut at 3,000 cannot make more than a dozen sections
    pieces = split_text(body, SECTION_MAX, mrkdwn_len)[:room_for_blocks]
    blocks.extend(
        {"type": "section", "text": {"type": "mrkdwn", "text": escape_mrkdwn(piece)}}
        for piece in pieces
    )
    if fields:
        blocks.append(
            {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields]}
        )
    if action:
        blocks.append(action)
    # Slack refuses a message without text ("no_text")
    fallback = (
        notification.title.strip()
        or notification.body.strip()
        or notification.link
        or notification.type
    )
    return {"text": escape_mrkdwn(truncate(fallback, FALLBACK_MAX, mrkdwn_len)), "blocks": blocks}


def _field_text(field: Field) -> str:
    """``*name*`` over its value, escaped, at most ``FIELD_MAX``; the bold stays closed."""
    name = truncate(field.name, FIELD_NAME_MAX, mrkdwn_len)
    value = truncate(field.value, FIELD_MAX - mrkdwn_len(name) - 3, mrkdwn_len)
    return escape_mrkdwn(f"*{name}*\n{value}")


def _button(notification: Notification) -> dict[str, Any] | None:
    link = notification.link
    if not link or utf16_len(link) > BUTTON_URL_MAX:
        return None
    label = notification.data.get("link_text")
    text = truncate(label if isinstance(label, str) and label.strip() else "Open", BUTTON_TEXT_MAX)
    return {
        "type": "actions",
        "elements": [{"type": "button", "text": {"type": "plain_text", "text": text}, "url": link}],
    }


class SlackChannel:
    name: ClassVar[str] = "slack"

    def __init__(self, http: aiohttp.ClientSession, hosts: WebhookHosts) -> None:
        self._http = http
        self._hosts = hosts

    async def send(self, notification: Notification, endpoint: Endpoint) -> DeliveryResult:
        if not endpoint.url:
            return DeliveryResult.permanent("slack endpoint has no url")
        refused = self._hosts.refusal(endpoint.url)
        if refused is not None:
            return DeliveryResult.permanent(refused)
        body = json.dumps(slack_payload(notification), ensure_ascii=False).encode()
        answer = await call(
            self._http,
            "POST",
            endpoint.url,
            content=body,
            headers={"content-type": "application/json"},
        )
        if isinstance(answer, DeliveryResult):
            return answer
        return slack_outcome(answer)


def slack_outcome(response: Reply) -> DeliveryResult:
    """By status as for any HTTP receiver, with Slack's error word in the detail;
    the errors that mean the webhook was removed mark the endpoint gone."""
    error = response.text.strip()[:200]
    result = classify_http(response.status_code, response.headers.get("retry-after"))
    if result.outcome is Outcome.DELIVERED or not error:
        return result
    return DeliveryResult(
        outcome=result.outcome,
        detail=f"{result.detail}: {error}",
        retry_after=result.retry_after,
        status_code=result.status_code,
        endpoint_gone=result.endpoint_gone
        or (result.outcome is Outcome.PERMANENT and error in GONE_ERRORS),
    )
