"""Channel endpoints a user owns (webhook URLs and their signing secrets, chat ids)."""

from __future__ import annotations

import base64
import secrets
import uuid
from dataclasses import dataclass

import asyncpg

from shared.db import Connection

ENDPOINT_TYPES = frozenset({"webhook", "discord", "slack", "teams", "telegram", "apprise"})


@dataclass(frozen=True)
class Endpoint:
    id: uuid.UUID
    user_id: str
    type: str
    url: str | None
    chat_id: str | None
    secret: str | None
    # e-mail endpoints: the recipient address (kept in step with users.email)
    address: str | None = None


class UnknownUser(LookupError):
    pass


def new_webhook_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


async def create_endpoint(
    conn: Connection,
    user_id: str,
    type: str,
    *,
    url: str | None = None,
    chat_id: str | None = None,
) -> Endpoint:
    if type not in ENDPOINT_TYPES:
        raise ValueError(f"unknown endpoint type {type!r}; choose from {sorted(ENDPOINT_TYPES)}")
    if type == "telegram" and not chat_id:
        raise ValueError("a telegram endpoint needs a chat_id")
    if type != "telegram" and not url:
        raise ValueError(f"a {type} endpoint needs a url")
    secret = new_webhook_secret() if type == "webhook" else None
    endpoint = Endpoint(uuid.uuid4(), user_id, type, url, chat_id, secret)
    try:
        await conn.execute(
            """INSERT INTO channel_endpoints (id, user_id, type, url, chat_id, secret)
               VALUES ($1, $2, $3, $4, $5, $6)""",
            endpoint.id,
            user_id,
            type,
            url,
            chat_id,
            secret,
        )
    except asyncpg.ForeignKeyViolationError as exc:
        raise UnknownUser(user_id) from exc
    return endpoint


async def enabled_endpoints(conn: Connection, user_id: str) -> list[Endpoint]:
    rows = await conn.fetch(
        """SELECT id, user_id, type, url, chat_id, secret FROM channel_endpoints
           WHERE user_id = $1 AND enabled ORDER BY created_at""",
        user_id,
    )
    return [Endpoint(**dict(r)) for r in rows]
