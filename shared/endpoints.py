"""Channel endpoints a user owns (webhook URLs and their signing secrets, chat ids).

URLs and secrets are credentials: they are stored sealed (``shared.sealing``), each
bound to its endpoint and column, and opened only where a send needs them. What a
listing may show of a URL (``scheme://host/…``) is kept beside it in ``url_shown``.
No query looks an endpoint up by its URL, so no searchable digest of it is kept.
The plain ``url`` and ``secret`` columns hold a copy only for a grace period after
sealing, for readers older than sealing (``shared.endpoint_sealing``).
"""

from __future__ import annotations

import base64
import secrets
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

import asyncpg

from shared.db import Connection
from shared.sealing import CannotUnseal, Sealer

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


@dataclass(frozen=True)
class Unreadable:
    """An endpoint whose sealed credentials no configured key opens: left out of
    sends, while the owner's other endpoints (and everyone else's) go on. ``reason``
    is for operators and never holds a value."""

    id: uuid.UUID
    user_id: str
    type: str
    reason: str


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
) -> Endpoint | Unreadable:
    """An endpoint as sends use it, its credentials opened; ``Unreadable`` when no
    key opens them. The sealed copy is preferred; the plain one (a row not sealed
    yet, or still within its grace, ``endpoint_sealing``) stands in for it when it
    does not open: it is what the row holds anyway."""
    try:
        return Endpoint(
            id,
            user_id,
            type,
            _open(sealer, url_sealed, url_place(id), url),
            chat_id,
            _open(sealer, secret_sealed, secret_place(id), secret),
            address,
        )
    except CannotUnseal as exc:
        return Unreadable(id, user_id, type, f"{exc} (HERALD_ENCRYPTION_KEYS)")


def _open(sealer: Sealer, sealed: str | None, place: str, plain: str | None) -> str | None:
    if not sealed:
        return plain
    try:
        return sealer.unseal(sealed, bound_to=place)
    except CannotUnseal:
        if plain is None:
            raise
        return plain


async def create_endpoint(
    conn: Connection,
    user_id: str,
    type: str,
    *,
    sealer: Sealer,
    url: str | None = None,
    chat_id: str | None = None,
) -> Endpoint:
    """Store a new endpoint, its credentials sealed and never in plain text: the grace
    of ``endpoint_sealing`` is for rows stored before sealing, not for new ones, which
    a dispatcher older than sealing cannot send to during a rolling upgrade (a short
    window, against every new credential lying in plain text for the grace)."""
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
                   (id, user_id, type, url_sealed, url_shown, secret_sealed, chat_id,
                    sealed_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7,
                       CASE WHEN $4::text IS NOT NULL OR $6::text IS NOT NULL
                            THEN now() END)""",
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
