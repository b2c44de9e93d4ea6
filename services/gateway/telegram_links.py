"""Proof that a Telegram chat belongs to the user who adds it.

A user adds a Telegram channel and gets a deep link, ``https://t.me/<bot>?start=<code>``;
opening it makes Telegram send the bot ``/start <code>`` from the user's own chat,
and the bot's webhook (``routes/telegram.py``) binds that chat to the endpoint.
Until then the endpoint is pending: no chat id and switched off, so nothing is
delivered to it. A code is random (192 bits), good for ``LINK_TTL`` and for one use,
and stored only as its SHA-256, so the table never holds a usable link.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from datetime import timedelta

from shared.db import Connection

LINK_TTL = timedelta(minutes=15)
PENDING_REASON = "waiting for the Telegram link to be opened"
# what a deep link's start parameter may hold (Telegram: 1-64 of A-Z a-z 0-9 _ -)
CODE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def link_url(bot_username: str, code: str) -> str:
    return f"https://t.me/{bot_username}?start={code}"


def _digest(code: str) -> bytes:
    # a code is random enough that a plain hash cannot be reversed by guessing
    return hashlib.sha256(code.encode()).digest()


async def forget_expired(conn: Connection, user_id: str) -> None:
    """Remove the user's pending Telegram endpoints whose links expired unused: they
    would never bind, and must not count against the user's channels."""
    await conn.execute(
        """DELETE FROM channel_endpoints e
           WHERE e.user_id = $1 AND e.type = 'telegram' AND e.chat_id IS NULL
             AND NOT EXISTS (SELECT 1 FROM telegram_links l
                             WHERE l.endpoint_id = e.id AND l.expires_at > now())""",
        user_id,
    )


async def add_pending(conn: Connection, user_id: str) -> tuple[uuid.UUID, str]:
    """A pending Telegram endpoint for the user and its link code."""
    endpoint_id = uuid.uuid4()
    await conn.execute(
        """INSERT INTO channel_endpoints (id, user_id, type, enabled, disabled_reason)
           VALUES ($1, $2, 'telegram', false, $3)""",
        endpoint_id,
        user_id,
        PENDING_REASON,
    )
    code = secrets.token_urlsafe(24)
    await conn.execute(
        """INSERT INTO telegram_links (code_hash, endpoint_id, expires_at)
           VALUES ($1, $2, now() + $3)""",
        _digest(code),
        endpoint_id,
        LINK_TTL,
    )
    return endpoint_id, code


async def bind(conn: Connection, code: str, chat_id: int) -> bool:
    """Bind the chat to the endpoint the code was made for; False (and nothing
    changed) for a code unknown, expired or used. A code is spent by any attempt."""
    if not CODE.match(code):
        return False
    async with conn.transaction():
        link = await conn.fetchrow(
            """DELETE FROM telegram_links WHERE code_hash = $1
               RETURNING endpoint_id, expires_at > now() AS fresh""",
            _digest(code),
        )
        if link is None or not link["fresh"]:
            return False
        bound = await conn.fetchval(
            """UPDATE channel_endpoints
               SET chat_id = $2, enabled = true, disabled_reason = NULL,
                   consecutive_failures = 0
               WHERE id = $1 AND type = 'telegram' AND chat_id IS NULL
               RETURNING true""",
            link["endpoint_id"],
            str(chat_id),
        )
    return bool(bound)
