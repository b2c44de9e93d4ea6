"""``POST /v1/telegram/webhook``: the bot's updates, where users prove a chat is theirs.

Public, but only Telegram knows the secret token it sends in
``X-Telegram-Bot-Api-Secret-Token`` (registered by ``herald telegram set-webhook``);
a request without it gets a bare ``403``. The route exists only when
``HERALD_TELEGRAM_WEBHOOK_SECRET`` is set. Telegram retries an update until it gets a
2xx, so every update that carries the secret is answered ``200``, used or not; the
answer may carry a Bot API method (``sendMessage``), which Telegram performs, so the
gateway confirms a link without holding the bot token. A ``/start <code>`` counts
only from a private chat: a group would bind every member's notifications to it.
"""

from __future__ import annotations

import hmac
import re
from typing import Any

from fastapi import APIRouter, Depends, Header, HTTPException, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from .. import telegram_links
from ..dependencies import State, rate_limit_by_client
from ..ratelimit import Policy

router = APIRouter(prefix="/v1/telegram", tags=["telegram"])

START = re.compile(r"^/start(?:@\w+)?\s+(\S+)\s*$")
LINKED = "Done: Herald notifications will arrive in this chat."
NOT_LINKED = (
    "This link is no longer valid (links work once, for 15 minutes). "
    "Add Telegram again in your notification settings for a new one."
)


class _Chat(BaseModel):
    id: int
    type: str


class _Message(BaseModel):
    chat: _Chat
    text: str | None = None


class _Update(BaseModel):
    """The part of a Telegram ``Update`` this route reads; the rest is ignored."""

    update_id: int
    message: _Message | None = None


def _reply(chat_id: int, text: str) -> JSONResponse:
    return JSONResponse({"method": "sendMessage", "chat_id": chat_id, "text": text})


# public: Telegram's servers call it. Limited per client address, like other public
# routes, at the everyday rate: all updates come from Telegram's few addresses.
@router.post(
    "/webhook",
    include_in_schema=False,
    dependencies=[Depends(rate_limit_by_client(Policy.DEFAULT))],
)
async def telegram_webhook(
    request: Request,
    state: State,
    secret_token: str | None = Header(default=None, alias="X-Telegram-Bot-Api-Secret-Token"),
) -> Any:
    expected = state.settings.telegram_webhook_secret
    if expected is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Not Found")
    if secret_token is None or not hmac.compare_digest(
        secret_token.encode(), expected.get_secret_value().encode()
    ):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Forbidden")
    try:
        update = _Update.model_validate(await request.json())
    except (ValueError, ValidationError):
        return JSONResponse({})  # not an update we read: nothing to retry
    message = update.message
    start = START.match(message.text or "") if message else None
    if message is None or start is None or message.chat.type != "private":
        return JSONResponse({})
    async with state.pool.acquire() as conn:
        bound = await telegram_links.bind(conn, start[1], message.chat.id)
    return _reply(message.chat.id, LINKED if bound else NOT_LINKED)
