"""Channel endpoints a user owns (webhook URLs and their signing secrets, chat ids).

URLs and secrets are credentials: they are stored sealed (``shared.sealing``), each
bound to its endpoint and column, and opened only where a send needs them. What a
listing may show of a URL (``scheme://host/…``) is kept beside it in ``url_shown``.
No query looks an endpoint up by its URL, so no searchable digest of it is kept.
"""

from __future__ import annotations

import base64
import secrets
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

import asyncpg

from shared.db import Connection
from shared.sealing import Sealer

ENDPOINT_TYPES = frozenset({"webhook", "discord", "slack", "teams", "telegram", "apprise"})

# what to read of channel_endpoints to build an Endpoint with ``opened``; url and
# secret are plaintext only in rows not sealed yet (written before migration 0011)
READ_COLUMNS = "id, user_id, type, url_sealed, secret_sealed, url, secret, chat_id, address"


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


def url_place(endpoint_id: uuid.UUID) -> str:
    return f"{endpoint_id}/url"


def secret_place(endpoint_id: uuid.UUID) -> str:
    return f"{endpoint_id}/secret"


def shown_url(type_: str, url: str) -> str:
    """What listings show of a URL: scheme and host. An Apprise URL shows only its
    scheme: its "host" is often a token (``tgram://<bot token>/<chat>``)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return "…"
    if type_ == "apprise" or not host:
        return f"{parts.scheme}://…" if parts.scheme else "…"
    return f"{parts.scheme}://{host}/…"


def opened(
    sealer: Sealer,
    *,
    id: uuid.UUID,
    user_id: str,
    type: str,
    url_sealed: str | None,
    secret_sealed: str | None,
    url: str | None = None,
    secret: str | None = None,
    chat_id: str | None = None,
    address: str | None = None,
) -> Endpoint:
    """An endpoint as sends use it, its credentials opened (``CannotUnseal`` when no
    key opens them)."""
    return Endpoint(
        id,
        user_id,
        type,
        sealer.unseal(url_sealed, bound_to=url_place(id)) if url_sealed else url,
        chat_id,
        sealer.unseal(secret_sealed, bound_to=secret_place(id)) if secret_sealed else secret,
        address,
    )


async def create_endpoint(
    conn: Connection,
    user_id: str,
    type: str,
    *,
    sealer: Sealer,
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
            """INSERT INTO channel_endpoints
                   (id, user_id, type, url_sealed, url_shown, secret_sealed, chat_id)
               VALUES ($1, $2, $3, $4, $5, $6, $7)""",
            endpoint.id,
            user_id,
            type,
            sealer.seal(url, bound_to=url_place(endpoint.id)) if url else None,
            shown_url(type, url) if url else None,
            sealer.seal(secret, bound_to=secret_place(endpoint.id)) if secret else None,
            chat_id,
        )
    except asyncpg.ForeignKeyViolationError as exc:
        raise UnknownUser(user_id) from exc
    return endpoint
